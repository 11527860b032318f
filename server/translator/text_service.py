"""The translate stage backed by a text LLM: captions in, translation out.

The tier below the speech LLM (docs/translator.md): any OpenAI-compatible
chat server (vLLM with a text model, llama.cpp's server, Ollama, a hosted
API) translates the speech front end's captions. It keeps what makes the
speech tier terminology-aware — the retrieved ``term_map`` in every turn —
and adds a check the speech tier cannot make: the text tier knows the source
words, so it can tell whether each term that was *said* was rendered as the
glossary says (``terms_missed``), and ask once for a repair when not.

Same interface, events and fault handling as :mod:`server.translator.service`:
one :class:`History` per target language trimmed a block at a time (prefix
caches), ``cache_salt`` per tenant where the server is vLLM, the shared
:class:`ChatClient` (timeouts, deadline, breaker), one warning per outage.
Which words a chunk's turn carries is the :class:`TextPolicy`'s decision; a
chunk with nothing due gets an empty commit and costs no request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
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
from server.translator.messages import Message, base_language
from server.translator.outage import OutageReport
from server.translator.params import TranslatorParams
from server.translator.service import cache_salt, terms_used
from server.translator.term_pool import TermPool
from server.translator.terms_check import repair_messages, terms_missed
from server.translator.text_messages import build_text_messages, text_user_turn
from server.translator.text_policy import Segment, TextPolicy

log = logging.getLogger(__name__)


class TextTranslatorService:
    """The text translator service; one per process, shared by all sessions."""

    def __init__(
        self,
        params: TranslatorParams,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._params = params
        self._clock = clock
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
        self._extras: bool | None = params.text.vllm_extras
        self._lookup_lock = asyncio.Lock()

    @property
    def params(self) -> TranslatorParams:
        return self._params

    @property
    def client(self) -> ChatClient:
        return self._client

    @property
    def clock(self) -> Callable[[], float]:
        return self._clock

    async def open_session(self, context: SessionContext, warn: WarnFn) -> TextSessionTranslator:
        return TextSessionTranslator(self, context, warn)

    async def model_name(self, lang: str | None = None) -> str:
        if lang is not None and (per_lang := self._params.models.get(base_language(lang))):
            return per_lang
        await self._look_up()
        assert self._model is not None
        return self._model

    async def vllm_extras(self) -> bool:
        """Whether to send vLLM's own fields (``cache_salt``, ``top_k``)."""
        await self._look_up()
        return bool(self._extras)

    async def check_ready(self) -> bool:
        try:
            models = await self._client.list_models()
        except LlmError:
            return False
        wanted = {self._params.model, *self._params.models.values()} - {None}
        return wanted <= set(models)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _look_up(self) -> None:
        """Learn the model name and server kind from ``/v1/models`` once (when not configured)."""
        if self._model is not None and self._extras is not None:
            return
        async with self._lookup_lock:
            if self._model is not None and self._extras is not None:
                return
            entries = await self._client.model_entries()
            if not entries:
                raise LlmError("the LLM server serves no model", outage=True)
            if self._model is None:
                self._model = str(entries[0]["id"])
            if self._extras is None:
                served = [e for e in entries if e["id"] == self._model] or entries
                self._extras = str(served[0].get("owned_by", "")).lower() == "vllm"


@dataclass(slots=True)
class _LaneResult:
    error: BaseException | None = None


@dataclass(slots=True)
class _Turn:
    """One language's request for a segment, as built and as answered."""

    lang: str
    term_map: list[tuple[str, str]]
    messages: list[Message]
    raw: str = ""
    end: StreamEnd | None = None
    ttft: float | None = None
    error: LlmError | None = None
    extra: dict[str, object] = field(default_factory=dict)


class TextSessionTranslator:
    """One session's text translation state: the policy, a history per language."""

    def __init__(self, service: TextTranslatorService, context: SessionContext, warn: WarnFn):
        params = service.params
        self._service = service
        self._context = context
        self._warn = warn
        self._salt = cache_salt(context.tenant)
        self._policy = TextPolicy(params.text.policy)
        self._histories = {
            lang: History(params.history, context.lm) for lang in context.target_languages
        }
        self._terms = TermPool(params.text.max_terms)
        self._headers = {params.session_header: context.session_id} if params.session_header else {}
        self._outage = OutageReport(context, warn)

    @property
    def policy(self) -> TextPolicy:
        return self._policy

    def history(self, lang: str) -> History:
        return self._histories[lang]

    async def translate(
        self, chunk: AudioChunk, terms: TermHits, analysis: ChunkAnalysis | None = None
    ) -> AsyncIterator[TranslationEvent]:
        """Deltas as they stream, then one commit per target language (empty while waiting)."""
        self._terms.add(terms)
        analysis = analysis or ChunkAnalysis(chunk_index=chunk.index, speech_samples=0)
        segment = self._policy.push(analysis, chunk.end_sample, final=chunk.final)
        if segment is None:
            for lang in self._context.target_languages:
                yield TranslationCommit(
                    chunk.index,
                    lang,
                    "",
                    extra={"policy": "wait", "pending_words": self._policy.pending_words()},
                )
            return
        merged = self._terms.offer(segment.text, chunk.index)
        queue: asyncio.Queue[TranslationEvent | _LaneResult] = asyncio.Queue()
        # Plain tasks, cancelled in finally: a TaskGroup cannot span an async
        # generator's yields (see VllmSessionTranslator.translate).
        tasks = [
            asyncio.create_task(
                self._run_lane(lang, chunk, segment, merged, queue),
                name=f"translate-text-{self._context.session_id}-{chunk.index}-{lang}",
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
        self._histories.clear()
        self._terms.clear()

    async def _run_lane(
        self,
        lang: str,
        chunk: AudioChunk,
        segment: Segment,
        terms: TermHits,
        queue: asyncio.Queue[TranslationEvent | _LaneResult],
    ) -> None:
        try:
            await self._translate_lang(lang, chunk, segment, terms.term_map(lang), queue.put_nowait)
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
        segment: Segment,
        term_map: list[tuple[str, str]],
        emit: Callable[[TranslationEvent], None],
    ) -> None:
        history = self._histories[lang]
        user_turn = text_user_turn(segment.text, term_map)
        turn = _Turn(lang, term_map, build_text_messages(lang, history, user_turn))
        max_tokens = self._service.params.text.max_tokens(len(segment.words))
        visible = ""

        def on_text(text: str) -> None:
            nonlocal visible
            visible += text
            emit(TranslationDelta(chunk.index, lang, text, visible))

        await self._complete(turn, max_tokens, on_text)
        # The deltas' text: a commit without a repair is exactly their concatenation.
        text = turn.raw
        missed = terms_missed(segment.text, text, term_map)
        extra: dict[str, object] = {
            "history_chunks": len(history),
            "source": segment.text,
            "policy": segment.reason.value,
            **turn.extra,
        }
        if turn.error is None and missed and self._service.params.text.repair:
            repaired = await self._repair(turn, text, missed, max_tokens)
            extra["repair"] = repaired is not None
            if repaired is not None:
                still = terms_missed(segment.text, repaired, term_map)
                if len(still) < len(missed):
                    extra["draft"] = text
                    text, missed = repaired, still
        if turn.error is None:
            self._outage.recovered()
            history.append(user_turn, text)
        else:
            self._outage.failed(turn.error, chunk.index)
            extra.update(error=str(turn.error), incomplete=bool(turn.raw))
            if turn.error.status == 400:
                history.drop_block()
        emit(
            TranslationCommit(
                chunk_index=chunk.index,
                lang=lang,
                text=text,
                terms_used=terms_used(text, term_map),
                terms_missed=missed,
                raw=turn.raw,
                time_to_first_token=turn.ttft,
                extra=extra,
            )
        )

    async def _complete(
        self, turn: _Turn, max_tokens: int, on_text: Callable[[str], None] | None
    ) -> None:
        """Stream one completion into ``turn`` (text, usage, or the error)."""
        parts: list[str] = []
        started = self._service.clock()
        try:
            body = await self._request_body(turn.lang, turn.messages, max_tokens)
            async for item in self._service.client.stream(body, self._headers):
                if isinstance(item, StreamEnd):
                    turn.end = item
                    continue
                if turn.ttft is None:
                    turn.ttft = self._service.clock() - started
                # Leading whitespace is dropped until the first visible text.
                text = item.text if parts else item.text.lstrip()
                if not text:
                    continue
                parts.append(text)
                if on_text is not None:
                    on_text(text)
        except LlmError as exc:
            turn.error = exc
        turn.raw = "".join(parts)
        if turn.end is not None:
            turn.extra.update(
                finish_reason=turn.end.finish_reason,
                prompt_tokens=turn.end.prompt_tokens,
                completion_tokens=turn.end.completion_tokens,
                cached_tokens=turn.end.cached_tokens,
            )

    async def _repair(
        self, turn: _Turn, draft: str, missed: tuple[str, ...], max_tokens: int
    ) -> str | None:
        """One request for a corrected translation; None when it failed (the draft stands)."""
        repair = _Turn(
            turn.lang, turn.term_map, repair_messages(turn.messages, draft, missed, turn.term_map)
        )
        await self._complete(repair, max_tokens, None)
        if repair.error is not None or not repair.raw.strip():
            log.info("session %s: term repair failed: %s", self._context.session_id, repair.error)
            return None
        return repair.raw.strip()

    async def _request_body(
        self, lang: str, messages: list[Message], max_tokens: int
    ) -> dict[str, Any]:
        decoding = self._service.params.decoding
        body: dict[str, Any] = {
            "model": await self._service.model_name(lang),
            "messages": messages,
            "temperature": decoding.temperature,
            "top_p": decoding.top_p,
            "max_tokens": max_tokens,
            "stream_options": {"include_usage": True},
        }
        if await self._service.vllm_extras():
            body["top_k"] = decoding.top_k
            body["cache_salt"] = self._salt
            # Hybrid thinking models (Qwen3) would otherwise think before every
            # turn: seconds of hidden tokens per segment. Templates without the
            # switch ignore it.
            body["chat_template_kwargs"] = {"enable_thinking": False}
        if decoding.seed is not None:
            body["seed"] = decoding.seed
        return body
