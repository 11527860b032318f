"""Caption word error rate and real-time factor of the speech front end, offline and streamed.

Audio:

* ``two_cities``: ``shared/data/speech/two_cities_16k.wav`` (44 s of real read speech) with its
  ``.txt`` reference;
* ACL 60/60 dev talks synthesised with flite voices (``evaluation.synth``, the same code
  as ``rasst data synth``: each segment at its reference offset, cached under
  ``.cache/synth``); by default the first 60 segments of talks 2022.acl-long.268 and
  2022.acl-long.367 in voices ``slt`` (US) and ``awb`` (Scottish). Reference = the segments'
  English text.

Systems (each decodes every audio in a fresh process, one after the other):

* ``pocketsphinx``: the gateway's own front end today (``server.speech.build_front_end``:
  silero VAD + pocketsphinx words), fed 0.96·lm s chunks in order as a speech worker does;
  the final captions are the transcript;
* ``tiny.en`` / ``base``: faster-whisper offline on the whole file, int8, ``cpu_threads=1``,
  ``beam_size=1``, ``vad_filter=True`` (models from the pinned wheels, see asr_common);
* ``--streaming-url ws://HOST:PORT/v1/stream``: a running RASST gateway, the audio streamed at
  ``--pace`` × real time (the gateway accepts up to 2×), scored on its captions at
  ``session.summary``. Repeat with ``--streaming-label`` to name the column.

Text is normalised by ``asr_common.normalise`` (lower case, punctuation removed, numbers as
they are). RTF = wall seconds / audio seconds (CPU seconds are in the JSON).

    .venv/bin/python bench/asr_wer.py --segments 60 --systems pocketsphinx tiny.en base
    .venv/bin/python bench/asr_wer.py --systems --streaming-url ws://127.0.0.1:8000/v1/stream
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.asr_common import (  # noqa: E402
    DATA,
    RATE,
    TWO_CITIES,
    WerCounts,
    load_average,
    markdown_table,
    read_wav16,
    stream_rasst,
    whisper_model_dir,
    word_errors,
)

DEFAULT_TALKS = ("2022.acl-long.268", "2022.acl-long.367")
DEFAULT_VOICES = ("slt", "awb")


@dataclass(frozen=True)
class AudioItem:
    name: str
    wav: Path
    reference: str
    seconds: float


def audio_items(
    talks: list[str], voices: list[str], segments: int, two_cities: bool
) -> list[AudioItem]:
    items: list[AudioItem] = []
    if two_cities:
        pcm = read_wav16(TWO_CITIES)
        items.append(
            AudioItem("two_cities (real)", TWO_CITIES,
                      TWO_CITIES.with_suffix(".txt").read_text(encoding="utf-8"), len(pcm) / RATE)
        )  # fmt: skip
    if not talks or not voices:
        return items
    from evaluation.dataset import load_talks
    from evaluation.synth import FliteEngine, default_cache_dir, synthesise_talk

    loaded = load_talks(DATA / "acl6060" / "dev.en-de.jsonl", talk_ids=talks, max_segments=segments)
    for voice in voices:
        for talk in loaded:
            synth = synthesise_talk(talk, FliteEngine(voice), default_cache_dir())
            reference = " ".join(s.en for s in talk.segments)
            items.append(
                AudioItem(f"{talk.talk_id.split('.')[-1]} × {len(talk.segments)} seg, flite {voice}",
                          synth.wav, reference, synth.duration)
            )  # fmt: skip
    return items


# -- offline decoding (one child process per system × audio) ------------------------------


def decode_pocketsphinx(wav: Path, lm: int) -> tuple[str, float, float]:
    try:
        from server.speech import FrontEndParams, build_front_end  # type: ignore[import-not-found]
    except ImportError:
        raise SystemExit(
            "the pocketsphinx front end was replaced by Whisper (issue 16): run the "
            "pocketsphinx column from a checkout of 5b9e888 with pocketsphinx==5.1.1 installed"
        ) from None

    pcm = read_wav16(wav)
    front = build_front_end(FrontEndParams())
    chunk = int(0.96 * lm * RATE)
    texts: list[str] = []
    wall, cpu = time.perf_counter(), time.process_time()
    for index, start in enumerate(range(0, len(pcm), chunk)):
        final = start + chunk >= len(pcm)
        analysis = front.process(index, start, pcm[start : start + chunk], final)
        texts += [c.text for c in analysis.captions if c.final and c.text]
    return " ".join(texts), time.perf_counter() - wall, time.process_time() - cpu


def decode_whisper(wav: Path, model: str) -> tuple[str, float, float]:
    from faster_whisper import WhisperModel

    whisper = WhisperModel(str(whisper_model_dir(model)), device="cpu", compute_type="int8",
                           cpu_threads=1)  # fmt: skip
    audio = read_wav16(wav).astype(np.float32) / 32768.0
    wall, cpu = time.perf_counter(), time.process_time()
    segments, _ = whisper.transcribe(audio, language="en", beam_size=1, vad_filter=True)
    text = " ".join(s.text.strip() for s in segments)  # the generator decodes lazily
    return text, time.perf_counter() - wall, time.process_time() - cpu


def _decode_job(job: tuple[str, str, int]) -> tuple[str, float, float]:
    system, wav, lm = job
    if system == "pocketsphinx":
        return decode_pocketsphinx(Path(wav), lm)
    return decode_whisper(Path(wav), system)


def run_offline(system: str, item: AudioItem, lm: int) -> dict[str, object]:
    # A fresh process per decode: model load and caches never leak between rows.
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        result = pool.apply_async(_decode_job, ((system, str(item.wav), lm),))
        text, wall, cpu = result.get(timeout=max(600.0, 3 * item.seconds))
    counts = word_errors(item.reference, text)
    return _row(system, item, counts, text, rtf=wall / item.seconds, cpu_rtf=cpu / item.seconds)


def _row(
    system: str, item: AudioItem, counts: WerCounts, text: str, **extra: object
) -> dict[str, object]:
    return {
        "system": system,
        "audio": item.name,
        "audio_s": round(item.seconds, 1),
        "wer": round(counts.wer, 4),
        "ref_words": counts.ref_words,
        "sub": counts.substitutions,
        "del": counts.deletions,
        "ins": counts.insertions,
        **{k: round(v, 4) if isinstance(v, float) else v for k, v in extra.items()},
        "load": load_average(),
        "hypothesis": text,
    }


def run_streaming(url: str, label: str, item: AudioItem, pace: float, lm: int) -> dict[str, object]:
    pcm = read_wav16(item.wav)
    record = asyncio.run(stream_rasst(url, pcm, pace=pace, lm=lm))
    counts = word_errors(item.reference, record.final_text)
    after_end = None if record.text_done is None else record.text_done - record.audio_end
    return _row(label, item, counts, record.final_text, pace=pace,
                final_after_audio_end_s=after_end, error=record.error)  # fmt: skip


def _wer(row: dict[str, object]) -> float:
    errors = int(row["sub"]) + int(row["del"]) + int(row["ins"])  # type: ignore[call-overload]
    return errors / max(int(row["ref_words"]), 1)  # type: ignore[call-overload]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--systems", nargs="*", default=["tiny.en", "base"],
                    help="pocketsphinx, tiny.en, base or a faster-whisper model directory")  # fmt: skip
    ap.add_argument("--talks", nargs="*", default=list(DEFAULT_TALKS))
    ap.add_argument("--voices", nargs="*", default=list(DEFAULT_VOICES), help="flite voices")
    ap.add_argument("--segments", type=int, default=60, help="first N segments of each talk")
    ap.add_argument("--no-two-cities", action="store_true")
    ap.add_argument("--lm", type=int, default=2, help="chunk = 0.96·lm s (pocketsphinx, streaming)")
    ap.add_argument("--streaming-url", action="append", default=[])
    ap.add_argument("--streaming-label", action="append", default=[])
    ap.add_argument("--pace", type=float, default=1.0, help="× real time for --streaming-url")
    ap.add_argument("--json", type=Path, help="write every row (with hypotheses) here")
    args = ap.parse_args()

    items = audio_items(args.talks, args.voices, args.segments, not args.no_two_cities)
    print(f"# {platform.machine()}, {os.cpu_count()} cores, load {load_average()} at start",
          file=sys.stderr)  # fmt: skip
    rows: list[dict[str, object]] = []
    for system in args.systems:
        for item in items:
            row = run_offline(system, item, args.lm)
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "hypothesis"}), file=sys.stderr,
                  flush=True)  # fmt: skip
    labels = args.streaming_label + [f"streamed {i + 1}" for i in range(len(args.streaming_url))]
    for url, label in zip(args.streaming_url, labels, strict=False):
        for item in items:
            row = run_streaming(url, label, item, args.pace, args.lm)
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "hypothesis"}), file=sys.stderr,
                  flush=True)  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")

    systems = list(dict.fromkeys(str(r["system"]) for r in rows))
    names = [i.name for i in items]
    by = {(r["system"], r["audio"]): r for r in rows}
    print(f"WER (RTF = wall / audio seconds; load {load_average()} at the end)\n")
    header = ["audio", "seconds", "words"] + systems
    table = []
    for item in items:
        cells: list[object] = [
            item.name,
            round(item.seconds),
            by[(systems[0], item.name)]["ref_words"],
        ]
        for s in systems:
            r = by.get((s, item.name))
            if r is None:
                cells.append(None)
            elif "rtf" in r:
                cells.append(f"{_wer(r):.3f} (RTF {r['rtf']:.3f})")
            else:
                lag = r.get("final_after_audio_end_s")
                cells.append(f"{_wer(r):.3f} (final +{lag:.1f} s)" if lag is not None else
                             f"{_wer(r):.3f} ({r.get('error')})")  # fmt: skip
        table.append(cells)
    total: list[object] = ["all", round(sum(i.seconds for i in items)), None]
    for s in systems:
        errs = sum(int(by[(s, n)]["sub"]) + int(by[(s, n)]["del"]) + int(by[(s, n)]["ins"])
                   for n in names if (s, n) in by)  # fmt: skip
        words = sum(int(by[(s, n)]["ref_words"]) for n in names if (s, n) in by)
        total.append(f"{errs / max(words, 1):.3f}")
    table.append(total)
    print(markdown_table(header, table))


if __name__ == "__main__":
    main()
