"""Training data: the JSONL record format, WAV input/output and window crops.

One JSON object per line::

    {"audio": "clips/0001.wav",          # relative to the JSONL file, or absolute
     "start": 12.40, "end": 14.32,       # optional span in seconds (default: whole file)
     "terms": [                          # the glossary terms spoken in the span
        {"text": "contrastive learning", "start": 12.95, "end": 13.80},
        "BLEU score"                     # a bare string: no word times
     ]}

Term times are absolute (seconds in the file). They let the trainer crop a
training window that really contains the term; without them every term of the
record counts as present in every crop.
"""

from __future__ import annotations

import json
import wave
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000


@dataclass(frozen=True, slots=True)
class TermSpan:
    text: str
    start: float | None = None
    end: float | None = None

    @property
    def timed(self) -> bool:
        return self.start is not None and self.end is not None


@dataclass(frozen=True, slots=True)
class Record:
    audio: Path
    terms: tuple[TermSpan, ...]
    start: float = 0.0
    end: float | None = None
    id: str = ""

    def to_json(self, base: Path | None = None) -> dict[str, object]:
        audio = self.audio
        if base is not None and audio.is_relative_to(base):
            audio = audio.relative_to(base)
        out: dict[str, object] = {"audio": str(audio), "start": round(self.start, 4)}
        if self.end is not None:
            out["end"] = round(self.end, 4)
        if self.id:
            out["id"] = self.id
        out["terms"] = [
            {"text": t.text, "start": round(t.start, 4), "end": round(t.end, 4)}
            if t.start is not None and t.end is not None
            else t.text
            for t in self.terms
        ]
        return out


class DataError(ValueError):
    pass


def _term(raw: object, where: str) -> TermSpan:
    if isinstance(raw, str):
        return TermSpan(raw.strip())
    if isinstance(raw, dict) and isinstance(raw.get("text", raw.get("term")), str):
        text = str(raw.get("text", raw.get("term"))).strip()
        start, end = raw.get("start"), raw.get("end")
        if (start is None) != (end is None):
            raise DataError(f"{where}: term {text!r} needs both start and end, or neither")
        if start is not None and end is not None:
            if float(end) <= float(start):
                raise DataError(f"{where}: term {text!r} ends before it starts")
            return TermSpan(text, float(start), float(end))
        return TermSpan(text)
    raise DataError(f"{where}: a term is a string or an object with 'text'")


def read_jsonl(path: Path) -> list[Record]:
    path = Path(path)
    records: list[Record] = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{n}"
            try:
                raw = json.loads(line)
            except ValueError as exc:
                raise DataError(f"{where}: not JSON ({exc})") from None
            if not isinstance(raw, dict) or not isinstance(raw.get("audio"), str):
                raise DataError(f"{where}: each line needs an 'audio' path")
            audio = Path(raw["audio"])
            if not audio.is_absolute():
                audio = path.parent / audio
            terms = tuple(t for t in (_term(x, where) for x in raw.get("terms", [])) if t.text)
            start = float(raw.get("start", 0.0))
            end = raw.get("end")
            if end is not None and float(end) <= start:
                raise DataError(f"{where}: the span ends before it starts")
            records.append(
                Record(
                    audio, terms, start, None if end is None else float(end), str(raw.get("id", ""))
                )
            )
    return records


def write_jsonl(path: Path, records: Iterable[Record]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record.to_json(path.parent), ensure_ascii=False) + "\n")


def read_wav(path: Path) -> np.ndarray:
    """Mono float32 at 16 kHz (16-bit PCM WAV; other rates resampled with soxr)."""
    try:
        with wave.open(str(path), "rb") as wav:
            rate, channels, width = wav.getframerate(), wav.getnchannels(), wav.getsampwidth()
            frames = wav.readframes(wav.getnframes())
    except (OSError, wave.Error, EOFError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    if width != 2:
        raise DataError(f"{path}: only 16-bit PCM WAV is supported")
    audio = np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768.0
    if channels > 1:
        audio = audio.reshape(-1, channels).mean(axis=1)
    if rate != SAMPLE_RATE:
        import soxr

        audio = soxr.resample(audio, rate, SAMPLE_RATE).astype(np.float32)
    return audio


def write_wav(path: Path, audio: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    pcm = np.clip(np.asarray(audio) * 32768.0, -32768, 32767).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm.tobytes())


@dataclass(slots=True)
class Example:
    """One training input: a crop of audio and the terms spoken in it."""

    audio: np.ndarray
    terms: tuple[str, ...]
    record: Record = field(repr=False)


def crop(
    record: Record,
    audio: np.ndarray,
    max_seconds: float,
    rng: np.random.Generator,
    min_overlap: float = 0.5,
) -> Example:
    """A window of at most ``max_seconds`` from the record's span.

    With term times the crop is placed (randomly) so that one term lies inside
    it; a term counts as present when at least ``min_overlap`` of it is in the
    crop. Without term times, a random crop keeps all the record's terms.
    """
    span_start = record.start
    span_end = record.end if record.end is not None else len(audio) / SAMPLE_RATE
    length = min(max_seconds, span_end - span_start)
    if length <= 0:
        raise DataError(f"{record.audio}: empty span")
    lo, hi = span_start, span_end - length
    timed = [t for t in record.terms if t.timed]
    if timed and hi > lo:
        anchor = timed[int(rng.integers(len(timed)))]
        assert anchor.start is not None and anchor.end is not None
        # Start so that the anchor term fits (or, if longer than the crop, starts at it).
        lo2 = max(lo, min(anchor.end - length, anchor.start))
        hi2 = min(hi, anchor.start)
        lo, hi = (lo2, hi2) if hi2 >= lo2 else (anchor.start, anchor.start)
        lo = min(max(lo, span_start), span_end - length)
        hi = min(max(hi, lo), span_end - length)
    start = float(rng.uniform(lo, hi)) if hi > lo else lo
    end = start + length
    terms: list[str] = []
    for t in record.terms:
        if not t.timed:
            terms.append(t.text)
            continue
        assert t.start is not None and t.end is not None
        inside = max(0.0, min(end, t.end) - max(start, t.start))
        if inside >= min_overlap * (t.end - t.start):
            terms.append(t.text)
    a = int(round(start * SAMPLE_RATE))
    b = max(a + 400, int(round(end * SAMPLE_RATE)))
    clip = audio[a:b]
    if len(clip) < 400:
        clip = np.pad(clip, (0, 400 - len(clip)))
    return Example(clip, tuple(dict.fromkeys(terms)), record)


def iter_bank(path: Path) -> Iterator[str]:
    """Extra negative terms: one per line (``#`` comments), or the first column of a CSV/TSV."""
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        yield line.split("\t")[0].split(",")[0].strip()
