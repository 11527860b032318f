"""One session's retrieval, chunk by chunk: windows → vectors → FAISS → (re-score) → terms.

Synchronous and CPU-bound by design: the session calls :meth:`ChunkRetriever.process`
in a worker thread (``asyncio.to_thread``) once per chunk, in chunk order. The
speech stream holds the encoder state, so each sample is pushed (decoded) once;
each window is encoded and searched once (it belongs to the chunk in which its
last sample arrives, see :mod:`retriever.windows`).

A :class:`~retriever.encoders.SpanSpeechStream` (the neural MaxSim encoder's
default) replaces the window schedule: the chunk's span ``[start − 1.92 s,
end]`` is encoded once and its sub-windows that reach into the chunk are the
windows searched (the release's serving path).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from kernel.frames import TermHits
from retriever.aggregate import AggregationParams, WindowCandidates, aggregate_chunk
from retriever.encoders import MultiVectorSpeechStream, SpanSpeechStream, SpeechStream
from retriever.index import IndexManager
from retriever.neural.search import search_grouped
from retriever.session import ChunkQuery
from retriever.windows import Window, WindowCache, WindowSchedule


@dataclass(frozen=True, slots=True)
class RetrievalParams:
    aggregation: AggregationParams = field(default_factory=AggregationParams)


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
    ) -> None:
        self._stream = stream
        self._indexes = indexes
        self._glossary_ids = tuple(glossary_ids)
        self._targets = tuple(target_languages)
        self._schedule = schedule or WindowSchedule()
        self._params = params or RetrievalParams()
        self._cache: WindowCache[list[WindowCandidates]] = WindowCache()
        self._next_sample = 0
        self._aggregation = self._params.aggregation

    @property
    def next_sample(self) -> int:
        """Where the next chunk must start."""
        return self._next_sample

    @property
    def stream(self) -> SpeechStream:
        return self._stream

    def skip_to(self, sample: int, piece: int = 16_000) -> None:
        """Treat audio up to ``sample`` as silence (chunks the caller never sent).

        A remote client skips chunks while the service is unreachable; the
        stream counts samples from the start, so the gap is filled to keep later
        windows at their true positions. Pushed in bounded pieces: a stream keeps
        only its recent audio, so a long gap never needs a long buffer.
        """
        if sample < self._next_sample:
            raise ValueError(f"cannot skip back to {sample} from {self._next_sample}")
        silence = np.zeros(piece, dtype=np.int16)
        while self._next_sample < sample:
            n = min(piece, sample - self._next_sample)
            self._stream.push(silence[:n])
            self._next_sample += n
        self._cache.evict_ending_before(sample)

    def set_glossaries(self, glossary_ids: Sequence[str]) -> None:
        """Takes effect from the next chunk (a tuple swap; no lock needed)."""
        self._glossary_ids = tuple(glossary_ids)

    def retrieve(self, query: ChunkQuery) -> TermHits:
        """:class:`~retriever.session.SessionTermRetriever`: the chunk's audio (not its words)."""
        pcm = query.pcm
        if pcm is None or len(pcm) != query.end_sample - query.start_sample:
            raise ValueError("the neural encoder needs the chunk's audio")
        if query.start_sample > self._next_sample:
            # The client skipped chunks (e.g. while the service was down).
            self.skip_to(query.start_sample)
        return self.process(
            query.chunk_index,
            query.start_sample,
            pcm,
            final=query.final,
            aggregation=query.aggregation,
        )

    def close(self) -> None:
        self._stream.close()

    def process(
        self,
        chunk_index: int,
        start_sample: int,
        pcm: np.ndarray,
        *,
        final: bool = False,
        aggregation: AggregationParams | None = None,
    ) -> TermHits:
        """``aggregation`` overrides the params' (per call, e.g. a request's k and τ)."""
        started = time.perf_counter()
        self._aggregation = aggregation or self._params.aggregation
        if start_sample != self._next_sample:
            raise ValueError(f"chunk starts at {start_sample}, expected {self._next_sample}")
        end = start_sample + len(pcm)
        self._stream.push(pcm)
        self._next_sample = end
        if isinstance(self._stream, SpanSpeechStream):
            candidates = self._score_span(start_sample, end)
            return aggregate_chunk(
                chunk_index,
                candidates,
                self._targets,
                self._aggregation,
                elapsed=time.perf_counter() - started,
            )
        windows = self._schedule.windows_for_chunk(start_sample, end, final=final)
        per_window = self._cache.get_or_compute(windows, self._score_windows)
        self._cache.evict_ending_before(end)
        candidates = [c for group in per_window for c in group]
        return aggregate_chunk(
            chunk_index,
            candidates,
            self._targets,
            self._aggregation,
            elapsed=time.perf_counter() - started,
        )

    def _score_span(self, start: int, end: int) -> list[WindowCandidates]:
        """One encoding of the chunk's span; each sub-window's top-K1 (exact MaxSim top-k)."""
        assert isinstance(self._stream, SpanSpeechStream)
        indexes = self._indexes.indexes(self._glossary_ids)
        if end <= start or not indexes:
            return []
        span = self._stream.encode_span(start, end)
        if not span.windows:
            return []
        out: list[WindowCandidates] = []
        for index in indexes:
            found = search_grouped(index, span.vectors, len(span.windows), self._aggregation.k1)
            for w, window in enumerate(span.windows):
                ids, scores = found.term_ids[w], found.scores[w]
                valid = ids >= 0
                out.append(WindowCandidates(window, index.snapshot, ids[valid], scores[valid]))
        return out

    def _score_windows(self, windows: list[Window]) -> list[list[WindowCandidates]]:
        results: list[list[WindowCandidates]] = [[] for _ in windows]
        indexes = self._indexes.indexes(self._glossary_ids)
        if not windows or not indexes:
            return results
        # A multi-vector stream (the neural MaxSim pooling) is searched with every
        # sub-window row, keeping each term's best score per window: the exact
        # MaxSim top-k (retriever.neural.search). Others give one vector per window.
        multi = (
            self._stream.encode_multi(windows)
            if isinstance(self._stream, MultiVectorSpeechStream)
            else None
        )
        queries = self._stream.encode(windows) if multi is None else None
        k = self._aggregation.k1
        for index in indexes:  # each a stable reference for this whole call
            if multi is not None:
                found = search_grouped(index, multi, len(windows), k)
            else:
                assert queries is not None
                found = index.search(queries, k)
            for w, window in enumerate(windows):
                ids = found.term_ids[w]
                scores = found.scores[w]
                valid = ids >= 0
                ids, scores = ids[valid], scores[valid]
                results[w].append(WindowCandidates(window, index.snapshot, ids, scores))
        return results
