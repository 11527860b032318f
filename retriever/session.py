"""The per-session retriever protocol both retrievers implement.

A session's retriever sees the stream one chunk at a time, in order. What it reads of a
chunk depends on the retriever: :class:`~retriever.word_evidence.WordEvidenceRetriever`
(the phonetic default) reads the recognised words, :class:`~retriever.chunk_retriever.
ChunkRetriever` (the neural encoder) reads the audio. A :class:`ChunkQuery` carries both,
so the engine treats every session the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from kernel.frames import RecognizedWord, TermHits
from retriever.aggregate import AggregationParams


@dataclass(frozen=True, slots=True)
class ChunkQuery:
    """One chunk of a session's stream, in 16 kHz samples from the stream start."""

    chunk_index: int
    start_sample: int
    end_sample: int
    # The chunk's audio (int16); None where the caller sends only words.
    pcm: np.ndarray | None = None
    # Word-level evidence from the gateway's captions: final and revisable words.
    words: Sequence[RecognizedWord] = ()
    partial_words: Sequence[RecognizedWord] = ()
    # The stream's last chunk (the window schedule flushes its tail).
    final: bool = False
    # Overrides the retriever's own K1, K2 and τ for this call.
    aggregation: AggregationParams | None = None


class SessionTermRetriever(Protocol):
    """One session's retrieval state. Not thread-safe: one chunk at a time, in order."""

    def retrieve(self, query: ChunkQuery) -> TermHits:
        """The terms found in (or up to) this chunk. Blocking: FAISS, or a model forward."""
        ...

    def set_glossaries(self, glossary_ids: Sequence[str]) -> None:
        """Takes effect from the next chunk."""
        ...

    def close(self) -> None:
        """Release what the session holds (a speech stream); idempotent."""
        ...
