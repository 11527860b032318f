"""Admission: the first message, who is calling, whether they may, and the opened pipeline.

Everything a session needs before its first audio frame is decided here; the session
itself only orchestrates what :func:`open_pipeline` returns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import WebSocket

from glossary.model import GlossarySnapshot
from kernel.errors import ErrorCode, RasstError
from kernel.frames import PIPELINE_RATE, StageWarning, seconds
from server.asr.hotwords import hotwords_for
from server.audio import PaceLimiter, Resampler, Slicer, check_audio_format, chunk_samples
from server.catchup import merge_limit_samples
from server.feeds import SessionFeed
from server.protocol import (
    PROTOCOL_VERSION,
    SessionEnd,
    SessionLimits,
    SessionResume,
    SessionStart,
    SessionStarted,
    TermMemoryRouted,
    parse_client_message,
)
from server.ratelimit import caller_identity
from server.services import GatewayServices
from server.session import events
from server.session.wire import api_key_from, receive
from server.stages import (
    NoRetriever,
    SessionContext,
    SessionRetriever,
    SessionTranslator,
    WarnFn,
)
from server.term_memory import RoutedRetriever, TermMemory, open_term_memory
from server.workers import SpeechSession


async def receive_start(ws: WebSocket, idle_timeout: float) -> SessionStart | SessionResume:
    """The first message: ``session.start`` or ``session.resume``, in a version we speak."""
    message = await receive(ws, idle_timeout)
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


async def authenticate(
    ws: WebSocket, services: GatewayServices, api_key: str | None, default_tenant: str
) -> str:
    """The caller's tenant (the message's key, else the connection's headers or query)."""
    api_key = api_key or api_key_from(ws)
    if services.glossaries is not None:
        return await services.glossaries.authenticate(api_key)
    if services.settings.auth_enabled:
        raise RasstError(ErrorCode.UNAUTHORIZED, "authentication is enabled but unavailable")
    return default_tenant


def check_rate(ws: WebSocket, services: GatewayServices, api_key: str | None) -> str:
    """Take a session start from the caller's budget; returns the caller's identity."""
    client = ws.client
    caller = caller_identity(
        ws.headers,
        api_key or ws.query_params.get("api_key"),
        client.host if client else None,
    )
    wait = services.rate_limiter.acquire(caller)
    if wait > 0:
        raise RasstError(
            ErrorCode.RATE_LIMITED,
            f"too many session starts for this API key; retry in {wait:.0f} s",
            detail={"retry_after_seconds": round(wait, 1)},
        )
    return caller


@dataclass
class OpenedPipeline:
    """The per-session stages and audio policy, built once the session is admitted."""

    start: SessionStart
    context: SessionContext
    glossaries: list[GlossarySnapshot]
    feed: SessionFeed
    pace: PaceLimiter
    resampler: Resampler
    slicer: Slicer
    # Catch-up merges at most this many samples into one LLM turn.
    merge_limit: int
    speech: SpeechSession
    retriever: SessionRetriever = field(default_factory=NoRetriever)
    translator: SessionTranslator | None = None
    # "term_memory": "auto": the tenant's slices (their glossaries are in ``glossaries``).
    term_memory: TermMemory | None = None


async def open_pipeline(
    session_id: str,
    tenant: str,
    start: SessionStart,
    services: GatewayServices,
    now: float,
) -> OpenedPipeline:
    """Load the glossaries, open the viewers' feed and the speech front end.

    The retriever and translator come after (:func:`open_stages`), once the caller holds
    the pipeline and so closes whatever was opened if a later step fails.
    """
    settings = services.settings
    glossaries: list[GlossarySnapshot] = []
    if start.glossary_ids:
        if services.glossaries is None:
            raise RasstError(ErrorCode.GLOSSARY_NOT_FOUND, "no glossary store is configured")
        glossaries = await services.glossaries.load(tenant, start.glossary_ids)
    memory = None
    if start.term_memory == "auto":
        memory = await open_term_memory(services.glossaries, tenant, glossaries)
        glossaries = list(memory.snapshots)
    feed = services.feeds.open(session_id, tenant)
    samples = chunk_samples(start.lm)
    context = SessionContext(
        session_id=session_id,
        tenant=tenant,
        source_language=start.source_language,
        target_languages=tuple(start.target_languages),
        lm=start.lm,
        chunk_seconds=seconds(samples),
    )
    try:
        hotwords = ""
        if settings.asr_hotwords and glossaries:
            # Ranks every entry: a 100k-term glossary takes a while, off the event loop.
            hotwords = await asyncio.to_thread(hotwords_for, glossaries)
        speech = await services.speech.open(session_id, hotwords)
    except BaseException:
        feed.close()
        raise
    return OpenedPipeline(
        start=start,
        context=context,
        glossaries=glossaries,
        feed=feed,
        pace=PaceLimiter(
            start.audio.sample_rate, settings.max_pace, settings.pace_burst_seconds, now
        ),
        resampler=Resampler(start.audio.sample_rate),
        slicer=Slicer(samples),
        merge_limit=merge_limit_samples(samples),
        speech=speech,
        term_memory=memory,
    )


async def open_stages(
    pipeline: OpenedPipeline,
    services: GatewayServices,
    warn: WarnFn,
    emit: Callable[[TermMemoryRouted], None] | None = None,
) -> None:
    """The retriever and translator (each may degrade, never fail), then caption sinks."""
    start = pipeline.start
    if pipeline.glossaries and services.retriever is not None:
        pipeline.retriever = await services.retriever.open_session(
            pipeline.context, pipeline.glossaries, warn
        )
        if pipeline.term_memory is not None and emit is not None:
            pipeline.retriever = RoutedRetriever(pipeline.retriever, pipeline.term_memory, emit)
    if services.translator is not None and start.target_languages:
        pipeline.translator = await services.translator.open_session(pipeline.context, warn)
    if start.sinks:
        # Refuses a bad sink before anything is delivered; a target language needs a
        # translator, or its sink would wait for translations that never come.
        services.sinks.attach(
            pipeline.feed,
            start.sinks,
            source_language=start.source_language,
            target_languages=start.target_languages if pipeline.translator is not None else (),
            warn=lambda message: warn(StageWarning(ErrorCode.SINK_FAILED, message)),
        )


def started_event(
    session_id: str, pipeline: OpenedPipeline, services: GatewayServices, resume_token: str | None
) -> SessionStarted:
    s = services.settings
    start = pipeline.start
    return SessionStarted(
        session_id=session_id,
        mode="translation" if pipeline.translator is not None else "captions",
        viewer_token=pipeline.feed.viewer_token,
        source_language=start.source_language,
        target_languages=list(start.target_languages),
        lm=start.lm,
        chunk_seconds=pipeline.context.chunk_seconds,
        input_sample_rate=start.audio.sample_rate,
        sample_rate=PIPELINE_RATE,
        glossaries=events.glossaries_in_use(pipeline.glossaries),
        limits=SessionLimits(
            max_pace=s.max_pace,
            max_frame_bytes=s.max_frame_bytes,
            idle_timeout_seconds=s.idle_timeout_seconds,
            max_session_seconds=s.max_session_seconds,
            resume_grace_seconds=s.resume_grace_seconds if resume_token else 0.0,
        ),
        resume_token=resume_token,
    )
