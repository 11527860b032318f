"""The retriever service's core, without HTTP: glossaries, indexes, per-session state, batching.

:class:`RetrievalEngine` is what ``retriever.service`` exposes over HTTP: it
keeps uploaded glossary snapshots by ``(id, version)``, their FAISS indexes
(:class:`retriever.index.IndexManager`, built in the background) and one
:class:`retriever.word_evidence.WordEvidenceRetriever` per streaming session
(dropped after ``session_ttl_seconds`` without a request).
With the neural encoder (:mod:`retriever.encoder_factory`) a session is a
:class:`retriever.chunk_retriever.ChunkRetriever` over its own speech stream
instead: it retrieves from the chunk's audio, not from recognised words.

:class:`RequestBatcher` collects the retrieve calls that arrive within a short
window (or up to ``max_batch``) and runs them in one worker-thread hop, so the
event loop never blocks on FAISS or re-scoring and concurrent sessions share
the hop instead of each paying for it. With the neural encoder the requests
of a batch run at once in a thread pool, so the model's own micro-batcher can
put their chunks' spans (or windows) into one forward pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from glossary.model import GlossarySnapshot
from kernel.frames import TermHits
from retriever.aggregate import AggregationParams
from retriever.chunk_retriever import ChunkRetriever, RetrievalParams
from retriever.encoder_factory import RetrievalEncoders, phonetic_encoders
from retriever.index import IndexManager, IndexParams
from retriever.session import ChunkQuery, SessionTermRetriever
from retriever.wire import GlossaryRef, MissingGlossaries, RetrieveQuery
from retriever.word_evidence import TextMatchers, WordEvidenceRetriever, WordRetrievalParams


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
    retriever: SessionTermRetriever
    glossaries: tuple[str, ...]
    last_used: float
    # One chunk at a time per session: retrievers are not thread-safe, and
    # with concurrent batches a client's retry could overlap its first try.
    lock: threading.Lock = field(default_factory=threading.Lock)

    def close(self) -> None:
        # Called from the event loop too (DELETE /v1/sessions): never wait for a
        # running chunk; a busy stream is just left to the garbage collector.
        if self.lock.acquire(blocking=False):
            try:
                self.retriever.close()
            finally:
                self.lock.release()


class RetrievalEngine:
    """Thread-safe: the batcher's worker thread and the HTTP handlers both call it."""

    def __init__(
        self, params: EngineParams | None = None, encoders: RetrievalEncoders | None = None
    ) -> None:
        self.params = params or EngineParams()
        # The engine owns the encoders it is given: close() closes them.
        self.encoders = encoders or phonetic_encoders()
        self.indexes = IndexManager(
            self.encoders.terms, self.params.index, cache_root=self.params.cache_dir
        )
        self.matchers = TextMatchers()
        self._snapshots: dict[tuple[str, int], GlossarySnapshot] = {}
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self.indexes.close()
        with self._lock:
            sessions = list(self._sessions.values())
            self._sessions.clear()
        for session in sessions:
            session.close()
        self.encoders.close()

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
            session = self._sessions.pop(session_id, None)
        if session is not None:
            session.close()

    def retrieve(
        self, query: RetrieveQuery, n_samples: int, pcm: np.ndarray | None = None
    ) -> TermHits | MissingGlossaries:
        """One chunk of one session (blocking: FAISS + re-scoring, or the neural encode).

        ``pcm`` (int16) is the chunk's audio; the neural encoder needs it, the
        phonetic path uses the query's words and only the chunk's length.
        """
        missing = self.missing(query.glossaries)
        if missing:
            return MissingGlossaries(missing=missing)
        ids = tuple(r.id for r in query.glossaries)
        for ref in query.glossaries:
            self._wait_for_index(ref)
        session = self._session(query, ids)
        tau = self.encoders.tau if self.encoders.tau is not None else query.tau
        aggregation = AggregationParams(k1=query.k, k2=query.k, tau=tau)
        query_chunk = ChunkQuery(
            chunk_index=query.chunk_index,
            start_sample=query.start_sample,
            end_sample=query.start_sample + n_samples,
            pcm=pcm,
            words=[w.recognized() for w in query.words],
            partial_words=[w.recognized() for w in query.partial_words],
            final=query.final,
            aggregation=aggregation,
        )
        with session.lock:
            return session.retriever.retrieve(query_chunk)

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
            expired = [
                s
                for s, v in self._sessions.items()
                if now - v.last_used > self.params.session_ttl_seconds
            ]
            dropped = [self._sessions.pop(sid) for sid in expired]
            session = self._sessions.get(query.session_id)
            if session is None:
                session = _Session(self._new_retriever(query, ids), ids, now)
                self._sessions[query.session_id] = session
            elif session.glossaries != ids:
                session.retriever.set_glossaries(ids)
                session.glossaries = ids
            session.last_used = now
        for old in dropped:
            old.close()
        return session

    def _new_retriever(self, query: RetrieveQuery, ids: tuple[str, ...]) -> SessionTermRetriever:
        speech = self.encoders.speech
        if speech is None:
            return WordEvidenceRetriever(
                self.indexes,
                self.matchers,
                ids,
                query.target_languages,
                self.params.retrieval,
            )
        # Opening a stream allocates a small buffer only (no model work).
        return ChunkRetriever(
            speech.open_stream(),
            self.indexes,
            ids,
            query.target_languages,
            params=RetrievalParams(self.params.retrieval.aggregation),
        )


@dataclass(slots=True)
class _Pending:
    query: RetrieveQuery
    n_samples: int
    pcm: np.ndarray | None
    future: asyncio.Future[tuple[TermHits | MissingGlossaries, int]]


class RequestBatcher:
    """Runs concurrent retrieve calls together: one worker-thread hop per batch.

    A batch closes ``window_seconds`` after its first request or at
    ``max_batch`` requests. Requests of one session stay in arrival order
    (sessions send one chunk at a time, in order, anyway).

    With a concurrent engine (the neural encoder) each session's requests of a
    batch run in their own pool thread: one after another, every session's
    windows would be a forward pass of its own; at once, they block on the
    model's micro-batcher together and share one.
    """

    def __init__(
        self, engine: RetrievalEngine, window_seconds: float = 0.005, max_batch: int = 32
    ) -> None:
        self._engine = engine
        self._window = window_seconds
        self._max = max_batch
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        # Sized to a full batch so no request of a batch waits for a thread.
        self._pool = (
            ThreadPoolExecutor(max_workers=max_batch, thread_name_prefix="retrieve")
            if engine.encoders.concurrent
            else None
        )
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
        if self._pool is not None:
            # Off the loop: waits for requests still in their threads.
            await asyncio.to_thread(self._pool.shutdown, True, cancel_futures=True)

    async def submit(
        self, query: RetrieveQuery, n_samples: int, pcm: np.ndarray | None = None
    ) -> tuple[TermHits | MissingGlossaries, int]:
        """The chunk's result and the size of the batch it ran in."""
        future: asyncio.Future[tuple[TermHits | MissingGlossaries, int]] = (
            asyncio.get_running_loop().create_future()
        )
        await self._queue.put(_Pending(query, n_samples, pcm, future))
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
            if self._pool is None:
                results = await asyncio.to_thread(self._run_batch, live)
            else:
                results = await self._run_concurrently(live, self._pool)
            for p, result in zip(live, results, strict=True):
                if p.future.done():
                    continue
                if isinstance(result, Exception):
                    p.future.set_exception(result)
                else:
                    p.future.set_result((result, len(batch)))

    async def _run_concurrently(
        self, batch: list[_Pending], pool: ThreadPoolExecutor
    ) -> list[TermHits | MissingGlossaries | Exception]:
        # One pool task per session, its requests in arrival order inside it.
        by_session: dict[str, list[int]] = {}
        for i, p in enumerate(batch):
            by_session.setdefault(p.query.session_id, []).append(i)
        loop = asyncio.get_running_loop()
        groups = list(by_session.values())
        outputs = await asyncio.gather(
            *(
                loop.run_in_executor(pool, self._run_batch, [batch[i] for i in group])
                for group in groups
            )
        )
        results: list[TermHits | MissingGlossaries | Exception] = [RuntimeError("not run")] * len(
            batch
        )
        for group, output in zip(groups, outputs, strict=True):
            for i, result in zip(group, output, strict=True):
                results[i] = result
        return results

    def _run_batch(self, batch: list[_Pending]) -> list[TermHits | MissingGlossaries | Exception]:
        out: list[TermHits | MissingGlossaries | Exception] = []
        for p in batch:
            try:
                out.append(self._engine.retrieve(p.query, p.n_samples, p.pcm))
            except Exception as exc:  # one bad request fails its caller, not the batch
                out.append(exc)
        return out
