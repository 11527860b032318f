"""The retrieve stage: embedded (in process, the default) or remote (the retriever service).

Both implement :class:`server.stages.RetrieverService`. Both take their word
evidence from the session's caption decoder in the speech worker
(:attr:`ChunkAnalysis.words` / ``partial_words``), and both keep that decoder on
a glossary-biased language model (:class:`DecoderBiasing`): the bias is what
makes terms come out of the decoder spelled as the glossary spells them, and
the decoder runs in the gateway's speech workers whichever retriever scores.

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
from retriever.aggregate import AggregationParams
from retriever.biased_lm import BiasParams, LanguageModelSpec, build_biased_lm, ensure_base_lm
from retriever.index import IndexManager, IndexParams
from retriever.phonetic import PhoneticTermEncoder
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
from server.errors import ErrorCode
from server.frames import AudioChunk, ChunkAnalysis, StageWarning, TermHits
from server.stages import SessionContext, WarnFn
from server.workers import SpeechWorkers, exit_with_parent

log = logging.getLogger(__name__)


# -- glossary-biased decoding -----------------------------------------------------------


def _build_lm_in_process(
    cache_dir: Path, snapshots: Sequence[GlossarySnapshot], params: BiasParams
) -> LanguageModelSpec:
    """Runs in the LM builder process (seconds of file work; never in the gateway)."""
    base = ensure_base_lm(cache_dir)
    return build_biased_lm(base, snapshots, cache_dir / "biased", params)


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


class LanguageModelBuilder:
    """Builds glossary-biased LMs in one background process, cached on disk by glossary versions.

    One process, not a thread: the build is Python text processing plus
    pocketsphinx's LM conversion, which would hold the gateway's GIL for
    seconds. Concurrent requests for the same glossary set share one build.
    """

    def __init__(self, cache_dir: Path, params: BiasParams | None = None) -> None:
        self._cache_dir = cache_dir
        self._params = params or BiasParams()
        self._executor: ProcessPoolExecutor | None = None
        self._builds: dict[str, asyncio.Future[LanguageModelSpec]] = {}

    def pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = _single_process_pool()
        return self._executor

    async def build(self, snapshots: Sequence[GlossarySnapshot]) -> LanguageModelSpec:
        from retriever.biased_lm import lm_key

        key = lm_key(snapshots, self._params)
        future = self._builds.get(key)
        if future is None or (future.done() and future.exception() is not None):
            loop = asyncio.get_running_loop()
            future = asyncio.ensure_future(
                loop.run_in_executor(
                    self.pool(),
                    _build_lm_in_process,
                    self._cache_dir,
                    tuple(snapshots),
                    self._params,
                )
            )
            self._builds[key] = future
            # Forget old builds: the spec is cheap to rebuild from the disk cache.
            while len(self._builds) > 64:
                self._builds.pop(next(iter(self._builds)))
        return await asyncio.shield(future)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


class DecoderBiasing:
    """Keeps one session's caption decoder on the biased LM of its current glossaries."""

    def __init__(
        self, builder: LanguageModelBuilder | None, speech: SpeechWorkers | None, session_id: str
    ) -> None:
        self._builder = builder
        self._speech = speech
        self._session_id = session_id
        self._task: asyncio.Task[None] | None = None
        self.active: str = ""

    def update(self, snapshots: Sequence[GlossarySnapshot]) -> None:
        """Build (in the background) and switch to the LM of ``snapshots``."""
        if self._builder is None or self._speech is None:
            return
        if self._task is not None:
            self._task.cancel()
        self._task = asyncio.get_running_loop().create_task(self._switch(tuple(snapshots)))

    async def _switch(self, snapshots: tuple[GlossarySnapshot, ...]) -> None:
        assert self._builder is not None and self._speech is not None
        try:
            spec = await self._builder.build(snapshots) if snapshots else None
            session = self._speech.session(self._session_id)
            if session is not None:
                await session.set_language_model(spec)
                self.active = spec.name if spec else ""
        except asyncio.CancelledError:
            raise
        except Exception:
            # Captions and retrieval go on with the default LM; worse, not broken.
            log.warning("could not switch to the glossary-biased LM", exc_info=True)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


# -- embedded ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EmbeddedRetrievalParams:
    cache_dir: Path
    retrieval: WordRetrievalParams = field(default_factory=WordRetrievalParams)
    index: IndexParams = field(default_factory=IndexParams)
    bias: BiasParams = field(default_factory=BiasParams)
    biased_lm: bool = True
    # How long a session start waits for its glossaries' first index builds.
    index_wait_seconds: float = 2.0


class EmbeddedRetrieverService:
    """In-process retrieval over the speech workers' word evidence (the default)."""

    def __init__(self, params: EmbeddedRetrievalParams, speech: SpeechWorkers | None) -> None:
        self._params = params
        self._speech = speech
        self.indexes = IndexManager(
            PhoneticTermEncoder(), params.index, cache_root=params.cache_dir / "index"
        )
        self._matchers = TextMatchers()
        self._builder = (
            LanguageModelBuilder(params.cache_dir / "lm", params.bias) if params.biased_lm else None
        )
        # Letter-to-sound (for out-of-vocabulary terms) trains in the LM builder's
        # process, queued before any LM build that needs it, or in a one-off helper.
        self._helper: ProcessPoolExecutor | None = None
        if self._builder is not None:
            prefetch_letter_to_sound(self._builder.pool())
        else:
            self._helper = _single_process_pool()
            prefetch_letter_to_sound(self._helper)
        # The pronunciation dictionary loads in the background (~2 s), so no session
        # waits for it.
        threading.Thread(
            target=warm_up, args=(False,), name="retrieval-warm-up", daemon=True
        ).start()

    async def aclose(self) -> None:
        if self._builder is not None:
            self._builder.close()
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
        biasing = DecoderBiasing(self._builder, self._speech, context.session_id)
        biasing.update(glossaries)
        return EmbeddedSessionRetriever(self, core, biasing)


class EmbeddedSessionRetriever:
    def __init__(
        self,
        service: EmbeddedRetrieverService,
        core: WordEvidenceRetriever,
        biasing: DecoderBiasing,
    ) -> None:
        self._service = service
        self._core = core
        self._biasing = biasing
        # Chunks are retrieved one at a time, in order; the lock makes that explicit.
        self._lock = asyncio.Lock()

    async def retrieve(self, chunk: AudioChunk, analysis: ChunkAnalysis) -> TermHits:
        async with self._lock:
            return await asyncio.to_thread(
                self._core.process,
                chunk.index,
                chunk.start_sample,
                chunk.end_sample,
                analysis.words,
                analysis.partial_words,
                final=chunk.final,
            )

    def set_glossaries(self, glossaries: Sequence[GlossarySnapshot]) -> None:
        for snapshot in glossaries:
            self._service.indexes.update(snapshot)  # background build, atomic swap
        self._core.set_glossaries([g.id for g in glossaries])
        self._biasing.update(glossaries)

    async def aclose(self) -> None:
        await self._biasing.aclose()


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
    bias: BiasParams = field(default_factory=BiasParams)
    biased_lm: bool = True


class RemoteRetrieverService:
    """HTTP client of the retriever service (one connection pool for all sessions)."""

    def __init__(self, params: RemoteRetrievalParams, speech: SpeechWorkers | None) -> None:
        self._params = params
        self._speech = speech
        self._client = httpx.AsyncClient(
            base_url=params.url,
            timeout=httpx.Timeout(
                params.read_timeout, connect=params.connect_timeout, pool=params.connect_timeout
            ),
        )
        self._builder = (
            LanguageModelBuilder(params.cache_dir / "lm", params.bias) if params.biased_lm else None
        )

    async def aclose(self) -> None:
        await self._client.aclose()
        if self._builder is not None:
            self._builder.close()

    async def open_session(
        self, context: SessionContext, glossaries: Sequence[GlossarySnapshot], warn: WarnFn
    ) -> RemoteSessionRetriever:
        biasing = DecoderBiasing(self._builder, self._speech, context.session_id)
        biasing.update(glossaries)
        return RemoteSessionRetriever(
            self._client, self._params, context, glossaries, warn, biasing
        )


class RemoteSessionRetriever:
    def __init__(
        self,
        client: httpx.AsyncClient,
        params: RemoteRetrievalParams,
        context: SessionContext,
        glossaries: Sequence[GlossarySnapshot],
        warn: WarnFn,
        biasing: DecoderBiasing,
    ) -> None:
        self._client = client
        self._params = params
        self._context = context
        self._glossaries = {g.id: g for g in glossaries}
        self._warn = warn
        self._biasing = biasing
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
        self._biasing.update(glossaries)

    async def aclose(self) -> None:
        await self._biasing.aclose()
        if not self._down:
            # Free the service's session state now rather than at its idle timeout.
            with contextlib.suppress(httpx.HTTPError):
                await self._client.delete(f"/v1/sessions/{self._context.session_id}")
