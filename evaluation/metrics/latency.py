"""Long-form re-segmentation and StreamLAAL.

The gateway's output for a talk is one stream of committed text; the references are
sentences. Scoring needs the stream cut into one hypothesis per reference sentence:

- **mweralign** (minimum-WER alignment, the mwerSegmenter algorithm used for the published
  StreamLAAL) when its command is installed. It is GPL, so it is only ever run as a separate
  program (``mweralign -m none``: units are pre-split, nothing is downloaded).
- otherwise **omnisteval**'s own re-segmentation (its ``longform`` command).

Each output unit (a whitespace word, or a character for zh/ja) carries its emission time
along the re-segmentation: ``delay`` = audio time at the end of the chunk that committed it;
``elapsed`` = that plus the gateway's computation time for the chunk (computation-aware).
Both are milliseconds from the start of the talk audio.

StreamLAAL = LAAL (Papi et al., 2022) of every re-segmented sentence, delays taken relative
to the sentence's start in the audio, averaged over sentences with output.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import tempfile
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from evaluation.metrics.bleu import bleu_tokenizer, is_char_level

_TOOL_TIMEOUT = 600.0  # seconds; both tools take seconds on the full dev set


@dataclass(frozen=True)
class Unit:
    text: str
    delay: float  # ms from talk start, computation-unaware
    elapsed: float  # ms, computation-aware


@dataclass(frozen=True)
class RefSegment:
    talk_id: str
    reference: str
    offset: float  # seconds into the talk audio
    duration: float


@dataclass(frozen=True)
class Resegmented:
    """One reference sentence with the hypothesis units aligned to it."""

    talk_id: str
    reference: str
    offset: float  # seconds
    duration: float
    units: tuple[Unit, ...]
    char_level: bool

    @property
    def prediction(self) -> str:
        joiner = "" if self.char_level else " "
        return joiner.join(u.text for u in self.units)

    @property
    def reference_length(self) -> int:
        return len(split_units(self.reference, self.char_level))


def split_units(text: str, char_level: bool) -> list[str]:
    """Latency units: characters without whitespace (zh/ja) or whitespace words.

    Control and format characters are not text a reader sees, and the scoring tools
    drop them; so do the units (a tiny random test model emits them).
    """
    text = "".join(c for c in text if not unicodedata.category(c).startswith("C") or c.isspace())
    if char_level:
        return [c for c in text if not c.isspace()]
    return text.split()


def laal(delays: Sequence[float], source_length: float, reference_length: int) -> float | None:
    """Length-adaptive average lagging of one sentence (delays and source length in ms)."""
    if not delays or source_length <= 0:
        return None
    if delays[0] > source_length:
        return float(delays[0])
    rate = max(len(delays), reference_length) / source_length
    total, tau = 0.0, 0
    for i, delay in enumerate(delays):
        total += delay - i / rate
        tau = i + 1
        if delay >= source_length:
            break
    return total / tau


@dataclass(frozen=True)
class LatencyScores:
    stream_laal: float | None  # ms
    stream_laal_ca: float | None
    scored_segments: int
    empty_segments: int


def stream_laal(segments: Sequence[Resegmented]) -> LatencyScores:
    cu: list[float] = []
    ca: list[float] = []
    empty = 0
    for seg in segments:
        if not seg.units:
            empty += 1
            continue
        start = seg.offset * 1000
        length = seg.duration * 1000
        a = laal([u.delay - start for u in seg.units], length, seg.reference_length)
        b = laal([u.elapsed - start for u in seg.units], length, seg.reference_length)
        if a is not None:
            cu.append(a)
        if b is not None:
            ca.append(b)
    return LatencyScores(
        stream_laal=sum(cu) / len(cu) if cu else None,
        stream_laal_ca=sum(ca) / len(ca) if ca else None,
        scored_segments=len(cu),
        empty_segments=empty,
    )


# -- re-segmentation -----------------------------------------------------------------------


def mweralign_command() -> list[str] | None:
    """How to run mweralign here, or None: next to this interpreter first, then on PATH."""
    beside = Path(sys.executable).with_name("mweralign")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("mweralign")
    return [found] if found else None


def _talk_order(refs: Sequence[RefSegment]) -> list[str]:
    order: list[str] = []
    for ref in refs:
        if not order or order[-1] != ref.talk_id:
            if ref.talk_id in order:
                raise ValueError(f"segments of talk {ref.talk_id} are not contiguous")
            order.append(ref.talk_id)
    return order


def resegment_mweralign(
    hypotheses: Mapping[str, Sequence[Unit]],
    refs: Sequence[RefSegment],
    lang: str,
    command: Sequence[str],
) -> list[Resegmented]:
    """Cut each talk's units into the reference sentences with mweralign (subprocess)."""
    char_level = is_char_level(lang)
    order = _talk_order(refs)
    with tempfile.TemporaryDirectory(prefix="rasst-mweralign-") as tmp:
        folder = Path(tmp)
        (folder / "ref.txt").write_text(
            "".join(" ".join(split_units(r.reference, char_level)) + "\n" for r in refs),
            encoding="utf-8",
        )
        (folder / "docids.txt").write_text("".join(r.talk_id + "\n" for r in refs))
        (folder / "hyp.txt").write_text(
            "".join(" ".join(u.text for u in hypotheses.get(t, ())) + "\n" for t in order),
            encoding="utf-8",
        )
        subprocess.run(
            [
                *command,
                "-r",
                "ref.txt",
                "-t",
                "hyp.txt",
                "-d",
                "docids.txt",
                "-m",
                "none",
                "-o",
                "out.txt",
            ],
            cwd=folder,
            check=True,
            capture_output=True,
            timeout=_TOOL_TIMEOUT,
        )
        lines = (folder / "out.txt").read_text(encoding="utf-8").split("\n")
    if len(lines) < len(refs) or any(lines[len(refs) :]):
        raise RuntimeError(f"mweralign returned {len(lines)} lines for {len(refs)} references")
    result: list[Resegmented] = []
    cursor: dict[str, int] = dict.fromkeys(order, 0)
    for ref, line in zip(refs, lines, strict=False):
        tokens = line.split()
        talk_units = hypotheses.get(ref.talk_id, ())
        start = cursor[ref.talk_id]
        units = tuple(talk_units[start : start + len(tokens)])
        # mweralign only cuts: the units come back in order and unchanged.
        if [u.text for u in units] != tokens:
            raise RuntimeError(f"mweralign changed the hypothesis of {ref.talk_id}")
        cursor[ref.talk_id] = start + len(tokens)
        result.append(
            Resegmented(ref.talk_id, ref.reference, ref.offset, ref.duration, units, char_level)
        )
    return result


def omnisteval_command() -> list[str]:
    beside = Path(sys.executable).with_name("omnisteval")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("omnisteval")
    if not found:
        raise RuntimeError("omnisteval is not installed (pip install 'rasst[eval]')")
    return [found]


@dataclass(frozen=True)
class OmnistevalResult:
    segments: list[Resegmented]
    scores: dict[str, float]  # its own metrics (BLEU, chrF, LongYAAL, ...), as printed


def run_omnisteval(
    hypotheses: Mapping[str, Sequence[Unit]],
    refs: Sequence[RefSegment],
    lang: str,
    workdir: Path,
) -> OmnistevalResult:
    """``omnisteval longform`` on the stream: its scores and its re-segmentation."""
    char_level = is_char_level(lang)
    order = _talk_order(refs)
    workdir.mkdir(parents=True, exist_ok=True)
    segmentation = [
        {"wav": f"{r.talk_id}.wav", "offset": r.offset, "duration": r.duration} for r in refs
    ]
    (workdir / "segments.yaml").write_text(yaml.safe_dump(segmentation), encoding="utf-8")
    (workdir / "references.txt").write_text(
        "".join(r.reference.replace("\n", " ") + "\n" for r in refs), encoding="utf-8"
    )
    with (workdir / "hypothesis.jsonl").open("w", encoding="utf-8") as handle:
        for talk_id in order:
            units = list(hypotheses.get(talk_id, ()))
            joiner = "" if char_level else " "
            line = {
                "source": f"{talk_id}.wav",
                "prediction": joiner.join(u.text for u in units),
                "delays": [u.delay for u in units],
                "elapsed": [u.elapsed for u in units],
            }
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")
    out = workdir / "omnisteval"
    subprocess.run(
        [
            *omnisteval_command(),
            "longform",
            "--speech_segmentation",
            "segments.yaml",
            "--ref_sentences_file",
            "references.txt",
            "--hypothesis_file",
            "hypothesis.jsonl",
            "--lang",
            lang,
            "--char_level" if char_level else "--word_level",
            "--bleu_tokenizer",
            bleu_tokenizer(lang),
            "--output_folder",
            str(out),
        ],
        cwd=workdir,
        check=True,
        capture_output=True,
        timeout=_TOOL_TIMEOUT,
    )
    scores: dict[str, float] = {}
    for row in (out / "scores.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        name, _, value = row.partition("\t")
        try:
            scores[name] = float(value)
        except ValueError:
            continue
    segments: list[Resegmented] = []
    instances = (out / "instances.resegmented.jsonl").read_text(encoding="utf-8").splitlines()
    cursor: dict[str, int] = dict.fromkeys(order, 0)
    for ref, instance in zip(refs, instances, strict=True):
        texts = split_units(json.loads(instance).get("prediction", ""), char_level)
        # The alignment is monotonic: the sentence's words are the talk's next units, which
        # keep their own emission times (omnisteval's are per Moses sub-token).
        talk_units = hypotheses.get(ref.talk_id, ())
        start = cursor[ref.talk_id]
        taken = tuple(talk_units[start : start + len(texts)])
        if [u.text for u in taken] != texts:
            raise RuntimeError(f"omnisteval changed the hypothesis of {ref.talk_id}")
        cursor[ref.talk_id] = start + len(texts)
        segments.append(
            Resegmented(ref.talk_id, ref.reference, ref.offset, ref.duration, taken, char_level)
        )
    return OmnistevalResult(segments, {k: v for k, v in scores.items() if math.isfinite(v)})
