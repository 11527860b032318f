"""Long-form talk audio from segment texts with a local TTS, at the reference timing.

Each segment is synthesised on its own and placed at its reference start offset, so the talk
keeps its pauses and pace: speech shorter than its slot is padded with silence; speech longer
than its slot is sped up with ``sox tempo`` (at most ``max_tempo``) and, if still too long,
overruns and pushes later segments back. The real placement is written to ``timing.json``
next to the WAV; everything downstream (gold term times, latency segments) reads it from there.
Results are cached by content (voice, texts, times, settings), so re-runs are free.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from evaluation.dataset import SegmentTiming, Talk

RATE = 16000
# Bump when placement or engine invocation changes so stale cache entries are not reused.
SYNTH_VERSION = 1
_TTS_TIMEOUT = 120.0  # seconds per segment; flite is ~70x real time, festival ~5x


class ToolMissing(RuntimeError):
    """A system program the evaluation runs is not installed; the message says what to do."""


# Debian package per program (the names the test machines' system_deps.sh installs).
_PACKAGES = {"flite": "flite", "text2wave": "festival festvox-us-slt-hts", "sox": "sox"}


def require_tool(program: str) -> None:
    """Fail with an install hint instead of ``[Errno 2] No such file or directory``."""
    if shutil.which(program) is None:
        package = _PACKAGES.get(program, program)
        raise ToolMissing(
            f"the program {program!r} is not installed: `apt-get install {package}` "
            "(Debian/Ubuntu), or choose another engine with --voice "
            "(flite:slt, festival:cmu_us_slt_arctic_hts)"
        )


class TtsEngine(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def voice(self) -> str: ...

    def synthesise(self, text: str, out_wav: Path) -> None: ...


@dataclass(frozen=True)
class FliteEngine:
    """``flite -voice V -t TEXT -o out.wav`` (16 kHz mono; voices slt, awb, kal16, rms, ...)."""

    voice: str
    name: str = "flite"

    def synthesise(self, text: str, out_wav: Path) -> None:
        require_tool("flite")
        subprocess.run(
            ["flite", "-voice", self.voice, "-t", text, "-o", str(out_wav)],
            check=True,
            capture_output=True,
            timeout=_TTS_TIMEOUT,
        )


@dataclass(frozen=True)
class FestivalEngine:
    """``text2wave -eval (voice_V)``: e.g. ``cmu_us_slt_arctic_hts`` (32 kHz, resampled)."""

    voice: str
    name: str = "festival"

    def synthesise(self, text: str, out_wav: Path) -> None:
        require_tool("text2wave")
        text_file = out_wav.with_suffix(".txt")
        text_file.write_text(text + "\n", encoding="utf-8")
        subprocess.run(
            ["text2wave", "-eval", f"(voice_{self.voice})", str(text_file), "-o", str(out_wav)],
            check=True,
            capture_output=True,
            timeout=_TTS_TIMEOUT,
        )


def _flite(voice: str) -> TtsEngine:
    return FliteEngine(voice)


def _festival(voice: str) -> TtsEngine:
    return FestivalEngine(voice)


ENGINES: dict[str, Callable[[str], TtsEngine]] = {"flite": _flite, "festival": _festival}


def parse_voice(spec: str) -> TtsEngine:
    """``ENGINE:VOICE`` (``flite:slt``, ``festival:cmu_us_slt_arctic_hts``) → engine."""
    engine, _, voice = spec.partition(":")
    if engine not in ENGINES or not voice:
        raise ValueError(
            f"voice must be ENGINE:VOICE with ENGINE in {sorted(ENGINES)}, got {spec!r}"
        )
    return ENGINES[engine](voice)


def default_cache_dir() -> Path:
    """``$RASST_DATA_DIR/synth`` when set, else ``.cache/synth`` (git-ignored) here."""
    if data_dir := os.environ.get("RASST_DATA_DIR"):
        return Path(data_dir) / "synth"
    return Path(".cache") / "synth"


@dataclass(frozen=True)
class PlacedSegment:
    seg_id: int
    index: int
    ref_start: float
    ref_end: float
    start: float  # synthesised speech span, seconds into the talk WAV
    end: float
    tempo: float  # > 1: sped up to fit the slot
    overrun: float  # seconds past the reference end after stretching


@dataclass(frozen=True)
class SynthesisedTalk:
    talk_id: str
    wav: Path
    timing_path: Path
    duration: float
    segments: tuple[PlacedSegment, ...]

    def timing(self) -> list[SegmentTiming]:
        return [SegmentTiming(s.seg_id, s.start, s.end) for s in self.segments]

    @classmethod
    def load(cls, timing_path: Path) -> SynthesisedTalk:
        data = json.loads(timing_path.read_text(encoding="utf-8"))
        return cls(
            talk_id=data["talk_id"],
            wav=timing_path.with_name(data["wav"]),
            timing_path=timing_path,
            duration=float(data["duration"]),
            segments=tuple(PlacedSegment(**s) for s in data["segments"]),
        )


@dataclass(frozen=True)
class SynthOptions:
    max_tempo: float = 1.5
    gap: float = 0.15  # seconds of silence kept between overrunning segments
    tail: float = 1.0  # silence after the last segment, so the last chunk closes normally
    workers: int = 0  # parallel TTS processes; 0 = one per core


def _read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as wav:
        rate, channels, width = wav.getframerate(), wav.getnchannels(), wav.getsampwidth()
        data = wav.readframes(wav.getnframes())
    if width != 2:
        raise ValueError(f"{path}: TTS output is not 16-bit PCM")
    samples = np.frombuffer(data, dtype="<i2")
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1).astype(np.int16)
    if rate != RATE:
        import soxr

        samples = soxr.resample(samples, rate, RATE).astype(np.int16)
    return samples


def _write_wav(path: Path, samples: np.ndarray) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(samples.astype("<i2").tobytes())


def trim_silence(samples: np.ndarray, threshold: float = 0.02, keep: float = 0.03) -> np.ndarray:
    """Cut leading and trailing near-silence (TTS engines pad both ends)."""
    if samples.size == 0:
        return samples
    level = np.abs(samples.astype(np.int32))
    loud = np.flatnonzero(level > threshold * max(int(level.max()), 1))
    if loud.size == 0:
        return samples[:0]
    pad = int(keep * RATE)
    return samples[max(0, loud[0] - pad) : min(samples.size, loud[-1] + pad + 1)]


def stretch(samples: np.ndarray, tempo: float, workdir: Path) -> np.ndarray:
    """Speed speech up by ``tempo`` without changing its pitch (sox's WSOLA ``tempo -s``)."""
    src, dst = workdir / "stretch-in.wav", workdir / "stretch-out.wav"
    _write_wav(src, samples)
    require_tool("sox")
    subprocess.run(
        ["sox", str(src), str(dst), "tempo", "-s", f"{tempo:.4f}"],
        check=True,
        capture_output=True,
        timeout=_TTS_TIMEOUT,
    )
    return _read_wav(dst)


def cache_key(talk: Talk, engine: TtsEngine, options: SynthOptions) -> str:
    payload = {
        "version": SYNTH_VERSION,
        "engine": engine.name,
        "voice": engine.voice,
        "max_tempo": options.max_tempo,
        "gap": options.gap,
        "tail": options.tail,
        "segments": [(s.seg_id, s.en, s.start, s.end) for s in talk.segments],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def synthesise_talk(
    talk: Talk,
    engine: TtsEngine,
    cache_dir: Path,
    options: SynthOptions | None = None,
    *,
    on_segment: Callable[[], None] | None = None,
) -> SynthesisedTalk:
    """The talk's WAV and timing, from the cache or made now."""
    options = options or SynthOptions()
    folder = cache_dir / f"{engine.name}-{engine.voice}"
    stem = f"{talk.talk_id}.{cache_key(talk, engine, options)}"
    timing_path = folder / f"{stem}.timing.json"
    if timing_path.is_file() and timing_path.with_name(f"{stem}.wav").is_file():
        if on_segment is not None:
            for _ in talk.segments:
                on_segment()
        return SynthesisedTalk.load(timing_path)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rasst-synth-") as tmp:
        workdir = Path(tmp)
        speech = _synthesise_segments(talk, engine, workdir, options.workers, on_segment)
        samples, placed = place_segments(talk, speech, options, workdir)
        wav_path = folder / f"{stem}.wav"
        partial = workdir / "talk.wav"
        _write_wav(partial, samples)
        shutil.move(partial, wav_path)
    timing = {
        "talk_id": talk.talk_id,
        "wav": wav_path.name,
        "engine": engine.name,
        "voice": engine.voice,
        "sample_rate": RATE,
        "synth_version": SYNTH_VERSION,
        "options": asdict(options),
        "duration": round(len(samples) / RATE, 3),
        "overrun_segments": sum(1 for p in placed if p.overrun > 0),
        "segments": [asdict(p) for p in placed],
    }
    # Written last: its presence marks a complete cache entry.
    tmp_timing = timing_path.with_suffix(".tmp")
    tmp_timing.write_text(json.dumps(timing, indent=1), encoding="utf-8")
    tmp_timing.replace(timing_path)
    return SynthesisedTalk.load(timing_path)


def _synthesise_segments(
    talk: Talk,
    engine: TtsEngine,
    workdir: Path,
    workers: int,
    on_segment: Callable[[], None] | None,
) -> list[np.ndarray]:
    def one(i: int) -> np.ndarray:
        out = workdir / f"seg{i}.wav"
        engine.synthesise(talk.segments[i].en, out)
        samples = trim_silence(_read_wav(out))
        if on_segment is not None:
            on_segment()
        return samples

    # TTS runs in child processes: threads only wait on them.
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        return list(pool.map(one, range(len(talk.segments))))


def place_segments(
    talk: Talk,
    speech: Sequence[np.ndarray],
    options: SynthOptions,
    workdir: Path,
) -> tuple[np.ndarray, list[PlacedSegment]]:
    """Lay the segments out at their reference offsets (see the module docstring)."""
    placed: list[PlacedSegment] = []
    pieces: list[tuple[int, np.ndarray]] = []
    cursor = 0.0
    for segment, samples in zip(talk.segments, speech, strict=True):
        start = max(segment.start, cursor)
        available = segment.end - start
        seconds = len(samples) / RATE
        tempo = 1.0
        if seconds > available > 0 and shutil.which("sox"):
            tempo = min(seconds / available, options.max_tempo)
            samples = stretch(samples, tempo, workdir)
            seconds = len(samples) / RATE
        first = int(round(start * RATE))
        end = (first + len(samples)) / RATE
        pieces.append((first, samples))
        placed.append(
            PlacedSegment(
                seg_id=segment.seg_id,
                index=segment.index,
                ref_start=segment.start,
                ref_end=segment.end,
                start=round(first / RATE, 4),
                end=round(end, 4),
                tempo=round(tempo, 4),
                overrun=round(max(0.0, end - segment.end), 4),
            )
        )
        cursor = end + options.gap
    last = max((p.end for p in placed), default=0.0)
    total = int(round((last + options.tail) * RATE))
    out = np.zeros(total, dtype=np.int16)
    for first, samples in pieces:
        out[first : first + len(samples)] = samples
    return out, placed
