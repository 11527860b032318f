"""The retriever service's core, without HTTP: glossaries, indexes, per-session state, batching.

:class:`RetrievalEngine` is what ``retriever.service`` exposes over HTTP: it
keeps uploaded glossary snapshots by ``(id, version)``, their FAISS indexes
(:class:`retriever.index.IndexManager`, built in the background) and one
:class:`retriever.word_evidence.WordEvidenceRetriever` per streaming session
(dropped after ``session_ttl_seconds`` without a request).

:class:`RequestBatcher` collects the retrieve calls that arrive within a short
window (or up to ``max_batch``) and runs them in one worker-thread hop, so the
event loop never blocks on FAISS or re-scoring and concurrent sessions share
the hop instead of each paying for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from glossary.model import GlossarySnapshot
from retriever.aggregate import AggregationParams
from retriever.index import IndexManager, IndexParams
from retriever.phonetic import PhoneticTermEncoder
from retriever.wire import GlossaryRef, MissingGlossaries, RetrieveQuery
from retriever.word_evidence import TextMatchers, WordEvidenceRetriever, WordRetrievalParams
from server.frames import TermHits


@dataclass(frozen=True, slots=True)
class EngineParams:
    retrieval: WordRetrievalParams = field(default_factory=WordRetrievalParams)
    index: IndexParams = field(default_factory=IndexParams)
    cache_dir: Path | None = None
    session_ttl_seconds: float = 300.0
    # How long a retrieve call waits for a just-uploaded glossary's index.
    index_wait_seconds: float = 10.0


@dataclass(slots=True)
class _Session:
    retriever: WordEvidenceRetriever
    glossaries: tuple[str, ...]
    last_used: float


class RetrievalEngine:
    """Thread-safe: the batcher's worker thread and the HTTP handlers both call it."""

    def __init__(self, params: EngineParams | None = None) -> None:
        self.params = params or EngineParams()
        self.indexes = IndexManager(
            PhoneticTermEncoder(), self.params.index, cache_root=self.params.cache_dir
        )
        self.matchers = TextMatchers()
        self._snapshots: dict[tuple[str, int], GlossarySnapshot] = {}
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self.indexes.close()

    def add_glossary(self, snapshot: GlossarySnapshot) -> None:
        """Store a snapshot and start building its index (returns at once)."""
        with self._lock:
            self._snapshots[snapshot.key] = snapshot
        self.indexes.update(snapshot)

    def missing(self, refs: Sequence[GlossaryRef]) -> list[GlossaryRef]:
        with self._lock:
            return [r for r in refs if (r.id, r.version) not in self._snapshots]

    def drop_session(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)

    def retrieve(self, query: RetrieveQuery, n_samples: int) -> TermHits | MissingGlossaries:
        """One chunk of one session (blocking: FAISS + re-scoring)."""
        missing = self.missing(query.glossaries)
        if missing:
            return MissingGlossaries(missing=missing)
        ids = tuple(r.id for r in query.glossaries)
        for ref in query.glossaries:
            self._wait_for_index(ref)
        session = self._session(query, ids)
        return session.retriever.process(
            query.chunk_index,
            query.start_sample,
            query.start_sample + n_samples,
            [w.recognized() for w in query.words],
            [w.recognized() for w in query.partial_words],
            final=query.final,
            aggregation=AggregationParams(k1=query.k, k2=query.k, tau=query.tau),
        )

    def _wait_for_index(self, ref: GlossaryRef) -> None:
        current = self.indexes.current(ref.id)
        if current is not None and current.snapshot.version >= ref.version:
            return
        with self._lock:
            snapshot = self._snapshots[(ref.id, ref.version)]
        future = self.indexes.update(snapshot)
        with contextlib.suppress(TimeoutError):
            future.result(timeout=self.params.index_wait_seconds)

    def _session(self, query: RetrieveQuery, ids: tuple[str, ...]) -> _Session:
        now = time.monotonic()
        with self._lock:
            for sid in [
                s
                for s, v in self._sessions.items()
                if now - v.last_used > self.params.session_ttl_seconds
            ]:
                del self._sessions[sid]
            session = self._sessions.get(query.session_id)
            if session is None:
                session = _Session(
                    WordEvidenceRetriever(
                        self.indexes,
                        self.matchers,
                        ids,
                        query.target_languages,
                        self.params.retrieval,
                    ),
                    ids,
                    now,
                )
                self._sessions[query.session_id] = session
            elif session.glossaries != ids:
                session.retriever.set_glossaries(ids)
                session.glossaries = ids
            session.last_used = now
            return session


@dataclass(slots=True)
class _Pending:
    query: RetrieveQuery
    n_samples: int
    future: asyncio.Future[tuple[TermHits | MissingGlossaries, int]]


class RequestBatcher:
    """Runs concurrent retrieve calls together: one worker-thread hop per batch.

    A batch closes ``window_seconds`` after its first request or at
    ``max_batch`` requests. Requests of one session stay in arrival order
    (sessions send one chunk at a time, in order, anyway).
    """

    def __init__(
        self, engine: RetrievalEngine, window_seconds: float = 0.005, max_batch: int = 32
    ) -> None:
        self._engine = engine
        self._window = window_seconds
        self._max = max_batch
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.requests = 0
        self.max_seen = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def submit(
        self, query: RetrieveQuery, n_samples: int
    ) -> tuple[TermHits | MissingGlossaries, int]:
        """The chunk's result and the size of the batch it ran in."""
        future: asyncio.Future[tuple[TermHits | MissingGlossaries, int]] = (
            asyncio.get_running_loop().create_future()
        )
        await self._queue.put(_Pending(query, n_samples, future))
        return await future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            deadline = asyncio.get_running_loop().time() + self._window
            while len(batch) < self._max:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                except TimeoutError:
                    break
            self.batches += 1
            self.requests += len(batch)
            self.max_seen = max(self.max_seen, len(batch))
            live = [p for p in batch if not p.future.done()]
            results = await asyncio.to_thread(self._run_batch, live)
            for p, result in zip(live, results, strict=True):
                if p.future.done():
                    continue
                if isinstance(result, Exception):
                    p.future.set_exception(result)
                else:
                    p.future.set_result((result, len(batch)))

    def _run_batch(self, batch: list[_Pending]) -> list[TermHits | MissingGlossaries | Exception]:
        out: list[TermHits | MissingGlossaries | Exception] = []
        for p in batch:
            try:
                out.append(self._engine.retrieve(p.query, p.n_samples))
            except Exception as exc:  # one bad request fails its caller, not the batch
                out.append(exc)
        return out
