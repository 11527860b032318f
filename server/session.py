"""One streaming session: from the first WebSocket message to the close.

Data flows one way through four tasks joined by queues::

    receiver  --chunks-->  analyser  --analysed-->  finisher  --events-->  sender
    (decode, pace,          (VAD, captions,          (translation,          (JSON to
     resample, chunk)        term retrieval)          chunk.done)            the socket)

Backpressure policy (documented in docs/protocol.md):

* The receiver never waits on processing, so control messages (``session.end``)
  are read at once. Audio is never dropped: when the server falls behind, the
  backlog grows, ``chunk.done`` reports it as ``lag_seconds``, a ``lagging``
  warning is sent, and past ``max_backlog_seconds`` the session ends with
  ``backlog_exceeded`` rather than silently skip audio.
* Captions and terms of a chunk never wait for its translation: the analyser
  runs ahead of the finisher.
* Outbound events are bounded (``max_outbound_events``); a client that stops
  reading ends with ``client_too_slow`` instead of growing server memory.

Resumable sessions: every event carries a ``seq``; the sender keeps the last
``max_outbound_events`` of them. When the speaker's connection drops (without
``session.end``) the session detaches instead of ending: processing of the audio
already received goes on, events go to that buffer, and for
``resume_grace_seconds`` a new connection may send ``session.resume`` with the
token from ``session.started``. It gets the events after its ``last_seq`` and
the number of audio samples the server holds, then streams on. A session whose
input ended waits the same grace for a client to collect its tail.

All session state lives on this object and is released in ``run``'s finally.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import WebSocket
from pydantic import BaseModel

from glossary.auth import key_from_headers
from glossary.model import GlossarySnapshot
from kernel.errors import ErrorCode, RasstError, ws_close_code
from kernel.frames import (
    PIPELINE_RATE,
    AudioChunk,
    AudioSlice,
    ChunkAnalysis,
    RecognizedWord,
    StageWarning,
    TermHits,
    TranslationCommit,
    seconds,
)
from server.asr.hotwords import hotwords_for
from server.audio import (
    PaceLimiter,
    Resampler,
    Slicer,
    check_audio_format,
    chunk_samples,
    decode_frame,
)
from server.catchup import merge_chunks, merge_limit_samples, merge_terms
from server.feeds import SessionFeed
from server.protocol import (
    PROTOCOL_VERSION,
    Caption,
    ChunkDone,
    Error,
    GlossaryInUse,
    GlossaryUpdated,
    LatencyStats,
    SessionEnd,
    SessionLimits,
    SessionResume,
    SessionResumed,
    SessionStart,
    SessionStarted,
    SessionSummary,
    TermOut,
    Terms,
    TranslationCommitEvent,
    TranslationDeltaEvent,
    Warning_,
    Word,
    parse_client_message,
)
from server.ratelimit import caller_identity
from server.services import GatewayServices
from server.stages import NoRetriever, SessionContext, SessionRetriever, SessionTranslator
from server.workers import SpeechSession, SpeechWorkerLost
from server.ws_transport import TRANSPORT_FAULT

log = logging.getLogger(__name__)

_SEND_TIMEOUT = 5.0
_LAG_WARNING_INTERVAL = 10.0


class _ClientGone(Exception):
    """The client disconnected; nothing more can be sent."""


_MAX_SLICES_PER_CALL = 8


class _ChunkEvidence:
    """What the front end said about the slices of the chunk being filled.

    The open utterance's revisable words outlive the chunk (a chunk whose slices
    got no revisable decode still has the last ones); they are dropped when the
    utterance's final words arrive.
    """

    def __init__(self) -> None:
        self._speech = 0
        self._words: list[RecognizedWord] = []
        self._partial: tuple[RecognizedWord, ...] = ()

    def add(self, analysis: ChunkAnalysis) -> None:
        self._speech += analysis.speech_samples
        if analysis.words:
            self._words.extend(analysis.words)
            self._partial = ()
        if analysis.partial_words:
            self._partial = analysis.partial_words

    def take(self, chunk_index: int) -> ChunkAnalysis:
        analysis = ChunkAnalysis(
            chunk_index=chunk_index,
            speech_samples=self._speech,
            words=tuple(self._words),
            partial_words=self._partial,
        )
        self._speech = 0
        self._words = []
        return analysis


@dataclass(frozen=True, slots=True)
class _Analysed:
    chunk: AudioChunk
    analysis: ChunkAnalysis
    terms: TermHits
    started_at: float


class StreamSession:
    def __init__(self, websocket: WebSocket, services: GatewayServices) -> None:
        self._ws = websocket
        self._services = services
        self._settings = services.settings
        self._metrics = services.metrics
        self.session_id = uuid.uuid4().hex
        self._opened_at = time.monotonic()
        self._start: SessionStart | None = None
        self._tenant = "default"
        # Stages, created in _open and closed in run's finally.
        self._speech: SpeechSession | None = None
        self._retriever: SessionRetriever = NoRetriever()
        self._translator: SessionTranslator | None = None
        self._glossaries: list[GlossarySnapshot] = []
        self._feed: SessionFeed | None = None
        # Queues between the stages (None marks the end of the stream).
        self._slices: asyncio.Queue[AudioSlice | None] = asyncio.Queue()
        self._analysed: asyncio.Queue[_Analysed | None] = asyncio.Queue()
        # Serialised events for the speaker's socket: (seq, json, is_summary).
        # Unbounded as a queue; _emit enforces max_outbound_events (see there).
        self._outbound: asyncio.Queue[tuple[int, str, bool] | None] = asyncio.Queue()
        self._sender_progress = time.monotonic()
        # Events numbered so far, and the last ones taken by the sender, kept for resume.
        self._seq = 0
        self._sent: deque[tuple[int, str]] = deque(maxlen=self._settings.max_outbound_events)
        self._sent_seq = 0
        # Serialises sending with (re)attaching a connection, so replay keeps seq order.
        self._send_lock = asyncio.Lock()
        # The speaker's connection: a generation number, and whether one is attached.
        self._connection = 0
        self._attached = asyncio.Event()
        self._detached_at = 0.0
        self._released: asyncio.Event | None = None
        self._resume_token: str | None = None
        # Who holds the slot while detached (the registry's budgets), and the grace timer.
        self._caller = "unknown"
        self._grace: asyncio.Timeout | None = None
        self._evicted = False
        self._input_samples = 0
        # Stream accounting, in pipeline-rate samples.
        self._received_samples = 0
        self._done_samples = 0
        self._speech_samples = 0
        self._chunks_done = 0
        self._latencies: list[float] = []
        self._max_lag = 0.0
        self._last_lag_warning = -_LAG_WARNING_INTERVAL
        self._counts = {"captions": 0, "term_hits": 0, "commits": 0, "warnings": 0, "errors": 0}
        self._utterance = 0
        self._warned_codes: set[str] = set()
        # Lifecycle.
        self._receiver_task: asyncio.Task[None] | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self._stream_task: asyncio.Task[None] | None = None
        self._shutdown_requested = False
        self._input_closed = False
        self._closed = False

    # -- lifecycle ---------------------------------------------------------

    @property
    def tenant(self) -> str:
        return self._tenant

    async def run(self) -> None:
        await self._ws.accept()
        self._attached.set()
        admitted = False
        reason = "error"
        failure: RasstError | None = None
        try:
            first = await self._receive_start()
            if isinstance(first, SessionResume):
                # This connection continues another session; it has none of its own.
                await self._resume_other(first)
                return
            start = first
            self._tenant = await self._authenticate(start.api_key)
            self._check_rate(start.api_key)
            self._services.sessions.admit(self, self._tenant)
            admitted = True
            self._metrics.sessions_active.inc()
            await self._open(start)
            if self._settings.resume_grace_seconds > 0:
                self._resume_token = self._services.sessions.issue_resume_token(self)
            await self._send_now(self._started_event(start))
            self._stream_task = asyncio.current_task()
            await self._stream()
            if not self._attached.is_set() and not self._shutdown_requested:
                # The input ended but the client left before the tail: give it the grace.
                await self._await_client()
            reason = "shutdown" if self._shutdown_requested else "completed"
        except _ClientGone:
            reason = "disconnected"
        except RasstError as exc:
            failure = exc
        except asyncio.CancelledError:
            if self._evicted:
                reason = "disconnected"
            else:
                failure = RasstError(ErrorCode.SHUTTING_DOWN, "the server is shutting down")
                reason = "shutdown"
        except Exception as exc:
            log.exception("session failed", extra={"session_id": self.session_id})
            failure = RasstError(ErrorCode.INTERNAL_ERROR, f"internal error ({type(exc).__name__})")
        finally:
            await self._release_stages()
            if admitted:
                self._services.sessions.remove(self)
                self._metrics.sessions_active.dec()
        if failure is not None:
            await self._end_with_error(failure, reason)
        else:
            await self._close(1000 if reason != "shutdown" else 1001)
        if self._feed is not None:
            self._feed.close()
        self._metrics.sessions_total.labels(reason=reason).inc()

    def request_shutdown(self) -> None:
        """Server shutdown: stop taking audio, finish what was received, close."""
        self._shutdown_requested = True
        if self._receiver_task is not None and not self._receiver_task.done():
            self._receiver_task.cancel()

    def abort_now(self) -> None:
        if self._stream_task is not None and not self._stream_task.done():
            self._stream_task.cancel()

    async def _receive_start(self) -> SessionStart | SessionResume:
        message = await self._receive()
        if message.get("bytes") is not None:
            raise RasstError(ErrorCode.NOT_STARTED, "audio before session.start")
        text = message.get("text")
        if text is None:
            raise RasstError(ErrorCode.BAD_MESSAGE, "empty message")
        parsed = parse_client_message(text)
        if isinstance(parsed, SessionEnd):
            raise RasstError(
                ErrorCode.NOT_STARTED,
                "the first message must be session.start (or session.resume)",
            )
        if parsed.protocol_version != PROTOCOL_VERSION:
            raise RasstError(
                ErrorCode.BAD_MESSAGE,
                f"protocol version {parsed.protocol_version} is not supported; "
                f"this server speaks {PROTOCOL_VERSION}",
            )
        if isinstance(parsed, SessionStart):
            check_audio_format(parsed.audio)
        return parsed

    async def _authenticate(self, api_key: str | None) -> str:
        api_key = api_key or _api_key_from(self._ws)
        if self._services.glossaries is not None:
            return await self._services.glossaries.authenticate(api_key)
        if self._settings.auth_enabled:
            raise RasstError(ErrorCode.UNAUTHORIZED, "authentication is enabled but unavailable")
        return self._tenant

    def _check_rate(self, api_key: str | None) -> None:
        client = self._ws.client
        caller = caller_identity(
            self._ws.headers,
            api_key or self._ws.query_params.get("api_key"),
            client.host if client else None,
        )
        self._caller = caller
        wait = self._services.rate_limiter.acquire(caller)
        if wait > 0:
            raise RasstError(
                ErrorCode.RATE_LIMITED,
                f"too many session starts for this API key; retry in {wait:.0f} s",
                detail={"retry_after_seconds": round(wait, 1)},
            )

    async def _open(self, start: SessionStart) -> None:
        self._start = start
        services = self._services
        if start.glossary_ids:
            if services.glossaries is None:
                raise RasstError(ErrorCode.GLOSSARY_NOT_FOUND, "no glossary store is configured")
            self._glossaries = await services.glossaries.load(self._tenant, start.glossary_ids)
        self._feed = services.feeds.open(self.session_id, self._tenant)
        if start.sinks:
            services.sinks.attach(
                self._feed,
                start.sinks,
                source_language=start.source_language,
                target_languages=start.target_languages,
                warn=lambda message: self._warn(StageWarning(ErrorCode.SINK_FAILED, message)),
            )
        self._context = SessionContext(
            session_id=self.session_id,
            tenant=self._tenant,
            source_language=start.source_language,
            target_languages=tuple(start.target_languages),
            lm=start.lm,
            chunk_seconds=seconds(chunk_samples(start.lm)),
        )
        self._merge_limit = merge_limit_samples(chunk_samples(start.lm))
        self._pace = PaceLimiter(
            start.audio.sample_rate,
            self._settings.max_pace,
            self._settings.pace_burst_seconds,
            time.monotonic(),
        )
        self._resampler = Resampler(start.audio.sample_rate)
        self._slicer = Slicer(chunk_samples(start.lm))
        hotwords = ""
        if self._settings.asr_hotwords and self._glossaries:
            # Ranks every entry: a 100k-term glossary takes a while, off the event loop.
            hotwords = await asyncio.to_thread(hotwords_for, self._glossaries)
        self._speech = await services.speech.open(self.session_id, hotwords)
        if self._glossaries and services.retriever is not None:
            self._retriever = await services.retriever.open_session(
                self._context, self._glossaries, self._warn
            )
        if services.translator is not None and start.target_languages:
            self._translator = await services.translator.open_session(self._context, self._warn)

    def _started_event(self, start: SessionStart) -> SessionStarted:
        s = self._settings
        return SessionStarted(
            session_id=self.session_id,
            mode="translation" if self._translator is not None else "captions",
            viewer_token=self._feed.viewer_token if self._feed is not None else None,
            source_language=start.source_language,
            target_languages=list(start.target_languages),
            lm=start.lm,
            chunk_seconds=self._context.chunk_seconds,
            input_sample_rate=start.audio.sample_rate,
            sample_rate=PIPELINE_RATE,
            glossaries=[
                GlossaryInUse(id=g.id, version=g.version, entries=len(g.entries))
                for g in self._glossaries
            ],
            limits=SessionLimits(
                max_pace=s.max_pace,
                max_frame_bytes=s.max_frame_bytes,
                idle_timeout_seconds=s.idle_timeout_seconds,
                max_session_seconds=s.max_session_seconds,
                resume_grace_seconds=s.resume_grace_seconds if self._resume_token else 0.0,
            ),
            resume_token=self._resume_token,
        )

    async def _stream(self) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                self._receiver_task = group.create_task(self._receive_audio())
                group.create_task(self._analyse_chunks())
                group.create_task(self._finish_chunks())
                group.create_task(self._send_events())
                if self._glossaries and self._services.glossaries is not None:
                    self._watch_task = group.create_task(self._follow_glossaries())
        except BaseExceptionGroup as failures:
            raise _primary_failure(failures) from None

    async def _release_stages(self) -> None:
        closers: list[Any] = [self._retriever.aclose()]
        if self._translator is not None:
            closers.append(self._translator.aclose())
        if self._speech is not None:
            closers.append(self._speech.aclose())
        results = await asyncio.gather(*closers, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                log.warning("closing a session stage failed: %r", result)

    # -- receiver ----------------------------------------------------------

    async def _receive(self) -> Mapping[str, Any]:
        try:
            async with asyncio.timeout(self._settings.idle_timeout_seconds):
                message = await self._ws.receive()
        except TimeoutError:
            raise RasstError(
                ErrorCode.IDLE_TIMEOUT,
                f"no message for {self._settings.idle_timeout_seconds:g} s",
            ) from None
        if message["type"] == "websocket.disconnect":
            raise _ClientGone()
        fault = message.get(TRANSPORT_FAULT)
        if fault is not None:
            # An oversized or non-UTF-8 message, refused by the transport.
            raise fault
        return message

    async def _receive_audio(self) -> None:
        try:
            while not self._input_closed:
                connection = self._connection
                try:
                    message = await self._receive()
                except _ClientGone:
                    self._lost(connection)
                    await self._await_client()
                    continue
                data = message.get("bytes")
                if data is not None:
                    self._take_audio(data)
                elif message.get("text") is not None:
                    self._take_control(message["text"])
        except asyncio.CancelledError:
            if not self._shutdown_requested:
                raise
            self._warn(StageWarning(ErrorCode.SHUTTING_DOWN, "the server is shutting down"))
            self._close_input()

    def _take_audio(self, data: bytes) -> None:
        now = time.monotonic()
        assert self._start is not None
        pcm = decode_frame(data, self._settings.max_frame_bytes, self._start.audio.channels)
        self._pace.admit(len(pcm), now)
        self._input_samples += len(pcm)
        if self._pace.received_seconds > self._settings.max_session_seconds:
            raise RasstError(
                ErrorCode.SESSION_TOO_LONG,
                f"a session may carry at most {self._settings.max_session_seconds:g} s of audio",
            )
        self._metrics.audio_seconds.inc(len(pcm) / self._start_rate)
        self._enqueue(self._resampler.push(pcm), now)
        backlog = seconds(self._received_samples - self._done_samples)
        if backlog > self._settings.max_backlog_seconds:
            raise RasstError(
                ErrorCode.BACKLOG_EXCEEDED,
                f"the server is {backlog:.1f} s behind the audio; ending the session "
                "rather than dropping audio",
            )

    @property
    def _start_rate(self) -> int:
        assert self._start is not None
        return self._start.audio.sample_rate

    def _enqueue(self, pcm: np.ndarray, now: float) -> None:
        self._received_samples += len(pcm)
        for piece in self._slicer.push(pcm, now):
            self._slices.put_nowait(piece)

    def _take_control(self, text: str) -> None:
        try:
            message = parse_client_message(text)
        except RasstError as exc:
            # A bad control message after the start harms nothing: report it, go on.
            self._report_error(exc)
            return
        if isinstance(message, SessionEnd):
            self._close_input()
        else:
            self._report_error(
                RasstError(ErrorCode.ALREADY_STARTED, "session.start was already received")
            )

    def _close_input(self) -> None:
        now = time.monotonic()
        self._input_closed = True
        tail = self._resampler.flush()
        self._received_samples += len(tail)
        for piece in self._slicer.push(tail, now) + self._slicer.flush(now):
            self._slices.put_nowait(piece)
        self._slices.put_nowait(None)

    # -- analyser: VAD, captions, retrieval --------------------------------

    async def _analyse_chunks(self) -> None:
        """Slices through the speech front end; each completed chunk through retrieval."""
        open_chunk = _ChunkEvidence()
        ended = False
        while not ended and (first := await self._slices.get()) is not None:
            batch = [first]
            # Behind the speaker: one worker call for what is queued, and no
            # revisable decode until the session has caught up.
            while len(batch) < _MAX_SLICES_PER_CALL and not self._slices.empty():
                queued = self._slices.get_nowait()
                if queued is None:
                    ended = True
                    break
                batch.append(queued)
            started = time.monotonic()
            partial = not ended and self._slices.empty()
            for piece, analysis in zip(batch, await self._analyse(batch, partial), strict=True):
                self._emit_captions(piece.chunk_index, analysis)
                open_chunk.add(analysis)
                if piece.chunk is None:
                    continue
                chunk = piece.chunk
                chunk_analysis = open_chunk.take(chunk.index)
                terms = TermHits(chunk_index=chunk.index)
                if self._glossaries and chunk_analysis.has_words:
                    terms = await self._retriever.retrieve(chunk, chunk_analysis)
                    self._metrics.retrieval.observe(terms.elapsed)
                    self._emit_terms(chunk, terms)
                self._analysed.put_nowait(_Analysed(chunk, chunk_analysis, terms, started))
        self._analysed.put_nowait(None)

    async def _analyse(self, batch: list[AudioSlice], partial: bool) -> list[ChunkAnalysis]:
        assert self._speech is not None
        try:
            return await self._speech.process(batch, partial)
        except SpeechWorkerLost:
            self._warn(
                StageWarning(
                    ErrorCode.SPEECH_FRONTEND_FAILED,
                    "the speech worker restarted; the caption in progress was lost",
                    batch[0].chunk_index,
                )
            )
            await self._speech.reopen()
            # The audio still counts as speech for translation.
            return [ChunkAnalysis(p.chunk_index, speech_samples=len(p.pcm)) for p in batch]

    def _emit_captions(self, chunk_index: int, analysis: ChunkAnalysis) -> None:
        self._speech_samples += analysis.speech_samples
        self._metrics.speech_seconds.inc(seconds(analysis.speech_samples))
        for caption in analysis.captions:
            self._emit(
                Caption(
                    chunk=chunk_index,
                    start=seconds(caption.start_sample),
                    end=seconds(caption.end_sample),
                    utterance=self._utterance,
                    text=caption.text,
                    final=caption.final,
                    stable_words=None if caption.final else caption.stable_words,
                    words=[
                        Word(word=w.word, start=seconds(w.start_sample), end=seconds(w.end_sample))
                        for w in caption.words
                    ],
                )
            )
            if caption.final:
                self._utterance += 1
                self._counts["captions"] += 1

    def _emit_terms(self, chunk: AudioChunk, terms: TermHits) -> None:
        self._counts["term_hits"] += len(terms.hits)
        self._emit(
            Terms(
                chunk=chunk.index,
                start=chunk.start,
                end=chunk.end,
                terms=[
                    TermOut(
                        source=hit.source,
                        targets=hit.targets,
                        score=round(hit.score, 4),
                        start=seconds(hit.start_sample),
                        end=seconds(hit.end_sample),
                        glossary_id=hit.glossary_id,
                    )
                    for hit in terms.hits
                ],
                retrieval_ms=round(terms.elapsed * 1000, 2),
            )
        )

    async def _follow_glossaries(self) -> None:
        assert self._services.glossaries is not None
        ids = [g.id for g in self._glossaries]
        since = {g.id: g.version for g in self._glossaries}
        async for snapshots in self._services.glossaries.watch(self._tenant, ids, since):
            self._glossaries = list(snapshots)
            self._retriever.set_glossaries(snapshots)
            if self._speech is not None and self._settings.asr_hotwords:
                # A lost worker is noticed (and the hotwords restored) by the analyser.
                with contextlib.suppress(SpeechWorkerLost):
                    hotwords = await asyncio.to_thread(hotwords_for, snapshots)
                    await self._speech.set_hotwords(hotwords)
            self._emit(
                GlossaryUpdated(
                    glossaries=[
                        GlossaryInUse(id=g.id, version=g.version, entries=len(g.entries))
                        for g in snapshots
                    ]
                )
            )
            if self._input_closed:
                return

    # -- finisher: translation, chunk.done ----------------------------------

    async def _finish_chunks(self) -> None:
        ended = False
        while not ended and (item := await self._analysed.get()) is not None:
            group = [item]
            if self._translator is not None:
                # Behind the speaker: take what is already queued into one LLM turn.
                while (
                    not self._analysed.empty()
                    and sum(len(i.chunk.pcm) for i in group) < self._merge_limit
                ):
                    queued = self._analysed.get_nowait()
                    if queued is None:
                        ended = True
                        break
                    group.append(queued)
            await self._translate(group)
            for done in group:
                self._chunk_done(done)
        summary = self._summary("shutdown" if self._shutdown_requested else "completed")
        await self._outbound.put((*self._publish(summary), True))
        await self._outbound.put(None)
        if self._watch_task is not None:
            self._watch_task.cancel()

    async def _translate(self, group: list[_Analysed]) -> None:
        if self._translator is None:
            return
        chunk = merge_chunks([i.chunk for i in group])
        first = group[0].chunk.index
        if not self._settings.translate_silence and not any(i.analysis.has_speech for i in group):
            # Silence costs nothing: no LLM call, an empty commit per language.
            for lang in self._context.target_languages:
                self._emit_commit(chunk, first, TranslationCommit(chunk.index, lang, ""))
            return
        terms = merge_terms([i.terms for i in group], chunk.index)
        async for event in self._translator.translate(chunk, terms):
            if isinstance(event, TranslationCommit):
                self._emit_commit(chunk, first, event)
            else:
                self._emit(
                    TranslationDeltaEvent(
                        chunk=chunk.index,
                        first_chunk=first,
                        start=chunk.start,
                        end=chunk.end,
                        lang=event.lang,
                        delta=event.delta,
                        text=event.text,
                    )
                )

    def _emit_commit(self, chunk: AudioChunk, first: int, commit: TranslationCommit) -> None:
        self._counts["commits"] += 1
        if commit.time_to_first_token is not None:
            self._metrics.llm_ttft.observe(commit.time_to_first_token)
        self._emit(
            TranslationCommitEvent(
                chunk=chunk.index,
                first_chunk=first,
                start=chunk.start,
                end=chunk.end,
                lang=commit.lang,
                text=commit.text,
                terms_used=list(commit.terms_used),
            )
        )

    def _chunk_done(self, item: _Analysed) -> None:
        chunk = item.chunk
        now = time.monotonic()
        self._done_samples = chunk.end_sample
        self._chunks_done += 1
        lag = max(0.0, seconds(self._received_samples - self._done_samples))
        latency = max(0.0, now - chunk.received_at)
        processing = now - item.started_at
        self._latencies.append(latency)
        self._max_lag = max(self._max_lag, lag)
        self._metrics.chunk_latency.observe(latency)
        self._metrics.chunk_processing.observe(processing)
        self._metrics.lag.observe(lag)
        self._emit(
            ChunkDone(
                chunk=chunk.index,
                start=chunk.start,
                end=chunk.end,
                speech_seconds=seconds(item.analysis.speech_samples),
                processing_ms=round(processing * 1000, 2),
                latency_ms=round(latency * 1000, 2),
                lag_seconds=lag,
            )
        )
        if (
            lag > self._settings.lag_warning_seconds
            and now - self._last_lag_warning > _LAG_WARNING_INTERVAL
        ):
            self._last_lag_warning = now
            self._warn(
                StageWarning(
                    ErrorCode.LAGGING,
                    f"the server is {lag:.1f} s behind the audio; it will catch up",
                    chunk.index,
                )
            )

    def _summary(self, reason: str) -> SessionSummary:
        latencies = np.asarray(self._latencies or [0.0]) * 1000
        return SessionSummary(
            session_id=self.session_id,
            reason=reason,  # type: ignore[arg-type]
            chunks=self._chunks_done,
            audio_seconds=seconds(self._received_samples),
            speech_seconds=seconds(self._speech_samples),
            captions=self._counts["captions"],
            term_hits=self._counts["term_hits"],
            commits=self._counts["commits"],
            warnings=self._counts["warnings"],
            errors=self._counts["errors"],
            latency_ms=LatencyStats(
                p50=round(float(np.percentile(latencies, 50)), 2),
                p95=round(float(np.percentile(latencies, 95)), 2),
                max=round(float(latencies.max()), 2),
            ),
            max_lag_seconds=round(self._max_lag, 3),
            wall_seconds=round(time.monotonic() - self._opened_at, 3),
        )

    # -- sender ------------------------------------------------------------

    def _emit(self, event: BaseModel) -> None:
        seq, text = self._publish(event)
        queued = self._outbound.qsize()
        limit = self._settings.max_outbound_events
        # A burst (one chunk's deltas in 5 languages) may pass the limit while the client
        # reads; a client whose sender has made no progress for a while may not, and
        # nobody may pass four times the limit.
        stalled = time.monotonic() - self._sender_progress > _SEND_TIMEOUT
        if queued >= limit and (stalled or queued >= 4 * limit):
            raise RasstError(
                ErrorCode.CLIENT_TOO_SLOW,
                f"the client is not reading events ({queued} queued)",
            )
        self._outbound.put_nowait((seq, text, isinstance(event, SessionSummary)))

    def _publish(self, event: BaseModel) -> tuple[int, str]:
        """Number and serialise an event once, for the speaker and the session's viewers."""
        self._seq += 1
        text = event.model_copy(update={"seq": self._seq}).model_dump_json()
        if self._feed is not None:
            self._feed.publish(text, retain=not isinstance(event, TranslationDeltaEvent))
        return self._seq, text

    def _warn(self, warning: StageWarning) -> None:
        self._counts["warnings"] += 1
        self._metrics.warnings.labels(code=str(warning.code)).inc()
        self._emit(
            Warning_(code=str(warning.code), message=warning.message, chunk=warning.chunk_index)
        )

    def _report_error(self, exc: RasstError) -> None:
        """A non-fatal error: the stream goes on (fatal ones end in _end_with_error)."""
        self._counts["errors"] += 1
        self._metrics.errors.labels(code=str(exc.code)).inc()
        self._emit(Error(code=exc.code, message=exc.message, fatal=False, detail=exc.detail))

    async def _send_events(self) -> None:
        while (item := await self._outbound.get()) is not None:
            await self._deliver(item[0], item[1])

    async def _send_now(self, event: BaseModel) -> None:
        await self._deliver(*self._publish(event))

    async def _deliver(self, seq: int, text: str) -> None:
        """Send one numbered event, or only keep it for a resume while detached."""
        async with self._send_lock:
            self._sent.append((seq, text))
            self._sent_seq = seq
            if not self._attached.is_set():
                self._sender_progress = time.monotonic()  # kept for a resume: not stuck
                return
            connection = self._connection
            try:
                await self._send_text(text)
                self._sender_progress = time.monotonic()
            except _ClientGone:
                self._lost(connection)
                if not self._resumable:
                    raise

    # -- dropped connections and resume -----------------------------------

    @property
    def _resumable(self) -> bool:
        return self._resume_token is not None and not self._closed

    def _lost(self, connection: int) -> None:
        """Connection ``connection`` is gone; detach unless a newer one took over."""
        if connection != self._connection or not self._attached.is_set():
            return
        self._attached.clear()
        self._detached_at = time.monotonic()
        if self._released is not None:
            self._released.set()
        if self._resumable:
            self._services.sessions.detached(self, self._caller, self._tenant)
            log.info(
                "speaker connection lost; waiting %.0f s for session.resume",
                self._settings.resume_grace_seconds,
                extra={"session_id": self.session_id},
            )

    async def _await_client(self) -> None:
        """Wait for a resumed connection, at most the grace left; else the client is gone."""
        if not self._resumable or self._evicted:
            raise _ClientGone()
        left = self._settings.resume_grace_seconds - (time.monotonic() - self._detached_at)
        try:
            async with asyncio.timeout(max(0.0, left)) as self._grace:
                await self._attached.wait()
        except TimeoutError:
            outcome = "evicted" if self._evicted else "expired"
            self._metrics.disconnects.labels(outcome=outcome).inc()
            raise _ClientGone() from None
        finally:
            self._grace = None

    def evict(self) -> None:
        """The registry ended this dropped session (a budget needs its slot): stop now."""
        if self._attached.is_set() or self._evicted:
            return
        self._evicted = True
        log.info(
            "dropped session evicted before its resume grace", extra={"session_id": self.session_id}
        )
        if self._grace is not None:
            # Waiting for a resume: end the wait now.
            self._grace.reschedule(asyncio.get_running_loop().time())
        elif self._stream_task is not None and not self._stream_task.done():
            # Still processing a tail nobody will collect.
            self._stream_task.cancel()

    async def attach(self, websocket: WebSocket, last_seq: int) -> asyncio.Event:
        """Continue this session on ``websocket``: replay after ``last_seq``, then go live.

        Returns an event set when this connection is finished with (closed by the
        session, or lost again); its handler must stay alive until then.
        """
        async with self._send_lock:
            if not self._resumable or self._evicted:
                raise RasstError(ErrorCode.RESUME_FAILED, "the session has ended")
            previous = self._ws if self._attached.is_set() else None
            self._connection += 1
            self._ws = websocket
            self._attached.clear()
            self._detached_at = time.monotonic()
            if previous is not None:
                # A half-open old connection loses to the new one.
                await _close_quietly(previous, 1000, "resumed on another connection")
                if self._released is not None:
                    self._released.set()
            replay = [(seq, text) for seq, text in self._sent if seq > last_seq]
            oldest_kept = self._sent[0][0] if self._sent else self._sent_seq + 1
            missed = max(0, min(oldest_kept - 1, self._sent_seq) - last_seq)
            resumed = SessionResumed(
                session_id=self.session_id,
                replayed=len(replay),
                missed=missed,
                audio_received_samples=self._input_samples,
                audio_received_seconds=round(self._input_samples / self._start_rate, 3),
                input_ended=self._input_closed,
            )
            # Not numbered: it belongs to this connection, not to the session's stream.
            await self._send_text(resumed.model_dump_json())
            for _, text in replay:
                await self._send_text(text)
            self._released = asyncio.Event()
            self._attached.set()
            self._services.sessions.reattached(self)
        self._metrics.disconnects.labels(outcome="resumed").inc()
        log.info(
            "session resumed: %d event(s) replayed, %d missed",
            len(replay),
            missed,
            extra={"session_id": self.session_id},
        )
        return self._released

    async def _resume_other(self, message: SessionResume) -> None:
        target = self._services.sessions.resumable(message.resume_token)
        tenant = await self._authenticate(message.api_key)
        # A foreign tenant's token reads exactly like an expired one.
        if target is None or (self._settings.auth_enabled and tenant != target.tenant):
            raise RasstError(
                ErrorCode.RESUME_FAILED,
                "unknown or expired resume token; start a new session",
            )
        self.session_id = target.session_id
        released = await target.attach(self._ws, message.last_seq)
        await released.wait()

    async def _send_text(self, text: str) -> None:
        try:
            async with asyncio.timeout(_SEND_TIMEOUT):
                await self._ws.send_text(text)
        except TimeoutError:
            raise RasstError(
                ErrorCode.CLIENT_TOO_SLOW, "the client is not reading events"
            ) from None
        except Exception as exc:
            raise _ClientGone() from exc

    async def _end_with_error(self, failure: RasstError, reason: str) -> None:
        """The explicit end of a failed stream: pending events, error, summary, close."""
        self._counts["errors"] += 1
        self._metrics.errors.labels(code=str(failure.code)).inc()
        log.info(
            "session ended with %s: %s",
            failure.code,
            failure.message,
            extra={"session_id": self.session_id},
        )
        try:
            if failure.code != ErrorCode.CLIENT_TOO_SLOW:
                while not self._outbound.empty():
                    item = self._outbound.get_nowait()
                    if item is not None and not item[2]:
                        await self._deliver(item[0], item[1])
            await self._send_now(
                Error(code=failure.code, message=failure.message, fatal=True, detail=failure.detail)
            )
            await self._send_now(self._summary("shutdown" if reason == "shutdown" else "error"))
        except (_ClientGone, RasstError):
            pass
        await self._close(ws_close_code(failure.code), failure.message)

    async def _close(self, code: int, reason: str = "") -> None:
        if self._closed:
            return
        self._closed = True
        await _close_quietly(self._ws, code, reason)
        if self._released is not None:
            self._released.set()


def _primary_failure(failures: BaseExceptionGroup) -> BaseException:
    """The failure that explains a stream's end: a disconnect, else our error, else any."""
    flat: list[BaseException] = []
    stack: list[BaseException] = [failures]
    while stack:
        exc = stack.pop()
        if isinstance(exc, BaseExceptionGroup):
            stack.extend(exc.exceptions)
        else:
            flat.append(exc)
    for kind in (_ClientGone, RasstError):
        for exc in flat:
            if isinstance(exc, kind):
                return exc
    return flat[0]


async def _close_quietly(ws: WebSocket, code: int, reason: str) -> None:
    try:
        async with asyncio.timeout(_SEND_TIMEOUT):
            await ws.close(code=code, reason=close_reason(reason))
    except Exception as exc:
        log.debug("closing the WebSocket failed: %r", exc)


# RFC 6455 5.5: a control frame's payload is at most 125 bytes, 2 of them the code.
_MAX_CLOSE_REASON_BYTES = 123


def close_reason(reason: str) -> str:
    """``reason`` cut to what a close frame can carry: 123 bytes of UTF-8, whole characters."""
    data = reason.encode("utf-8", "replace")[:_MAX_CLOSE_REASON_BYTES]
    return data.decode("utf-8", "ignore")


def _api_key_from(ws: WebSocket) -> str | None:
    headers = ws.headers
    return key_from_headers(headers.get("authorization"), headers.get("x-api-key")) or (
        ws.query_params.get("api_key")
    )
