"""One session's retrieval, chunk by chunk: windows → vectors → FAISS → (re-score) → terms.

Synchronous and CPU-bound by design: the session calls :meth:`ChunkRetriever.process`
in a worker thread (``asyncio.to_thread``) once per chunk, in chunk order. The
speech stream holds the encoder state, so each sample is pushed (decoded) once;
each window is encoded and searched once (it belongs to the chunk in which its
last sample arrives, see :mod:`retriever.windows`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from glossary.model import GlossarySnapshot
from retriever.aggregate import AggregationParams, WindowCandidates, aggregate_chunk
from retriever.encoders import SpeechStream
from retriever.index import IndexManager
from retriever.windows import Window, WindowCache, WindowSchedule
from server.frames import TermHits


class Rescorer(Protocol):
    """Re-scores FAISS candidates of one window with a finer (slower) measure."""

    def rescore(
        self, stream: SpeechStream, window: Window, snapshot: GlossarySnapshot, term_ids: np.ndarray
    ) -> np.ndarray:
        """Scores for ``term_ids`` (same order); −inf or 0 for "not here"."""
        ...


@dataclass(frozen=True, slots=True)
class RetrievalParams:
    aggregation: AggregationParams = field(default_factory=AggregationParams)
    # FAISS candidates per window and glossary when a re-scorer follows
    # (without one, K1 are asked for directly).
    candidates: int = 200


class ChunkRetriever:
    """Per-session retrieval state. Not thread-safe: one chunk at a time, in order."""

    def __init__(
        self,
        stream: SpeechStream,
        indexes: IndexManager,
        glossary_ids: Sequence[str],
        target_languages: Sequence[str],
        schedule: WindowSchedule | None = None,
        params: RetrievalParams | None = None,
        rescorer: Rescorer | None = None,
    ) -> None:
        self._stream = stream
        self._indexes = indexes
        self._glossary_ids = tuple(glossary_ids)
        self._targets = tuple(target_languages)
        self._schedule = schedule or WindowSchedule()
        self._params = params or RetrievalParams()
        self._rescorer = rescorer
        self._cache: WindowCache[list[WindowCandidates]] = WindowCache()
        self._next_sample = 0

    def set_glossaries(self, glossary_ids: Sequence[str]) -> None:
        """Takes effect from the next chunk (a tuple swap; no lock needed)."""
        self._glossary_ids = tuple(glossary_ids)

    def process(
        self, chunk_index: int, start_sample: int, pcm: np.ndarray, *, final: bool = False
    ) -> TermHits:
        started = time.perf_counter()
        if start_sample != self._next_sample:
            raise ValueError(f"chunk starts at {start_sample}, expected {self._next_sample}")
        end = start_sample + len(pcm)
        self._stream.push(pcm)
        self._next_sample = end
        windows = self._schedule.windows_for_chunk(start_sample, end, final=final)
        per_window = self._cache.get_or_compute(windows, self._score_windows)
        self._cache.evict_ending_before(end)
        candidates = [c for group in per_window for c in group]
        return aggregate_chunk(
            chunk_index,
            candidates,
            self._targets,
            self._params.aggregation,
            elapsed=time.perf_counter() - started,
        )

    def _score_windows(self, windows: list[Window]) -> list[list[WindowCandidates]]:
        results: list[list[WindowCandidates]] = [[] for _ in windows]
        indexes = self._indexes.indexes(self._glossary_ids)
        if not windows or not indexes:
            return results
        queries = self._stream.encode(windows)
        k1 = self._params.aggregation.k1
        k = max(k1, self._params.candidates) if self._rescorer is not None else k1
        for index in indexes:  # each a stable reference for this whole call
            found = index.search(queries, k)
            for w, window in enumerate(windows):
                ids = found.term_ids[w]
                scores = found.scores[w]
                valid = ids >= 0
                ids, scores = ids[valid], scores[valid]
                if self._rescorer is not None and len(ids):
                    scores = self._rescorer.rescore(self._stream, window, index.snapshot, ids)
                    order = np.argsort(-scores, kind="stable")[:k1]
                    ids, scores = ids[order], scores[order]
                results[w].append(WindowCandidates(window, index.snapshot, ids, scores))
        return results
