"""The retrieve stage: embedded (in process, the default) or remote (the retriever service).

Both implement :class:`server.stages.RetrieverService`. Both take their word
evidence from the session's Whisper captions in the speech worker
(:attr:`ChunkAnalysis.words` / ``partial_words``); the session biases that
recogniser toward its glossary itself (:mod:`server.asr.hotwords`).

* :class:`EmbeddedRetrieverService` scores in this process, off the event loop
  (``asyncio.to_thread``: FAISS and numpy re-scoring take a few ms per chunk),
  with one :class:`retriever.index.IndexManager` for all sessions.
* :class:`RemoteRetrieverService` posts each chunk to the retriever service.
  When the service is down, sessions go on without terms: one
  ``retriever_unavailable`` warning per outage, calls skipped with exponential
  backoff, and terms come back by themselves once it answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from glossary.model import GlossarySnapshot
from kernel.errors import ErrorCode
from kernel.frames import AudioChunk, ChunkAnalysis, StageWarning, TermHits
from retriever.aggregate import AggregationParams
from retriever.index import IndexManager, IndexParams
from retriever.phonetic import PhoneticTermEncoder
from retriever.session import ChunkQuery, SessionTermRetriever
from retriever.wire import (
    QUERY_HEADER,
    GlossaryRef,
    GlossaryUpload,
    MissingGlossaries,
    RetrieveQuery,
    RetrieveResult,
    WordIn,
)
from retriever.word_evidence import (
    TextMatchers,
    WordEvidenceRetriever,
    WordRetrievalParams,
    warm_up,
)
from server.stages import SessionContext, WarnFn
from server.workers import exit_with_parent

log = logging.getLogger(__name__)


def _train_letter_to_sound() -> None:
    """Runs in a helper process: train the letter-to-sound model and write its disk cache."""
    from retriever import pronounce

    pronounce.letter_to_sound()


def prefetch_letter_to_sound(pool: ProcessPoolExecutor) -> None:
    """Train letter-to-sound in ``pool``'s process unless it is cached on disk.

    Training is ~15 s of pure Python: in the gateway it would hold the GIL that
    every live session needs. This process waits for the helper instead of
    training a second copy when it needs the model first.
    """
    from retriever import pronounce

    if pronounce.letter_to_sound_cached():
        return
    future = pool.submit(_train_letter_to_sound)

    def wait() -> None:
        try:
            future.result(timeout=600)
        except Exception as exc:  # the caller then trains in process: slower, still correct
            log.warning("letter-to-sound helper failed: %r", exc)

    pronounce.set_letter_to_sound_pending(wait)


def _single_process_pool() -> ProcessPoolExecutor:
    """One spawned helper process that exits with the gateway, whatever kills it."""
    import multiprocessing

    return ProcessPoolExecutor(
        max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=exit_with_parent
    )


# -- embedded ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EmbeddedRetrievalParams:
    cache_dir: Path
    retrieval: WordRetrievalParams = field(default_factory=WordRetrievalParams)
    index: IndexParams = field(default_factory=IndexParams)
    # How long a session start waits for its glossaries' first index builds.
    index_wait_seconds: float = 2.0


class EmbeddedRetrieverService:
    """In-process retrieval over the speech workers' word evidence (the default)."""

    def __init__(self, params: EmbeddedRetrievalParams) -> None:
        self._params = params
        self.indexes = IndexManager(
            PhoneticTermEncoder(), params.index, cache_root=params.cache_dir / "index"
        )
        self._matchers = TextMatchers()
        # Letter-to-sound (for out-of-vocabulary terms) trains in a one-off helper.
        self._helper: ProcessPoolExecutor | None = _single_process_pool()
        prefetch_letter_to_sound(self._helper)
        # The pronunciation dictionary loads in the background (~2 s), so no session
        # waits for it.
        threading.Thread(
            target=warm_up, args=(False,), name="retrieval-warm-up", daemon=True
        ).start()

    async def aclose(self) -> None:
        if self._helper is not None:
            self._helper.shutdown(wait=False, cancel_futures=True)
        # Waits for a running index build: off the event loop.
        await asyncio.to_thread(self.indexes.close)

    async def open_session(
        self, context: SessionContext, glossaries: Sequence[GlossarySnapshot], warn: WarnFn
    ) -> EmbeddedSessionRetriever:
        futures = [asyncio.wrap_future(self.indexes.update(s)) for s in glossaries]
        # Small glossaries build in milliseconds: wait, so the first chunk finds terms.
        # A huge one keeps building in the background; terms start when it is ready.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._params.index_wait_seconds):
                await asyncio.gather(*(asyncio.shield(f) for f in futures))
        core = WordEvidenceRetriever(
            self.indexes,
            self._matchers,
            [g.id for g in glossaries],
            context.target_languages,
            self._params.retrieval,
        )
        return EmbeddedSessionRetriever(self, core)


class EmbeddedSessionRetriever:
    def __init__(
        self,
        service: EmbeddedRetrieverService,
        core: SessionTermRetriever,
    ) -> None:
        self._service = service
        self._core = core
        # Chunks are retrieved one at a time, in order; the lock makes that explicit.
        self._lock = asyncio.Lock()

    async def retrieve(self, chunk: AudioChunk, analysis: ChunkAnalysis) -> TermHits:
        async with self._lock:
            query = ChunkQuery(
                chunk_index=chunk.index,
                start_sample=chunk.start_sample,
                end_sample=chunk.end_sample,
                words=analysis.words,
                partial_words=analysis.partial_words,
                final=chunk.final,
            )
            return await asyncio.to_thread(self._core.retrieve, query)

    def set_glossaries(self, glossaries: Sequence[GlossarySnapshot]) -> None:
        for snapshot in glossaries:
            self._service.indexes.update(snapshot)  # background build, atomic swap
        self._core.set_glossaries([g.id for g in glossaries])

    async def aclose(self) -> None:
        self._core.close()


# -- remote ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RemoteRetrievalParams:
    url: str
    cache_dir: Path
    aggregation: AggregationParams = field(default_factory=AggregationParams)
    connect_timeout: float = 1.0
    read_timeout: float = 2.0
    backoff_initial: float = 0.5
    backoff_max: float = 8.0


class RemoteRetrieverService:
    """HTTP client of the retriever service (one connection pool for all sessions)."""

    def __init__(self, params: RemoteRetrievalParams) -> None:
        self._params = params
        self._client = httpx.AsyncClient(
            base_url=params.url,
            timeout=httpx.Timeout(
                params.read_timeout, connect=params.connect_timeout, pool=params.connect_timeout
            ),
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def open_session(
        self, context: SessionContext, glossaries: Sequence[GlossarySnapshot], warn: WarnFn
    ) -> RemoteSessionRetriever:
        return RemoteSessionRetriever(self._client, self._params, context, glossaries, warn)


class RemoteSessionRetriever:
    def __init__(
        self,
        client: httpx.AsyncClient,
        params: RemoteRetrievalParams,
        context: SessionContext,
        glossaries: Sequence[GlossarySnapshot],
        warn: WarnFn,
    ) -> None:
        self._client = client
        self._params = params
        self._context = context
        self._glossaries = {g.id: g for g in glossaries}
        self._warn = warn
        # Outage state: calls are skipped until _retry_at; one warning per outage.
        self._down = False
        self._backoff = params.backoff_initial
        self._retry_at = 0.0
        # Words of chunks whose call was skipped, so the service's look-back has them.
        self._unsent: list[WordIn] = []

    async def retrieve(self, chunk: AudioChunk, analysis: ChunkAnalysis) -> TermHits:
        started = time.perf_counter()
        self._unsent.extend(WordIn.of(w) for w in analysis.words)
        if self._down and time.monotonic() < self._retry_at:
            return TermHits(chunk_index=chunk.index)
        agg = self._params.aggregation
        query = RetrieveQuery(
            session_id=self._context.session_id,
            chunk_index=chunk.index,
            start_sample=chunk.start_sample,
            final=chunk.final,
            glossaries=[GlossaryRef(id=g.id, version=g.version) for g in self._glossaries.values()],
            target_languages=list(self._context.target_languages),
            k=agg.k2,
            tau=agg.tau,
            words=self._unsent[-2000:],
            partial_words=[WordIn.of(w) for w in analysis.partial_words],
        )
        try:
            result = await self._call(query, chunk.pcm.tobytes())
        except (httpx.HTTPError, ValueError) as exc:
            self._outage(chunk.index, exc)
            return TermHits(chunk_index=chunk.index, elapsed=time.perf_counter() - started)
        self._unsent.clear()
        if self._down:
            log.info("retriever service is back", extra={"session_id": self._context.session_id})
        self._down = False
        self._backoff = self._params.backoff_initial
        hits = result.term_hits()
        return TermHits(hits.chunk_index, hits.hits, time.perf_counter() - started)

    async def _call(self, query: RetrieveQuery, body: bytes) -> RetrieveResult:
        headers = {
            QUERY_HEADER: query.model_dump_json(),
            "Content-Type": "application/octet-stream",
        }
        for _ in range(2):
            response = await self._client.post("/v1/retrieve", content=body, headers=headers)
            if response.status_code == 409:
                missing = MissingGlossaries.model_validate(response.json()).missing
                await self._upload(missing)
                continue
            response.raise_for_status()
            return RetrieveResult.model_validate(response.json())
        raise httpx.HTTPStatusError(
            "glossaries still missing after upload", request=response.request, response=response
        )

    async def _upload(self, missing: Sequence[GlossaryRef]) -> None:
        for ref in missing:
            snapshot = self._glossaries.get(ref.id)
            if snapshot is None:
                continue
            response = await self._client.put(
                f"/v1/glossaries/{ref.id}/versions/{snapshot.version}",
                content=GlossaryUpload.of(snapshot).model_dump_json(),
                headers={"Content-Type": "application/json"},
            )
            response.raise_for_status()

    def _outage(self, chunk_index: int, exc: Exception) -> None:
        now = time.monotonic()
        if not self._down:
            self._down = True
            self._backoff = self._params.backoff_initial
            log.warning(
                "retriever service unavailable: %r",
                exc,
                extra={"session_id": self._context.session_id},
            )
            self._warn(
                StageWarning(
                    ErrorCode.RETRIEVER_UNAVAILABLE,
                    "the term retriever is unavailable; continuing without terms",
                    chunk_index,
                )
            )
        else:
            self._backoff = min(self._backoff * 2, self._params.backoff_max)
        self._retry_at = now + self._backoff

    def set_glossaries(self, glossaries: Sequence[GlossarySnapshot]) -> None:
        self._glossaries = {g.id: g for g in glossaries}

    async def aclose(self) -> None:
        if not self._down:
            # Free the service's session state now rather than at its idle timeout.
            with contextlib.suppress(httpx.HTTPError):
                await self._client.delete(f"/v1/sessions/{self._context.session_id}")
