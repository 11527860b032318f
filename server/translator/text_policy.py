"""When the text tier translates: a simultaneous policy over caption words.

The speech tier translates every chunk's audio as it comes. The text tier
translates *words*, and a word is worth translating once its clause is
complete: a text LLM given half a clause guesses the rest, and then its next
turn contradicts it. So the policy holds words back until a boundary, with a
bound on how long any word waits.

Inputs per chunk (from the speech front end, :class:`~kernel.frames.ChunkAnalysis`):
the *committed* words (final: the recogniser heard the utterance end) and the
open utterance's *revisable* words (its current best hypothesis, which may
still change). Decisions, in order:

1. Committed words not yet sent form a segment at once: an utterance end is a
   pause, the strongest boundary there is.
2. With the tail allowed, the revisable words up to the last clause or sentence
   end (``. , ; : ? !``) form a segment, leaving out words that end within
   ``guard`` of the chunk's end (the recogniser's last word is the one most
   likely to change).
3. Bounded wait: when a word not yet sent ended ``max_wait`` or more before the
   chunk's end, every word not yet sent (up to the guard) forms a segment,
   boundary or not. So no word waits more than ``max_wait`` seconds of audio
   after it was spoken, rounded up to the next chunk end.
4. The stream's last chunk sends whatever is left, guard included.

Everything is counted in samples of the stream, never wall time, so the same
audio gives the same segments (style rule 18). The policy remembers the sample
up to which speech was sent; a committed word whose midpoint lies before it
was already sent as part of the tail (its text may have changed since: the
words are matched by time, not by spelling, so a revised word is not sent
twice).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from kernel.frames import ChunkAnalysis, RecognizedWord, samples_for

CLAUSE_END = (".", ",", ";", ":", "?", "!", "。", "，", "？", "！", "；")


class SegmentReason(StrEnum):
    UTTERANCE_END = "utterance_end"
    CLAUSE = "clause"
    WAIT = "wait"
    FINAL = "final"


@dataclass(frozen=True, slots=True)
class TextPolicyParams:
    """The text tier's simultaneous policy (see the module docstring)."""

    # Translate revisable words at clause boundaries before the utterance ends.
    allow_tail: bool = True
    # Longest a spoken word waits before it is sent, in seconds of audio
    # (rounded up to the next chunk end).
    max_wait_seconds: float = 2.0
    # Revisable words ending this close to the chunk's end are not sent yet.
    guard_seconds: float = 0.3

    def __post_init__(self) -> None:
        if self.max_wait_seconds <= 0:
            raise ValueError("max_wait_seconds must be positive")
        if not 0 <= self.guard_seconds < self.max_wait_seconds:
            raise ValueError("guard_seconds must be in [0, max_wait_seconds)")


@dataclass(frozen=True, slots=True)
class Segment:
    """Source words to translate in one LLM turn."""

    words: tuple[RecognizedWord, ...]
    reason: SegmentReason

    @property
    def text(self) -> str:
        return " ".join(w.word for w in self.words)

    @property
    def start_sample(self) -> int:
        return self.words[0].start_sample

    @property
    def end_sample(self) -> int:
        return self.words[-1].end_sample


def _midpoint(word: RecognizedWord) -> int:
    return (word.start_sample + word.end_sample) // 2


def ends_clause(word: str) -> bool:
    return word.rstrip("\"')]}»”’").endswith(CLAUSE_END)


class TextPolicy:
    """One session's (one source stream's) segmentation state; push a chunk, get a segment."""

    def __init__(self, params: TextPolicyParams) -> None:
        self._params = params
        self._max_wait = samples_for(params.max_wait_seconds)
        self._guard = samples_for(params.guard_seconds)
        # Speech before this sample has been sent.
        self._sent_until = 0
        # Committed words not yet sent, oldest first.
        self._committed: list[RecognizedWord] = []
        # The open utterance's latest hypothesis (replaced by every push that has one).
        self._tail: tuple[RecognizedWord, ...] = ()

    @property
    def sent_until(self) -> int:
        return self._sent_until

    def pending_words(self) -> int:
        return len(self._unsent(self._committed)) + len(self._unsent(self._tail))

    def push(
        self, analysis: ChunkAnalysis, chunk_end: int, *, final: bool = False
    ) -> Segment | None:
        """Take one (possibly merged) chunk's words; the segment to translate now, if any."""
        if analysis.words:
            self._committed.extend(analysis.words)
            # The utterance those words end is no longer open.
            self._tail = ()
        if analysis.partial_words:
            self._tail = analysis.partial_words
        committed = self._unsent(self._committed)
        tail = self._unsent(self._tail) if (self._params.allow_tail or final) else []
        if final:
            return self._take(committed + tail, SegmentReason.FINAL)
        if committed and not tail:
            return self._take(committed, SegmentReason.UTTERANCE_END)
        ready = [w for w in tail if w.end_sample <= chunk_end - self._guard]
        # Wait bound: the oldest unsent word (committed come first in time).
        oldest = (committed + tail)[:1]
        if oldest and oldest[0].end_sample <= chunk_end - self._max_wait:
            return self._take(committed + ready, SegmentReason.WAIT)
        if committed:
            return self._take(committed, SegmentReason.UTTERANCE_END)
        for i in range(len(ready) - 1, -1, -1):
            if ends_clause(ready[i].word):
                return self._take(ready[: i + 1], SegmentReason.CLAUSE)
        return None

    def _unsent(self, words: Sequence[RecognizedWord]) -> list[RecognizedWord]:
        return [w for w in words if _midpoint(w) >= self._sent_until]

    def _take(self, words: list[RecognizedWord], reason: SegmentReason) -> Segment | None:
        if not words:
            return None
        self._sent_until = max(self._sent_until, words[-1].end_sample)
        self._committed = self._unsent(self._committed)
        return Segment(tuple(words), reason)
