"""The composition root: the only place that reads settings and builds long-lived services."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

import glossary.router
import glossary.term_memory
from glossary.store import GlossaryStore
from kernel.http_errors import install_error_handlers
from retriever.aggregate import AggregationParams
from retriever.word_evidence import WordRetrievalParams
from server import web
from server.asr.front_end import FrontEndParams
from server.asr.models import AsrModelParams
from server.bus import BusParams, EventBus
from server.deepgram.route import router as deepgram_router
from server.glossary_access import StoreGlossaryAccess
from server.http_guard import RequestGuard
from server.index_reports import build_on_upload, index_status_fn
from server.metrics import GatewayMetrics
from server.openai_audio import router as openai_audio_router
from server.protocol import PROTOCOL_VERSION
from server.ratelimit import RateLimiter
from server.retrieval import (
    EmbeddedRetrievalParams,
    EmbeddedRetrieverService,
    RemoteRetrievalParams,
    RemoteRetrieverService,
)
from server.routes import router
from server.services import AdmissionParams, GatewayServices, SessionRegistry
from server.settings import Settings, get_settings
from server.sinks.routes import router as sinks_router
from server.translator import (
    DecodingParams,
    FaultParams,
    HistoryParams,
    PromptStyle,
    TranslatorParams,
    TrimPolicy,
)
from server.translator.client import LlmError
from server.translator.mode import build_service, detect_mode
from server.translator.params import LlmMode, TextParams
from server.translator.text_policy import TextPolicyParams
from server.workers import SpeechWorkerParams, SpeechWorkers

log = logging.getLogger(__name__)


def _translator_params(settings: Settings) -> TranslatorParams:
    assert settings.llm_url is not None
    return TranslatorParams(
        url=settings.llm_url,
        model=settings.llm_model,
        api_key=settings.llm_api_key,
        faults=FaultParams(
            connect_timeout=settings.llm_connect_timeout_seconds,
            read_timeout=settings.llm_read_timeout_seconds,
            request_deadline=settings.llm_request_deadline_seconds,
            breaker_failures=settings.llm_breaker_failures,
            breaker_reset_seconds=settings.llm_breaker_reset_seconds,
            breaker_reset_max_seconds=settings.llm_breaker_reset_max_seconds,
        ),
        decoding=DecodingParams(seed=settings.llm_seed),
        history=HistoryParams(
            policy=TrimPolicy(settings.llm_history_policy),
            count_current=settings.llm_history_count_current,
        ),
        prompt_style=PromptStyle(settings.llm_prompt_style),
        min_audio_samples=round(settings.llm_min_audio_seconds * 16_000),
        text=TextParams(
            policy=TextPolicyParams(
                allow_tail=settings.llm_text_tail,
                max_wait_seconds=settings.llm_text_max_wait_seconds,
            ),
            repair=settings.llm_text_repair,
        ),
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    # Shared by the HTTP guard (REST calls) and sessions (session starts).
    limiter = RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            store = GlossaryStore.from_settings(settings)
            stack.callback(store.close)
            await asyncio.to_thread(store.create_schema)
            speech = SpeechWorkers(speech_worker_params(settings))
            await speech.start()
            stack.callback(speech.close)
            retriever = _build_retriever(settings)
            stack.push_async_callback(retriever.aclose)
            metrics = GatewayMetrics()
            admission = AdmissionParams(
                max_sessions=settings.max_sessions,
                max_per_tenant=settings.max_sessions_per_tenant,
                max_detached_per_caller=settings.max_detached_sessions_per_caller,
                max_detached_per_tenant=settings.max_detached_sessions_per_tenant,
            )
            services = GatewayServices(
                settings=settings,
                metrics=metrics,
                speech=speech,
                sessions=SessionRegistry(admission, metrics),
                rate_limiter=limiter,
                glossaries=StoreGlossaryAccess(
                    store,
                    auth_enabled=settings.auth_enabled,
                    poll_interval=settings.glossary_poll_seconds,
                ),
                retriever=retriever,
            )
            if settings.llm_url:
                params = _translator_params(settings)
                mode = LlmMode(settings.llm_mode)
                if mode is LlmMode.AUTO:
                    try:
                        mode = await detect_mode(params)
                    except LlmError as exc:
                        raise RuntimeError(
                            f"--llm-mode auto: cannot ask {settings.llm_url} which model it "
                            f"serves ({exc}); start the LLM first or set --llm-mode"
                        ) from exc
                translator = build_service(params, mode)
                stack.push_async_callback(translator.aclose)
                services.translator = translator
                services.translator_reads_captions = mode is LlmMode.TEXT
                log.info("translator tier: %s", mode.value)
            if settings.redis_url:
                services.bus = await _start_bus(settings, services, stack)
            app.state.settings = settings
            app.state.glossary_store = store
            # Uploads start their index builds at once; REST and /readyz show their state.
            stack.callback(build_on_upload(store, retriever))
            app.state.index_status = index_status_fn(retriever)
            app.state.services = services
            log.info(
                "gateway ready",
                extra={"workers": settings.worker_count, "llm": bool(settings.llm_url)},
            )
            yield
            await services.sessions.shutdown(settings.shutdown_grace_seconds)

    app = FastAPI(
        title="RASST gateway",
        version=f"protocol-{PROTOCOL_VERSION}",
        summary="Terminology-aware simultaneous speech translation over WebSocket.",
        lifespan=lifespan,
    )
    app.include_router(router)
    app.include_router(glossary.router.router)
    app.include_router(glossary.term_memory.router)
    app.include_router(web.router)
    app.include_router(deepgram_router)
    app.include_router(openai_audio_router)
    app.include_router(sinks_router)
    app.mount("/static", web.static_files(), name="static")
    install_error_handlers(app)
    app.add_middleware(RequestGuard, limiter=limiter, max_body_bytes=settings.max_request_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=[
                "Authorization",
                "X-API-Key",
                "Content-Type",
                "If-Match",
                "If-None-Match",
            ],
            expose_headers=["ETag"],
        )
    return app


def _build_retriever(settings: Settings) -> EmbeddedRetrieverService | RemoteRetrieverService:
    """The retriever service at --retriever-url, else the embedded one (the default)."""
    aggregation = AggregationParams(
        k1=settings.retrieval_top_k, k2=settings.retrieval_top_k, tau=settings.retrieval_tau
    )
    cache_dir = settings.data_dir / "retrieval"
    if settings.retriever_url:
        return RemoteRetrieverService(
            RemoteRetrievalParams(
                url=settings.retriever_url,
                cache_dir=cache_dir,
                aggregation=aggregation,
                connect_timeout=settings.retriever_connect_timeout_seconds,
                read_timeout=settings.retriever_read_timeout_seconds,
            )
        )
    return EmbeddedRetrieverService(
        EmbeddedRetrievalParams(
            cache_dir=cache_dir,
            retrieval=WordRetrievalParams(aggregation, candidates=settings.retrieval_candidates),
            index_wait_seconds=settings.index_wait_seconds,
        )
    )


async def _start_bus(
    settings: Settings, services: GatewayServices, stack: AsyncExitStack
) -> EventBus:
    """The shared event bus of several replicas: feeds and resume tokens go on Redis too."""
    assert settings.redis_url is not None
    bus = EventBus(
        BusParams(
            url=settings.redis_url,
            pod_address=settings.internal_address,
            stream_max_events=settings.bus_stream_max_events,
            lease_seconds=settings.bus_lease_seconds,
            retain_seconds=settings.bus_retain_seconds,
        )
    )
    await bus.start()
    stack.push_async_callback(bus.aclose)
    services.feeds.sink = bus
    services.sessions.bus = bus
    services.metrics.bus_up.set_function(lambda: float(bus.healthy))
    services.metrics.bus_dropped_events.set_function(lambda: float(bus.dropped_events))

    def tell_sessions(healthy: bool) -> None:
        if healthy:
            return
        for feed in services.feeds.live():
            if feed.on_sink_trouble is not None:
                feed.on_sink_trouble()

    bus.on_health(tell_sessions)
    log.info(
        "event bus on %s; this gateway is %s",
        settings.redis_url.split("@")[-1],
        bus.params.pod_address,
    )
    return bus


def speech_worker_params(settings: Settings) -> SpeechWorkerParams:
    return SpeechWorkerParams(
        workers=settings.worker_count,
        front_end=FrontEndParams(
            captions=settings.captions,
            partial_step_seconds=settings.asr_partial_step_seconds,
            max_utterance_seconds=settings.asr_max_utterance_seconds,
        ),
        model=AsrModelParams(
            model=settings.asr_model,
            device=settings.asr_device,
            compute_type=settings.asr_compute_type,
            cpu_threads=settings.asr_threads,
            cache_dir=settings.data_dir / "models",
        ),
    )
