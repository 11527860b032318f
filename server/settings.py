"""Service configuration: environment variables ``RASST_*`` (or CLI flags), validated at start-up.

The glossary and retriever packages read their own settings (``GlossarySettings``,
``RetrieverSettings``); ``Settings`` composes them with the gateway's fields.
"""

from __future__ import annotations

import os
import socket
from functools import lru_cache
from typing import Literal

from pydantic import Field, field_validator, model_validator

from glossary.settings import GlossarySettings
from kernel.settings import RASST_ENV, apply_preset, http_url
from retriever.settings import PAPER_RETRIEVER, RetrieverSettings

# RASST_PRESET=paper: the release's serving behaviour (docs/paper-preset.md).
# Applied to every field in this table that is not set explicitly (an explicit
# RASST_* variable or argument still wins); everything else keeps the project's
# defaults.
PAPER_PRESET: dict[str, object] = {
    # The retriever's part (retriever.settings.PAPER_RETRIEVER).
    **PAPER_RETRIEVER,
    # Translator: the eval agent's seed, history of 30 / 20 audios per prompt
    # trimmed one pair per step, its en→zh prompt, the final chunk padded to
    # 0.96 s, and every chunk sent to the LLM, silent ones included.
    "llm_seed": 998_244_353,
    "llm_history_policy": "step",
    "llm_history_count_current": True,
    "llm_prompt_style": "release",
    "llm_min_audio_seconds": 0.96,
    "translate_silence": True,
}


class Settings(GlossarySettings, RetrieverSettings):
    """The gateway's settings: its own fields over the glossary and retriever packages' ones."""

    model_config = RASST_ENV

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    log_level: str = "info"
    log_json: bool = False

    # The LLM's URL, model and key are GlossarySettings' (glossary drafts use them too).
    # Which translator tier (docs/translator.md): "speech" (a speech LLM hears the
    # audio), "text" (a text LLM translates the captions), "auto" (decided at start-up
    # from the served model's name).
    llm_mode: Literal["speech", "text", "auto"] = "speech"
    # Text tier: the longest a spoken word waits before it is translated (seconds of
    # audio, rounded up to a chunk), whether revisable caption words may be translated
    # at clause boundaries before their utterance ends, and whether a commit that
    # missed a retrieved term gets one repair request.
    llm_text_max_wait_seconds: float = Field(default=2.0, gt=0.3, le=30.0)
    llm_text_tail: bool = True
    llm_text_repair: bool = True
    # Faults around the LLM (docs/translator.md): connect, the longest silence between
    # two streamed tokens, and the longest one chunk's whole completion may take, so a
    # stalled or crawling LLM costs a session at most that much lag per chunk.
    llm_connect_timeout_seconds: float = Field(default=3.0, gt=0)
    llm_read_timeout_seconds: float = Field(default=20.0, gt=0)
    llm_request_deadline_seconds: float = Field(default=10.0, gt=0)
    # Consecutive failed LLM requests (any session) that open the circuit breaker, and
    # how long it then fails fast before a probe (doubling up to the max).
    llm_breaker_failures: int = Field(default=3, ge=1)
    llm_breaker_reset_seconds: float = Field(default=3.0, gt=0)
    llm_breaker_reset_max_seconds: float = Field(default=10.0, gt=0)
    # Decoding and prompt (docs/translator.md); the defaults are the project's.
    # A seed sent with every request (None: the server's own randomness).
    llm_seed: int | None = None
    # "block": trim the history a block at a time (keeps vLLM's prefix cache);
    # "step": one pair per chunk, as the release does.
    llm_history_policy: Literal["block", "step"] = "block"
    # True: the 30 / 20 chunk history limit counts the new chunk (the release).
    llm_history_count_current: bool = False
    # "release": en→zh gets the release eval agent's own zh prompt (the paper's zh numbers).
    llm_prompt_style: Literal["project", "release"] = "project"
    # Chunks shorter than this are zero-padded before they go to the LLM.
    llm_min_audio_seconds: float = Field(default=0.0, ge=0.0, le=10.0)
    # Send chunks the VAD judged silent to the LLM too (the release translates every chunk).
    translate_silence: bool = False
    # Without retriever_url, retrieval runs in process (embedded default).
    retriever_url: str | None = None
    retriever_connect_timeout_seconds: float = Field(default=1.0, gt=0)
    retriever_read_timeout_seconds: float = Field(default=2.0, gt=0)
    # How long a session start waits for its glossaries' index builds (embedded
    # retriever); after it the session starts and is told (glossary_indexing warnings).
    index_wait_seconds: float = Field(default=2.0, ge=0.0, le=30.0)

    cors_origins: list[str] = Field(default_factory=list)
    # With auth enabled, /metrics needs this key (or the admin key) as a bearer token.
    metrics_key: str | None = None
    # Per API key (per client address without one): REST requests and session
    # starts, as a token bucket. 0 turns the limit off.
    rate_limit_per_minute: int = Field(default=600, ge=0)
    rate_limit_burst: int = Field(default=60, ge=1)
    # Concurrent sessions one tenant may hold; 0: only max_sessions applies.
    max_sessions_per_tenant: int = Field(default=0, ge=0)
    # Largest HTTP request body (uploads included), checked while it streams in.
    max_request_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)

    # Streaming limits (per session unless stated).
    max_sessions: int = Field(default=64, ge=1)
    max_pace: float = Field(default=2.0, gt=0)
    pace_burst_seconds: float = Field(default=10.0, ge=0)
    max_frame_bytes: int = Field(default=256 * 1024, ge=2)
    idle_timeout_seconds: float = Field(default=30.0, gt=0)
    max_session_seconds: float = Field(default=4 * 3600.0, gt=0)
    max_backlog_seconds: float = Field(default=120.0, gt=0)
    max_outbound_events: int = Field(default=2000, ge=16)
    lag_warning_seconds: float = Field(default=5.0, gt=0)
    # A client that drops may resume its session (same history, glossaries and
    # output) within this many seconds; 0 ends a session at its first disconnect.
    resume_grace_seconds: float = Field(default=30.0, ge=0)
    # Dropped sessions waiting for a resume hold a slot: at most this many per caller
    # (API key, else client address) and per tenant; past that the oldest ends. When
    # the server is full, the oldest dropped session ends before anyone gets server_busy.
    # 0: no budget of its own.
    max_detached_sessions_per_caller: int = Field(default=8, ge=0)
    max_detached_sessions_per_tenant: int = Field(default=32, ge=0)

    # Speech front end (silero VAD + Whisper captions), in worker processes.
    captions: bool = True
    speech_workers: int = Field(default=0, ge=0, description="0 = one per CPU core")
    # Whisper model: "tiny.en" / "base" (shipped in PyPI wheels, no download), another
    # faster-whisper size or hub id (downloaded on first use), or a local directory.
    asr_model: str = "tiny.en"
    # "cpu", "cuda" or "auto"; compute type "default" = int8 on CPU, float16 on CUDA.
    asr_device: Literal["cpu", "cuda", "auto"] = "cpu"
    asr_compute_type: str = "default"
    # Threads per worker process (each worker holds one model).
    asr_threads: int = Field(default=1, ge=1, le=64)
    # Bias recognition toward the session's glossary terms (Whisper prompt).
    asr_hotwords: bool = True
    # Seconds of new speech between two revisable caption decodes.
    asr_partial_step_seconds: float = Field(default=0.48, ge=0.16, le=10.0)
    # Longest utterance transcribed in one piece (Whisper sees at most 30 s).
    asr_max_utterance_seconds: float = Field(default=15.0, ge=2.0, le=28.0)

    # How often sessions look for glossary changes made by other processes
    # (changes through this process arrive at once).
    glossary_poll_seconds: float = Field(default=1.0, gt=0)

    shutdown_grace_seconds: float = Field(default=10.0, ge=0)

    # Several replicas (docs/operations.md, "Several gateways"): the shared event bus on
    # Redis. Unset: this process alone, as before.
    redis_url: str | None = None
    # How the other replicas reach this one (http://host:port), for cross-replica resume;
    # unset: http://<host>:<port>, with this machine's address when host is 0.0.0.0.
    pod_address: str | None = None
    # Events kept per session on the bus (the cross-replica replay buffer).
    bus_stream_max_events: int = Field(default=20_000, ge=100)
    # A live session's bus entries lapse this long after its gateway stops renewing them.
    bus_lease_seconds: float = Field(default=15.0, ge=3.0)
    # An ended session stays on the bus this long (late viewers, subtitles).
    bus_retain_seconds: float = Field(default=3600.0, gt=0)

    @model_validator(mode="after")
    def _apply_preset(self) -> Settings:
        if self.preset == "paper":
            apply_preset(self, PAPER_PRESET)
        return self

    @model_validator(mode="after")
    def _text_tier_needs_captions(self) -> Settings:
        if self.llm_mode == "text" and not self.captions:
            raise ValueError("llm_mode text translates the captions: it needs captions on")
        return self

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        value = value.lower()
        if value not in {"critical", "error", "warning", "info", "debug"}:
            raise ValueError(f"unknown log level {value!r}")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value or None

    @field_validator("pod_address")
    @classmethod
    def _pod_address(cls, value: str | None) -> str | None:
        return http_url(value)

    @field_validator("retriever_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return http_url(value)

    @property
    def internal_address(self) -> str:
        """This gateway's address for the other replicas (pod_address, else derived)."""
        if self.pod_address:
            return self.pod_address
        host = self.host
        if host in ("0.0.0.0", "::", ""):
            host = socket.gethostbyname(socket.gethostname())
        return f"http://{host}:{self.port}"

    @property
    def worker_count(self) -> int:
        return self.speech_workers or max(1, os.cpu_count() or 1)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
