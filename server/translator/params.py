"""Typed configuration of the translator: endpoint, decoding, history, faults.

Grouped into small frozen dataclasses so the service constructor takes one
object; defaults are the reference system's (see docs/translator.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from server.translator.text_policy import TextPolicyParams

# One latency unit of audio: 0.96 s at 16 kHz (a chunk is lm of these).
SAMPLES_PER_UNIT = 15_360


class AudioPartStyle(StrEnum):
    """How a chunk's audio travels in the chat request (both are OpenAI-style parts)."""

    # {"type": "input_audio", "input_audio": {"data": <base64 WAV>, "format": "wav"}}
    INPUT_AUDIO = "input_audio"
    # {"type": "audio_url", "audio_url": {"url": "data:audio/wav;base64,..."}}
    AUDIO_URL = "audio_url"


class PromptStyle(StrEnum):
    """Which system prompt a language gets."""

    # One prompt for every language (the paper's, in docs/translator.md).
    PROJECT = "project"
    # The release's eval agent: en→zh uses its own zh prompt (the paper's zh numbers)
    # ("Your task is to translate English audio chunks into accurate and fluent
    # Chinese. Use the ‘term_map’ …"); other languages the project prompt.
    RELEASE = "release"


class TrimPolicy(StrEnum):
    """How the bounded history is shortened once it is full."""

    # Drop a block of the oldest chunks at once: the prompt prefix (and thus
    # vLLM's prefix cache) stays valid for `block` steps between trims.
    BLOCK = "block"
    # The reference's policy: drop the oldest chunk every step once full. Every
    # step then changes the prompt right after the system prompt, so almost
    # nothing of the history is served from the prefix cache.
    STEP = "step"


@dataclass(frozen=True, slots=True)
class DecodingParams:
    """Sampling settings sent with every request (reference defaults)."""

    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int = 20
    # max_tokens = max_tokens_per_lm × lm (the reference: 40 × lm); a turn
    # carrying more audio (catch-up merges) gets 40 per 0.96 s of it.
    max_tokens_per_lm: int = 40
    # Sent as the request's seed when set (the release's eval agent seeds its
    # sampling); None: no seed, the server's own randomness.
    seed: int | None = None

    def max_tokens(self, lm: int, samples: int) -> int:
        """The token budget of one turn: 40 × lm, or 40 × (its seconds / 0.96) when longer.

        A chunk is 0.96 × lm s, so a single chunk gets 40 × lm as in the
        reference (a short final chunk too); a catch-up turn that merged n
        chunks gets n times that, instead of one chunk's budget for several
        chunks of speech.
        """
        units = -(-samples // SAMPLES_PER_UNIT)  # ceil: a partial 0.96 s counts
        return self.max_tokens_per_lm * max(lm, units)


@dataclass(frozen=True, slots=True)
class HistoryParams:
    """How many past chunks (audio + answer pairs) stay in the prompt."""

    policy: TrimPolicy = TrimPolicy.BLOCK
    # None: the reference's limits, 30 chunks for lm 1–2 and 20 for lm 3–4.
    max_chunks: int | None = None
    # Chunks dropped per trim under the block policy; None: a third of max_chunks.
    block: int | None = None
    # True: the limit counts the new chunk too, so the prompt holds at most
    # limit − 1 past pairs plus the new turn (the release's eval agent: 30 or 20
    # audios per prompt). False: limit past pairs plus the new turn.
    count_current: bool = False

    def limit(self, lm: int) -> int:
        base = self.max_chunks if self.max_chunks is not None else (30 if lm <= 2 else 20)
        return max(0, base - (1 if self.count_current else 0))

    def block_size(self, lm: int) -> int:
        limit = self.limit(lm)
        if self.block is not None:
            return max(1, min(self.block, max(limit, 1)))
        return max(1, limit // 3)


@dataclass(frozen=True, slots=True)
class FaultParams:
    """Timeouts, retries and the circuit breaker around the LLM endpoint."""

    connect_timeout: float = 3.0
    # Longest silence between two SSE chunks (also bounds time to first token).
    read_timeout: float = 20.0
    write_timeout: float = 10.0
    # Longest one whole completion may take, from sending the request to its
    # last SSE event (connect retries included). A session translates its
    # chunks one turn at a time, so every second a turn waits is a second of
    # lag for all its later chunks: a stalled network or a server trickling
    # tokens must end the turn on time (a partial or empty commit) rather than
    # after up to max_tokens × read_timeout. Counts against the breaker.
    request_deadline: float = 10.0
    # Retries of requests that failed to connect; nothing was generated yet, so
    # retrying is safe. Read timeouts are not retried: the server may still be
    # working on the request and a retry would double its load.
    connect_retries: int = 2
    backoff_seconds: float = 0.1
    backoff_max_seconds: float = 1.0
    # Consecutive failed requests (any session) that open the breaker.
    breaker_failures: int = 3
    # How long an open breaker fails fast before one probe request may pass.
    breaker_reset_seconds: float = 3.0
    breaker_reset_max_seconds: float = 10.0


class LlmMode(StrEnum):
    """Which translator tier the gateway runs (docs/translator.md)."""

    # A speech LLM hears each chunk's audio (Qwen3-Omni, the released RASST models).
    SPEECH = "speech"
    # A text LLM translates the captions (any OpenAI-compatible chat model).
    TEXT = "text"
    # Decided at start-up from the model the endpoint serves.
    AUTO = "auto"


@dataclass(frozen=True, slots=True)
class TextParams:
    """The text tier's own settings (the endpoint, history and faults are shared)."""

    policy: TextPolicyParams = field(default_factory=TextPolicyParams)
    # After a commit that missed a retrieved term, ask once for a corrected translation.
    repair: bool = True
    # Token budget of a turn: this many per source word, at least min_tokens
    # (the random test model never stops by itself; real models stop at the
    # turn's end well before it).
    tokens_per_word: int = 4
    min_tokens: int = 16
    # Send vLLM's own request fields (cache_salt, top_k). Other servers may
    # reject unknown fields (hosted APIs answer 400). None: only when
    # /v1/models says the endpoint is vLLM (owned_by "vllm").
    vllm_extras: bool | None = None
    # Terms per turn (the speech tier's catch-up cap: one retrieval call's K2).
    max_terms: int = 10

    def max_tokens(self, words: int) -> int:
        return max(self.min_tokens, self.tokens_per_word * words)


@dataclass(frozen=True, slots=True)
class TranslatorParams:
    """Everything the vLLM translator needs; built once by the composition root."""

    # Base URL of the OpenAI-compatible server, with or without a trailing /v1.
    url: str
    # Served model name; None: the first model the server lists.
    model: str | None = None
    # Per target language served model names (e.g. the released per-language
    # RASST models, or LoRA adapters of one base in one vLLM); languages not
    # listed use `model`. Keys are base language codes ("zh", "de", "ja").
    models: Mapping[str, str] = field(default_factory=dict)
    api_key: str | None = None
    decoding: DecodingParams = field(default_factory=DecodingParams)
    history: HistoryParams = field(default_factory=HistoryParams)
    faults: FaultParams = field(default_factory=FaultParams)
    audio_part: AudioPartStyle = AudioPartStyle.INPUT_AUDIO
    prompt_style: PromptStyle = PromptStyle.PROJECT
    # Audio shorter than this is zero-padded at its end before it is sent (the
    # release pads the final chunk to 0.96 s = 15 360 samples); 0: sent as is.
    min_audio_samples: int = 0
    # Header naming the session on every request, for routers that pin a session
    # to one vLLM replica (prefix cache), e.g. vLLM production-stack's
    # `--routing-logic session --session-key x-session-id`. None: not sent.
    session_header: str | None = "x-session-id"
    # Connection pool size shared by all sessions.
    max_connections: int = 256
    # The text tier's policy, repair and request shape (unused by the speech tier).
    text: TextParams = field(default_factory=TextParams)
