"""Which retrieved terms a text-tier turn offers the model.

Retrieval runs per chunk on the audio; the text tier translates segments of
words that may span several chunks, or wait a chunk or two for a clause end.
So a segment's turn offers every term retrieved since the last turn (best score
per source, capped like a catch-up turn), and a term whose source was not in the
segment it was offered with stays on offer for the next ``segments - 1`` turns:
a term heard at a chunk's end is often in the next segment.
"""

from __future__ import annotations

from dataclasses import dataclass

from kernel.frames import TermHits
from server.catchup import merge_terms
from server.translator.terms_check import contains_term


@dataclass(slots=True)
class _Pending:
    hits: TermHits
    age: int = 0


class TermPool:
    """One session's terms waiting to be offered (shared by its target languages)."""

    def __init__(self, max_terms: int, segments: int = 2) -> None:
        self._max_terms = max_terms
        self._segments = segments
        self._pending: list[_Pending] = []

    def add(self, hits: TermHits) -> None:
        if hits.hits:
            self._pending.append(_Pending(hits))

    def offer(self, segment_text: str, chunk_index: int) -> TermHits:
        """The terms for a turn carrying ``segment_text``; ages those it did not contain."""
        merged = merge_terms([p.hits for p in self._pending], chunk_index, self._max_terms)
        kept = []
        for pending in self._pending:
            unseen = tuple(
                h for h in pending.hits.hits if not contains_term(segment_text, h.source)
            )
            if unseen and pending.age + 1 < self._segments:
                kept.append(_Pending(TermHits(pending.hits.chunk_index, unseen), pending.age + 1))
        self._pending = kept
        return merged

    def clear(self) -> None:
        self._pending.clear()
