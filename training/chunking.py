"""A corpus record as serving chunks: audio span, translation increment, gold terms.

Serving cuts the stream into chunks of 0.96 s × lm (:func:`server.audio.chunk_samples`)
and asks the model for each chunk's share of the translation. For records given as
``segments`` this module does the same cut and decides each chunk's share; records given
as ``chunks`` are used as they are.

How a segment's reference translation is shared out (no word aligner needed):

* a chunk may emit the part of the translation proportional to the source words heard
  *by its end*, minus ``lag_words`` (a wait-k style delay that makes anticipation rarer);
  once the segment's last word has been heard, everything left is emitted;
* cuts fall between words (spaced languages) or between characters (zh, ja);
* a gold term's translation is never emitted before its source words end (the model
  cannot know a term it has not heard), and never split across two chunks.

This is an approximation of an alignment: word order differs between languages. Corpora
with real per-chunk translations (e.g. from a word aligner) should use ``chunks``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from evaluation.dataset import match_tokens
from evaluation.metrics.bleu import is_char_level
from kernel.frames import PIPELINE_RATE
from server.audio import chunk_samples
from training.corpus import CorpusRecord, CorpusSegment, CorpusTerm, CorpusWord
from training.tagging import occurrences

# The retriever looks this far back from a chunk's end (its longest window).
LOOKBACK_SECONDS = 1.92


@dataclass(frozen=True, slots=True)
class GoldOccurrence:
    """A gold term spoken in a chunk (it belongs to the chunk where its words end)."""

    source: str
    target: str
    end: float  # seconds


@dataclass(frozen=True, slots=True)
class PlannedChunk:
    index: int
    start_sample: int
    end_sample: int
    translation: str  # the increment to emit (untagged)
    source: str  # source words spoken in the chunk
    gold: tuple[GoldOccurrence, ...]
    # Source text spoken from the retriever's look-back start to the chunk's end: a
    # retrieved term found here is not a "wrong" entry even if it is not a gold term.
    context: str
    has_words: bool
    # False for audio between explicit chunks: fed to the retriever, never a turn.
    emit: bool = True

    @property
    def start(self) -> float:
        return self.start_sample / PIPELINE_RATE

    @property
    def end(self) -> float:
        return self.end_sample / PIPELINE_RATE


@dataclass(frozen=True, slots=True)
class ChunkingParams:
    lm: int = 2
    lag_words: int = 2


def _samples(seconds: float) -> int:
    return round(seconds * PIPELINE_RATE)


def plan_chunks(
    record: CorpusRecord, total_samples: int, params: ChunkingParams
) -> list[PlannedChunk]:
    """The record's chunks over ``total_samples`` of audio, in order."""
    if record.chunks is not None:
        return _explicit_chunks(record, total_samples)
    assert record.segments is not None
    size = chunk_samples(params.lm)
    bounds = [(s, min(s + size, total_samples)) for s in range(0, total_samples, size)]
    increments: list[list[str]] = [[] for _ in bounds]
    golds: list[list[GoldOccurrence]] = [[] for _ in bounds]
    words_in: list[list[str]] = [[] for _ in bounds]
    char_level = is_char_level(record.target_lang)
    for segment in record.segments:
        words = _segment_words(segment)
        located = [(t, _term_end(t, segment, words)) for t in segment.terms]
        pieces = _split_translation(
            segment, words, located, [e / PIPELINE_RATE for _, e in bounds], record, params
        )
        for i, piece in pieces.items():
            increments[i].append(piece)
        for term, end in located:
            golds[_chunk_at(bounds, end)].append(GoldOccurrence(term.source, term.target, end))
        for word in words:
            words_in[_chunk_at(bounds, (word.start + word.end) / 2, inclusive_end=False)].append(
                word.word
            )
    chunks = []
    for i, (start, end) in enumerate(bounds):
        joiner = "" if char_level else " "
        text = joiner.join(p.strip() for p in increments[i] if p.strip())
        chunks.append(
            PlannedChunk(
                index=i,
                start_sample=start,
                end_sample=end,
                translation=text,
                source=" ".join(words_in[i]),
                gold=tuple(golds[i]),
                context=_context(record.segments, start, end),
                has_words=bool(words_in[i] or golds[i] or text),
            )
        )
    return chunks


def _chunk_at(bounds: Sequence[tuple[int, int]], seconds: float, inclusive_end: bool = True) -> int:
    """The chunk holding time ``seconds`` (an end time belongs to the chunk it closes)."""
    sample = _samples(seconds)
    for i, (start, end) in enumerate(bounds):
        if start < sample <= end if inclusive_end else start <= sample < end:
            return i
    return 0 if sample <= bounds[0][0] else len(bounds) - 1


def _context(segments: Sequence[CorpusSegment], start: int, end: int) -> str:
    lookback = start - _samples(LOOKBACK_SECONDS)
    return " ".join(
        s.source for s in segments if _samples(s.start) < end and _samples(s.end) > lookback
    )


def _segment_words(segment: CorpusSegment) -> list[CorpusWord]:
    """The segment's timed words, or its text spread evenly over its span (by length)."""
    if segment.words:
        return sorted(segment.words, key=lambda w: w.start)
    tokens = segment.source.split()
    if not tokens:
        return []
    total = sum(len(t) for t in tokens)
    span = segment.end - segment.start
    words, at = [], segment.start
    for token in tokens:
        length = span * len(token) / total
        words.append(CorpusWord(start=at, end=at + length, word=token))
        at += length
    return words


def _term_end(term: CorpusTerm, segment: CorpusSegment, words: Sequence[CorpusWord]) -> float:
    """When a gold term's words end: given, found among the timed words, or estimated."""
    if term.end is not None:
        return term.end
    needle = match_tokens(term.source)
    parts: list[tuple[str, CorpusWord]] = [
        (part, word) for word in words for part in match_tokens(word.word)
    ]
    for i in range(len(parts) - len(needle) + 1):
        if needle and [p for p, _ in parts[i : i + len(needle)]] == needle:
            return parts[i + len(needle) - 1][1].end
    # Not among the words: its position in the text, mapped onto the segment's span.
    at = segment.source.casefold().find(term.source.casefold())
    if at < 0 or not segment.source:
        return segment.end
    fraction = (at + len(term.source)) / len(segment.source)
    return segment.start + fraction * (segment.end - segment.start)


def _cut_positions(text: str, char_level: bool) -> list[int]:
    """Where a translation may be cut: between characters, or before each word."""
    if char_level:
        return list(range(len(text) + 1))
    return sorted({0, len(text), *(m.start() for m in re.finditer(r"(?<=\s)\S", text))})


def _split_translation(
    segment: CorpusSegment,
    words: Sequence[CorpusWord],
    located: Sequence[tuple[CorpusTerm, float]],
    boundaries: Sequence[float],
    record: CorpusRecord,
    params: ChunkingParams,
) -> dict[int, str]:
    """Chunk index → the part of ``segment.translation`` emitted in that chunk."""
    text = segment.translation
    if not text.strip():
        return {}
    char_level = is_char_level(record.target_lang)
    cuts = _cut_positions(text, char_level)
    spoken_end = words[-1].end if words else segment.end
    # Each gold term's k-th spoken occurrence owns the k-th occurrence of its target.
    protected: list[tuple[int, int, float]] = []
    by_pair: dict[tuple[str, str], list[float]] = {}
    for term, end in located:
        by_pair.setdefault((term.source.casefold(), term.target), []).append(end)
    for (_, target), ends in by_pair.items():
        spans = occurrences(text, target, record.target_lang)
        for (at, stop), end in zip(spans, sorted(ends), strict=False):
            protected.append((at, stop, end))
    first = _chunk_index(boundaries, segment.start)
    last = _chunk_index(boundaries, spoken_end)
    pieces: dict[int, str] = {}
    emitted = 0
    n_words = len(words)
    for i in range(first, last + 1):
        boundary = boundaries[i]
        if i == last:
            cut = len(text)
        else:
            heard = sum(1 for w in words if w.end <= boundary)
            fraction = max(0, heard - params.lag_words) / n_words if n_words else 0.0
            goal = math.floor(fraction * len(text))
            cut = max((c for c in cuts if c <= goal), default=0)
            for at, stop, end in protected:
                if end > boundary:
                    cut = min(cut, at)  # not heard yet: stop before it
                elif at < cut < stop:
                    cut = at  # never split a term
            cut = max(cut, emitted)
        if cut > emitted:
            pieces[i] = text[emitted:cut]
            emitted = cut
    return pieces


def _chunk_index(boundaries: Sequence[float], seconds: float) -> int:
    """The chunk whose end is the first at or after ``seconds``."""
    for i, end in enumerate(boundaries):
        if seconds <= end + 1e-9:
            return i
    return len(boundaries) - 1


def _explicit_chunks(record: CorpusRecord, total_samples: int) -> list[PlannedChunk]:
    assert record.chunks is not None
    out: list[PlannedChunk] = []
    cursor = 0

    def filler(start: int, end: int) -> None:
        out.append(PlannedChunk(len(out), start, end, "", "", (), "", False, emit=False))

    for chunk in record.chunks:
        start, end = _samples(chunk.start), min(_samples(chunk.end), total_samples)
        if start > cursor:
            filler(cursor, start)
        if end <= start:
            continue
        gold = tuple(
            GoldOccurrence(t.source, t.target, t.end if t.end is not None else chunk.end)
            for t in chunk.terms
        )
        out.append(
            PlannedChunk(
                index=len(out),
                start_sample=start,
                end_sample=end,
                translation=chunk.translation.strip(),
                source=chunk.source,
                gold=gold,
                context=chunk.source,
                has_words=bool(chunk.source.strip() or chunk.translation.strip() or gold),
            )
        )
        cursor = end
    if cursor < total_samples:
        filler(cursor, total_samples)
    return out
