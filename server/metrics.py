"""Prometheus metrics of the gateway, in a registry owned by the app (not the global one)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.sessions_active = Gauge(
            "rasst_sessions_active", "Streaming sessions open now.", registry=r
        )
        self.sessions_total = Counter(
            "rasst_sessions_total", "Streaming sessions ended, by reason.", ["reason"], registry=r
        )
        self.audio_seconds = Counter(
            "rasst_audio_seconds_total", "Seconds of audio received.", registry=r
        )
        self.speech_seconds = Counter(
            "rasst_speech_seconds_total", "Seconds of audio the VAD judged speech.", registry=r
        )
        self.chunk_processing = Histogram(
            "rasst_chunk_processing_seconds",
            "Wall time from a chunk's processing start to its chunk.done event.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.chunk_latency = Histogram(
            "rasst_chunk_latency_seconds",
            "Wall time from a chunk's last sample arriving to its chunk.done event.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.lag = Histogram(
            "rasst_session_lag_seconds",
            "Audio received but not yet processed, sampled at every chunk.",
            buckets=(0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0),
            registry=r,
        )
        self.retrieval = Histogram(
            "rasst_retrieval_seconds",
            "Retrieval time per chunk.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.llm_ttft = Histogram(
            "rasst_llm_time_to_first_token_seconds",
            "LLM time to first token per chunk and target language.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.disconnects = Counter(
            "rasst_session_disconnects_total",
            "Speaker connections lost mid-session, by outcome (resumed or expired).",
            ["outcome"],
            registry=r,
        )
        self.bus_up = Gauge(
            "rasst_bus_up",
            "1 while the shared event bus (Redis) takes this gateway's events; 0 while it is down.",
            registry=r,
        )
        self.bus_dropped_events = Gauge(
            "rasst_bus_dropped_events",
            "Events not copied to the bus because its outbox was full during an outage.",
            registry=r,
        )
        self.sessions_detached = Gauge(
            "rasst_sessions_detached",
            "Sessions whose speaker connection dropped, waiting for session.resume.",
            registry=r,
        )
        self.detached_evictions = Counter(
            "rasst_detached_evictions_total",
            "Dropped sessions ended before their resume grace, by the budget that needed the "
            "slot (caller, tenant or capacity).",
            ["budget"],
            registry=r,
        )
        self.errors = Counter(
            "rasst_errors_total", "Error events sent to clients, by code.", ["code"], registry=r
        )
        self.warnings = Counter(
            "rasst_warnings_total", "Warning events sent to clients, by code.", ["code"], registry=r
        )
