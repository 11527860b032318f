"""One streaming session: from the first WebSocket message to the close.

Data flows one way through four tasks joined by queues::

    receiver  --slices-->  analyser  --analysed-->  finisher  --events-->  sender
    (decode, pace,          (VAD, captions,          (translation,          (JSON to
     resample, slice)        term retrieval)          chunk.done)            the socket)

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

Resumable sessions (``replay``): when the speaker's connection drops without
``session.end`` the session detaches instead of ending: processing of the audio
already received goes on, events are kept, and for ``resume_grace_seconds`` a new
connection may send ``session.resume`` with the token from ``session.started``. It
gets the events after its ``last_seq`` and the number of audio samples the server
holds, then streams on. A session whose input ended waits the same grace for a
client to collect its tail.

The parts: admission (``admission``), event mapping (``events``), accounting
(``accounting``), the event log and the speaker's link (``replay``). All session state
lives on this object and is released in ``run``'s finally.

Why one module past 400 lines: the four tasks share the session's queues and its link, and
resume reaches into all of them; what needs no shared state is already in the parts above.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any

import numpy as np
from fastapi import WebSocket
from pydantic import BaseModel
from redis.exceptions import RedisError

from kernel.errors import ErrorCode, RasstError, ws_close_code
from kernel.frames import (
    AudioChunk,
    AudioSlice,
    ChunkAnalysis,
    StageWarning,
    TermHits,
    TranslationCommit,
    seconds,
)
from server.asr.hotwords import hotwords_for
from server.audio import decode_frame
from server.bus.forward import relay_resume
from server.catchup import merge_analyses, merge_chunks, merge_terms
from server.index_reports import report_indexing
from server.protocol import (
    SessionEnd,
    SessionResume,
    SessionResumed,
    SessionSummary,
    parse_client_message,
)
from server.services import GatewayServices, token_digest
from server.session import admission, events
from server.session.accounting import StreamAccounting
from server.session.evidence import AnalysedChunk, ChunkEvidence
from server.session.replay import EventLog, LinkState, SpeakerLink
from server.session.wire import ClientGone, close_quietly, receive, send_text
from server.workers import SpeechWorkerLost

log = logging.getLogger(__name__)

_LAG_WARNING_INTERVAL = 10.0
# A client whose sender made no progress this long may not pass the outbound limit.
_SENDER_STALL_SECONDS = 5.0
_MAX_SLICES_PER_CALL = 8


class StreamSession:
    def __init__(self, websocket: WebSocket, services: GatewayServices) -> None:
        self._services = services
        self._settings = services.settings
        self._metrics = services.metrics
        self.session_id = uuid.uuid4().hex
        self._tenant = "default"
        # Built in run once the session is admitted; its stages are closed in run's finally.
        self._pipeline: admission.OpenedPipeline | None = None
        # Queues between the stages (None marks the end of the stream).
        self._slices: asyncio.Queue[AudioSlice | None] = asyncio.Queue()
        self._analysed: asyncio.Queue[AnalysedChunk | None] = asyncio.Queue()
        # Serialised events for the speaker's socket: (seq, json, is_summary).
        # Unbounded as a queue; _emit enforces max_outbound_events (see there).
        self._outbound: asyncio.Queue[tuple[int, str, bool] | None] = asyncio.Queue()
        self._sender_progress = time.monotonic()
        self._log = EventLog(keep=self._settings.max_outbound_events)
        self._link = SpeakerLink(websocket)
        # Serialises sending with (re)attaching a connection, so replay keeps seq order.
        self._send_lock = asyncio.Lock()
        self._resume_token: str | None = None
        # Who holds the slot while detached (the registry's budgets), and the grace timer.
        self._caller = "unknown"
        self._grace: asyncio.Timeout | None = None
        self._evicted = False
        # Samples as the client sent them (its rate), for session.resumed.
        self._input_samples = 0
        self._stats = StreamAccounting()
        self._last_lag_warning = -_LAG_WARNING_INTERVAL
        self._utterance = 0
        # Lifecycle.
        self._receiver_task: asyncio.Task[None] | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self._index_task: asyncio.Task[None] | None = None
        self._stream_task: asyncio.Task[None] | None = None
        self._shutdown_requested = False
        self._input_closed = False

    # -- lifecycle ---------------------------------------------------------

    @property
    def tenant(self) -> str:
        return self._tenant

    @property
    def _p(self) -> admission.OpenedPipeline:
        assert self._pipeline is not None
        return self._pipeline

    async def run(self) -> None:
        await self._link.ws.accept()
        admitted = False
        reason = "error"
        failure: RasstError | None = None
        try:
            first = await admission.receive_start(
                self._link.ws, self._settings.idle_timeout_seconds
            )
            if isinstance(first, SessionResume):
                # This connection continues another session; it has none of its own.
                await self._resume_other(first)
                return
            start = first
            self._tenant = await admission.authenticate(
                self._link.ws, self._services, start.api_key, self._tenant
            )
            self._caller = admission.check_rate(self._link.ws, self._services, start.api_key)
            self._services.sessions.admit(self, self._tenant)
            admitted = True
            self._metrics.sessions_active.inc()
            self._pipeline = await admission.open_pipeline(
                self.session_id, self._tenant, start, self._services, time.monotonic()
            )
            self._log.feed = self._pipeline.feed
            self._pipeline.feed.on_sink_trouble = self._bus_trouble
            await admission.open_stages(self._pipeline, self._services, self._warn, self._emit)
            if self._settings.resume_grace_seconds > 0:
                self._resume_token = self._services.sessions.issue_resume_token(self)
            await self._send_now(
                admission.started_event(
                    self.session_id, self._pipeline, self._services, self._resume_token
                )
            )
            if self._services.bus is not None and not self._services.bus.healthy:
                self._bus_trouble()  # after session.started: the warning is the next event
            self._stream_task = asyncio.current_task()
            await self._stream()
            if not self._link.attached and not self._shutdown_requested:
                # The input ended but the client left before the tail: give it the grace.
                await self._await_client()
            reason = "shutdown" if self._shutdown_requested else "completed"
        except ClientGone:
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
        if self._pipeline is not None:
            self._pipeline.feed.close()
        self._metrics.sessions_total.labels(reason=reason).inc()

    def request_shutdown(self) -> None:
        """Server shutdown: stop taking audio, finish what was received, close."""
        self._shutdown_requested = True
        if self._receiver_task is not None and not self._receiver_task.done():
            self._receiver_task.cancel()

    def abort_now(self) -> None:
        if self._stream_task is not None and not self._stream_task.done():
            self._stream_task.cancel()

    async def _stream(self) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                self._receiver_task = group.create_task(self._receive_audio())
                group.create_task(self._analyse_chunks())
                group.create_task(self._finish_chunks())
                group.create_task(self._send_events())
                if self._p.glossaries and self._services.glossaries is not None:
                    self._watch_task = group.create_task(self._follow_glossaries())
                if self._p.glossaries:
                    self._index_task = group.create_task(
                        report_indexing(
                            self._services.retriever,
                            lambda: self._p.glossaries,
                            self._warn,
                            self._emit,
                        )
                    )
        except BaseExceptionGroup as failures:
            raise _primary_failure(failures) from None

    async def _release_stages(self) -> None:
        if self._pipeline is None:
            return
        closers: list[Any] = [self._pipeline.retriever.aclose(), self._pipeline.speech.aclose()]
        if self._pipeline.translator is not None:
            closers.append(self._pipeline.translator.aclose())
        results = await asyncio.gather(*closers, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                log.warning("closing a session stage failed: %r", result)

    # -- receiver ----------------------------------------------------------

    async def _receive_audio(self) -> None:
        try:
            while not self._input_closed:
                generation = self._link.generation
                try:
                    message = await receive(self._link.ws, self._settings.idle_timeout_seconds)
                except ClientGone:
                    self._lost(generation)
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
        p = self._p
        pcm = decode_frame(data, self._settings.max_frame_bytes, p.start.audio.channels)
        p.pace.admit(len(pcm), now)
        self._input_samples += len(pcm)
        if p.pace.received_seconds > self._settings.max_session_seconds:
            raise RasstError(
                ErrorCode.SESSION_TOO_LONG,
                f"a session may carry at most {self._settings.max_session_seconds:g} s of audio",
            )
        self._metrics.audio_seconds.inc(len(pcm) / p.start.audio.sample_rate)
        self._enqueue(p.resampler.push(pcm), now)
        backlog = self._stats.backlog_seconds
        if backlog > self._settings.max_backlog_seconds:
            raise RasstError(
                ErrorCode.BACKLOG_EXCEEDED,
                f"the server is {backlog:.1f} s behind the audio; ending the session "
                "rather than dropping audio",
            )

    def _enqueue(self, pcm: np.ndarray, now: float) -> None:
        self._stats.received_samples += len(pcm)
        for piece in self._p.slicer.push(pcm, now):
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
        tail = self._p.resampler.flush()
        self._stats.received_samples += len(tail)
        for piece in self._p.slicer.push(tail, now) + self._p.slicer.flush(now):
            self._slices.put_nowait(piece)
        self._slices.put_nowait(None)

    # -- analyser: VAD, captions, retrieval --------------------------------

    async def _analyse_chunks(self) -> None:
        """Slices through the speech front end; each completed chunk through retrieval."""
        open_chunk = ChunkEvidence()
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
                if self._p.glossaries and chunk_analysis.has_words:
                    terms = await self._p.retriever.retrieve(chunk, chunk_analysis)
                    self._metrics.retrieval.observe(terms.elapsed)
                    self._stats.term_hits += len(terms.hits)
                    self._emit(events.terms(chunk, terms))
                self._analysed.put_nowait(AnalysedChunk(chunk, chunk_analysis, terms, started))
        self._analysed.put_nowait(None)

    async def _analyse(self, batch: list[AudioSlice], partial: bool) -> list[ChunkAnalysis]:
        speech = self._p.speech
        try:
            return await speech.process(batch, partial)
        except SpeechWorkerLost:
            self._warn(
                StageWarning(
                    ErrorCode.SPEECH_FRONTEND_FAILED,
                    "the speech worker restarted; the caption in progress was lost",
                    batch[0].chunk_index,
                )
            )
            await speech.reopen()
            # The audio still counts as speech for translation.
            return [ChunkAnalysis(p.chunk_index, speech_samples=len(p.pcm)) for p in batch]

    def _emit_captions(self, chunk_index: int, analysis: ChunkAnalysis) -> None:
        self._stats.speech_samples += analysis.speech_samples
        self._metrics.speech_seconds.inc(seconds(analysis.speech_samples))
        for caption in events.captions(chunk_index, analysis, self._utterance):
            self._emit(caption)
            if caption.final:
                self._utterance += 1
                self._stats.captions += 1

    async def _follow_glossaries(self) -> None:
        assert self._services.glossaries is not None
        p = self._p
        ids = [g.id for g in p.glossaries]
        since = {g.id: g.version for g in p.glossaries}
        async for snapshots in self._services.glossaries.watch(self._tenant, ids, since):
            p.glossaries = list(snapshots)
            p.retriever.set_glossaries(snapshots)
            if self._settings.asr_hotwords:
                # A lost worker is noticed (and the hotwords restored) by the analyser.
                with contextlib.suppress(SpeechWorkerLost):
                    hotwords = await asyncio.to_thread(hotwords_for, snapshots)
                    await p.speech.set_hotwords(hotwords)
            self._emit(events.glossary_updated(snapshots))
            if self._input_closed:
                return

    # -- finisher: translation, chunk.done ----------------------------------

    async def _finish_chunks(self) -> None:
        ended = False
        while not ended and (item := await self._analysed.get()) is not None:
            group = [item]
            if self._p.translator is not None:
                # Behind the speaker: take what is already queued into one LLM turn.
                while (
                    not self._analysed.empty()
                    and sum(len(i.chunk.pcm) for i in group) < self._p.merge_limit
                ):
                    queued = self._analysed.get_nowait()
                    if queued is None:
                        ended = True
                        break
                    group.append(queued)
            await self._translate(group)
            for done in group:
                self._chunk_done(done)
        summary = self._stats.summary(
            self.session_id, "shutdown" if self._shutdown_requested else "completed"
        )
        await self._outbound.put((*self._log.publish(summary), True))
        await self._outbound.put(None)
        for task in (self._watch_task, self._index_task):
            if task is not None:
                task.cancel()

    async def _translate(self, group: list[AnalysedChunk]) -> None:
        translator = self._p.translator
        if translator is None:
            return
        chunk = merge_chunks([i.chunk for i in group])
        first = group[0].chunk.index
        silent = not any(i.analysis.has_speech for i in group)
        if silent and not (
            self._settings.translate_silence or self._services.translator_reads_captions
        ):
            # Silence costs nothing: no LLM call, an empty commit per language.
            for lang in self._p.context.target_languages:
                self._emit_commit(chunk, first, TranslationCommit(chunk.index, lang, ""))
            return
        terms = merge_terms([i.terms for i in group], chunk.index)
        analysis = merge_analyses([i.analysis for i in group], chunk.index)
        async for event in translator.translate(chunk, terms, analysis):
            if isinstance(event, TranslationCommit):
                self._emit_commit(chunk, first, event)
            else:
                self._emit(events.translation_delta(chunk, first, event))

    def _emit_commit(self, chunk: AudioChunk, first: int, commit: TranslationCommit) -> None:
        self._stats.commits += 1
        if commit.time_to_first_token is not None:
            self._metrics.llm_ttft.observe(commit.time_to_first_token)
        self._emit(events.translation_commit(chunk, first, commit))

    def _chunk_done(self, item: AnalysedChunk) -> None:
        chunk = item.chunk
        now = time.monotonic()
        latency = max(0.0, now - chunk.received_at)
        processing = now - item.started_at
        lag = self._stats.chunk_done(chunk.end_sample, latency)
        self._metrics.chunk_latency.observe(latency)
        self._metrics.chunk_processing.observe(processing)
        self._metrics.lag.observe(lag)
        self._emit(events.chunk_done(chunk, item.analysis.speech_samples, processing, latency, lag))
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

    # -- sender ------------------------------------------------------------

    def _emit(self, event: BaseModel) -> None:
        seq, text = self._log.publish(event)
        queued = self._outbound.qsize()
        limit = self._settings.max_outbound_events
        # A burst (one chunk's deltas in 5 languages) may pass the limit while the client
        # reads; a client whose sender has made no progress for a while may not, and
        # nobody may pass four times the limit.
        stalled = time.monotonic() - self._sender_progress > _SENDER_STALL_SECONDS
        if queued >= limit and (stalled or queued >= 4 * limit):
            raise RasstError(
                ErrorCode.CLIENT_TOO_SLOW,
                f"the client is not reading events ({queued} queued)",
            )
        self._outbound.put_nowait((seq, text, isinstance(event, SessionSummary)))

    def _warn(self, warning: StageWarning) -> None:
        self._stats.warnings += 1
        self._metrics.warnings.labels(code=str(warning.code)).inc()
        self._emit(events.warning(warning))

    def _bus_trouble(self) -> None:
        """The shared bus went down: this session goes on, but other replicas lose sight of it."""
        self._warn(
            StageWarning(
                ErrorCode.BUS_UNAVAILABLE,
                "the event bus is unavailable: viewers on other gateways and resuming through "
                "them pause until it is back; this session goes on",
            )
        )

    def _report_error(self, exc: RasstError) -> None:
        """A non-fatal error: the stream goes on (fatal ones end in _end_with_error)."""
        self._stats.errors += 1
        self._metrics.errors.labels(code=str(exc.code)).inc()
        self._emit(events.error(exc, fatal=False))

    async def _send_events(self) -> None:
        while (item := await self._outbound.get()) is not None:
            await self._deliver(item[0], item[1])

    async def _send_now(self, event: BaseModel) -> None:
        await self._deliver(*self._log.publish(event))

    async def _deliver(self, seq: int, text: str) -> None:
        """Send one numbered event, or only keep it for a resume while detached."""
        async with self._send_lock:
            self._log.sent(seq, text)
            if not self._link.attached:
                self._sender_progress = time.monotonic()  # kept for a resume: not stuck
                return
            generation = self._link.generation
            try:
                await send_text(self._link.ws, text)
                self._sender_progress = time.monotonic()
            except ClientGone:
                self._lost(generation)
                if not self._resumable:
                    raise

    # -- dropped connections and resume -----------------------------------

    @property
    def _resumable(self) -> bool:
        return self._resume_token is not None and self._link.state is not LinkState.CLOSED

    def _lost(self, generation: int) -> None:
        """Connection ``generation`` is gone; detach unless a newer one took over."""
        if not self._link.lose(generation):
            return
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
            raise ClientGone()
        left = self._settings.resume_grace_seconds - (time.monotonic() - self._link.detached_at)
        try:
            async with asyncio.timeout(max(0.0, left)) as self._grace:
                await self._link.wait_attached()
        except TimeoutError:
            outcome = "evicted" if self._evicted else "expired"
            self._metrics.disconnects.labels(outcome=outcome).inc()
            raise ClientGone() from None
        finally:
            self._grace = None

    def evict(self) -> None:
        """The registry ended this dropped session (a budget needs its slot): stop now."""
        if self._link.attached or self._evicted:
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
            previous = self._link.take_over(websocket)
            if previous is not None:
                # A half-open old connection loses to the new one.
                await close_quietly(previous, 1000, "resumed on another connection")
                self._link.release()
            replay, missed = self._log.after(last_seq)
            rate = self._p.start.audio.sample_rate
            resumed = SessionResumed(
                session_id=self.session_id,
                replayed=len(replay),
                missed=missed,
                audio_received_samples=self._input_samples,
                audio_received_seconds=round(self._input_samples / rate, 3),
                input_ended=self._input_closed,
            )
            # Not numbered: it belongs to this connection, not to the session's stream.
            await send_text(websocket, resumed.model_dump_json())
            for text in replay:
                await send_text(websocket, text)
            released = self._link.go_live()
            self._services.sessions.reattached(self)
        self._metrics.disconnects.labels(outcome="resumed").inc()
        log.info(
            "session resumed: %d event(s) replayed, %d missed",
            len(replay),
            missed,
            extra={"session_id": self.session_id},
        )
        return released

    async def _resume_other(self, message: SessionResume) -> None:
        target = self._services.sessions.resumable(message.resume_token)
        bus = self._services.bus
        if target is None and bus is not None:
            # Held by another replica? Relay this connection there (the owner authenticates).
            owner = await self._resume_owner(message.resume_token)
            if owner is not None:
                await relay_resume(
                    self._link.ws,
                    owner,
                    message.model_dump_json(exclude_none=True),
                    self._settings.idle_timeout_seconds,
                )
                return
        tenant = await admission.authenticate(
            self._link.ws, self._services, message.api_key, self._tenant
        )
        # A foreign tenant's token reads exactly like an expired one.
        if target is None or (self._settings.auth_enabled and tenant != target.tenant):
            raise RasstError(
                ErrorCode.RESUME_FAILED,
                "unknown or expired resume token; start a new session",
            )
        self.session_id = target.session_id
        released = await target.attach(self._link.ws, message.last_seq)
        await released.wait()

    async def _resume_owner(self, token: str) -> str | None:
        """Another pod that holds this token's session, from the bus (None: none known)."""
        bus = self._services.bus
        assert bus is not None
        try:
            owner = await bus.resume_owner(token_digest(token))
        except (RedisError, OSError) as exc:
            raise RasstError(
                ErrorCode.RESUME_FAILED,
                f"the event bus is unavailable ({type(exc).__name__}); "
                "resume on the same gateway or start a new session",
            ) from None
        if owner is None or owner == bus.params.pod_address:
            return None
        return owner

    async def _end_with_error(self, failure: RasstError, reason: str) -> None:
        """The explicit end of a failed stream: pending events, error, summary, close."""
        self._stats.errors += 1
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
            await self._send_now(events.error(failure, fatal=True))
            await self._send_now(
                self._stats.summary(
                    self.session_id, "shutdown" if reason == "shutdown" else "error"
                )
            )
        except (ClientGone, RasstError):
            pass
        await self._close(ws_close_code(failure.code), failure.message)

    async def _close(self, code: int, reason: str = "") -> None:
        if self._link.state is LinkState.CLOSED:
            return
        self._link.close()
        await close_quietly(self._link.ws, code, reason)
        # Only now may a resumed connection's handler return (its socket is closed).
        self._link.release()


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
    for kind in (ClientGone, RasstError):
        for exc in flat:
            if isinstance(exc, kind):
                return exc
    return flat[0]
