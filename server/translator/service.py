"""The translate stage backed by a vLLM (OpenAI-compatible) speech LLM.

:class:`VllmTranslatorService` is built once at start-up and holds the shared
HTTP connection pool and circuit breaker. Each session gets a
:class:`VllmSessionTranslator` holding one :class:`History` per target
language; a chunk's requests for all its target languages run in parallel and
their events are yielded as they arrive.

Failures never end a session: a failed chunk gets an empty (or partial) commit,
the session is warned once per outage, and the next chunk tries again — the
breaker decides whether that try touches the network.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from kernel.frames import (
    AudioChunk,
    ChunkAnalysis,
    TermHits,
    TranslationCommit,
    TranslationDelta,
)
from server.stages import SessionContext, TranslationEvent, WarnFn
from server.translator.breaker import CircuitBreaker
from server.translator.client import ChatClient, LlmError, StreamEnd, build_http_client
from server.translator.history import History
from server.translator.messages import (
    Message,
    audio_part,
    base_language,
    build_messages,
    build_user_turn,
    pad_audio,
)
from server.translator.outage import OutageReport
from server.translator.params import TranslatorParams
from server.translator.tags import TagStripper

log = logging.getLogger(__name__)


def cache_salt(tenant: str) -> str:
    """A stable per-tenant salt: vLLM never shares prefix-cache blocks across salts.

    Sharing would let one tenant learn from timing whether another tenant's
    prompt (audio, glossary) is cached.
    """
    return hashlib.sha256(f"rasst-cache-salt:{tenant}".encode()).hexdigest()[:32]


def terms_used(text: str, term_map: Sequence[tuple[str, str]]) -> tuple[str, ...]:
    """Glossary sources whose target rendering occurs in the (tag-free) translation."""
    folded = text.casefold()
    return tuple(source for source, target in term_map if target and target.casefold() in folded)


class VllmTranslatorService:
    """The translator service; one per process, shared by all sessions."""

    def __init__(
        self,
        params: TranslatorParams,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._params = params
        self._clock = clock
        # Building the client does no I/O; connections open on first use.
        self._http = build_http_client(
            params.faults, max_connections=params.max_connections, transport=transport
        )
        self._client = ChatClient(
            self._http,
            url=params.url,
            api_key=params.api_key,
            faults=params.faults,
            breaker=CircuitBreaker(params.faults, clock=clock),
        )
        self._model: str | None = params.model
        self._model_lock = asyncio.Lock()

    @property
    def params(self) -> TranslatorParams:
        return self._params

    @property
    def client(self) -> ChatClient:
        return self._client

    @property
    def clock(self) -> Callable[[], float]:
        return self._clock

    async def open_session(self, context: SessionContext, warn: WarnFn) -> VllmSessionTranslator:
        return VllmSessionTranslator(self, context, warn)

    async def model_name(self, lang: str | None = None) -> str:
        """The model for ``lang``: per-language, configured, or the server's first (looked up once)."""
        if lang is not None:
            per_lang = self._params.models.get(base_language(lang))
            if per_lang:
                return per_lang
        if self._model is not None:
            return self._model
        async with self._model_lock:
            if self._model is None:
                models = await self._client.list_models()
                if not models:
                    raise LlmError("the LLM server serves no model", outage=True)
                self._model = models[0]
        return self._model

    async def check_ready(self) -> bool:
        """Whether the endpoint answers and serves the configured model (for /readyz)."""
        try:
            models = await self._client.list_models()
        except LlmError:
            return False
        wanted = {self._params.model, *self._params.models.values()} - {None}
        return wanted <= set(models)

    async def aclose(self) -> None:
        await self._http.aclose()


@dataclass(slots=True)
class _LaneResult:
    """Sentinel a lane puts on the queue when it is finished (or crashed)."""

    error: BaseException | None = None


class VllmSessionTranslator:
    """One session's translation state: a history per target language."""

    def __init__(self, service: VllmTranslatorService, context: SessionContext, warn: WarnFn):
        params = service.params
        self._service = service
        self._context = context
        self._warn = warn
        self._salt = cache_salt(context.tenant)
        self._histories = {
            lang: History(params.history, context.lm) for lang in context.target_languages
        }
        self._headers = {params.session_header: context.session_id} if params.session_header else {}
        # True between the first failed request and the next success: the
        # session is warned once per outage, not once per chunk.
        self._outage = OutageReport(context, warn)

    def history(self, lang: str) -> History:
        return self._histories[lang]

    async def translate(
        self, chunk: AudioChunk, terms: TermHits, analysis: ChunkAnalysis | None = None
    ) -> AsyncIterator[TranslationEvent]:
        """Deltas as they stream, then one commit per target language (the audio is the source)."""
        # The audio part is encoded once and shared by every language's turn.
        params = self._service.params
        audio = audio_part(pad_audio(chunk.pcm, params.min_audio_samples), params.audio_part)
        queue: asyncio.Queue[TranslationEvent | _LaneResult] = asyncio.Queue()
        # Plain tasks rather than a TaskGroup: a TaskGroup cannot span the
        # `yield`s of an async generator (closing the generator raises
        # GeneratorExit inside it). The finally block gives the same guarantee:
        # when the consumer stops or is cancelled, every request is cancelled.
        tasks = [
            asyncio.create_task(
                self._run_lane(lang, chunk, audio, terms.term_map(lang), queue),
                name=f"translate-{self._context.session_id}-{chunk.index}-{lang}",
            )
            for lang in self._context.target_languages
        ]
        try:
            pending = len(tasks)
            while pending:
                item = await queue.get()
                if isinstance(item, _LaneResult):
                    pending -= 1
                    if item.error is not None:
                        raise item.error
                    continue
                yield item
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def aclose(self) -> None:
        # Nothing to release: requests belong to translate() calls and die with them.
        self._histories.clear()

    async def _run_lane(
        self,
        lang: str,
        chunk: AudioChunk,
        audio: Message,
        term_map: list[tuple[str, str]],
        queue: asyncio.Queue[TranslationEvent | _LaneResult],
    ) -> None:
        try:
            await self._translate_lang(lang, chunk, audio, term_map, queue.put_nowait)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug, not an LLM fault: surface it to the session
            queue.put_nowait(_LaneResult(exc))
        else:
            queue.put_nowait(_LaneResult())

    async def _translate_lang(
        self,
        lang: str,
        chunk: AudioChunk,
        audio: Message,
        term_map: list[tuple[str, str]],
        emit: Callable[[TranslationEvent], None],
    ) -> None:
        history = self._histories[lang]
        user_turn = build_user_turn(audio, term_map)
        stripper = TagStripper()
        raw_parts: list[str] = []
        visible = ""
        ttft: float | None = None
        end: StreamEnd | None = None
        error: LlmError | None = None
        started = self._service.clock()
        try:
            body = await self._request_body(lang, history, user_turn, len(chunk.pcm))
            async for item in self._service.client.stream(body, self._headers):
                if isinstance(item, StreamEnd):
                    end = item
                    continue
                if ttft is None:
                    ttft = self._service.clock() - started
                raw_parts.append(item.text)
                new = stripper.feed(item.text)
                if new:
                    visible += new
                    emit(TranslationDelta(chunk.index, lang, new, visible))
        except LlmError as exc:
            error = exc
        tail = stripper.flush()
        if tail:
            visible += tail
            emit(TranslationDelta(chunk.index, lang, tail, visible))
        raw = "".join(raw_parts)
        extra: dict[str, object] = {"history_chunks": len(history)}
        if error is None:
            self._outage.recovered()
            history.append(user_turn, raw)
            if end is not None:
                extra.update(
                    finish_reason=end.finish_reason,
                    prompt_tokens=end.prompt_tokens,
                    completion_tokens=end.completion_tokens,
                    cached_tokens=end.cached_tokens,
                )
        else:
            # A failed chunk stays out of the history: its answer is missing or
            # cut off, and the model must not learn to continue broken turns.
            self._outage.failed(error, chunk.index)
            extra.update(error=str(error), incomplete=bool(raw))
            if error.status == 400:
                # Most likely the prompt outgrew the server's --max-model-len
                # (long answers at high lm): shorten the history so the next
                # chunk can succeed instead of failing for the rest of the session.
                history.drop_block()
        emit(
            TranslationCommit(
                chunk_index=chunk.index,
                lang=lang,
                text=visible,
                terms_used=terms_used(visible, term_map),
                raw=raw,
                time_to_first_token=ttft,
                extra=extra,
            )
        )

    async def _request_body(
        self, lang: str, history: History, user_turn: Message, samples: int
    ) -> dict[str, Any]:
        params = self._service.params
        decoding = params.decoding
        body: dict[str, Any] = {
            "model": await self._service.model_name(lang),
            "messages": build_messages(lang, history, user_turn, params.prompt_style),
            "temperature": decoding.temperature,
            "top_p": decoding.top_p,
            "top_k": decoding.top_k,
            # By the turn's audio: a catch-up turn of n merged chunks gets n budgets.
            "max_tokens": decoding.max_tokens(self._context.lm, samples),
            "stream_options": {"include_usage": True},
            "cache_salt": self._salt,
        }
        if decoding.seed is not None:
            body["seed"] = decoding.seed
        return body
