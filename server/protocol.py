"""Wire models of the streaming protocol (``/v1/stream``), version 1.

Client → server: one JSON ``session.start``, then binary frames of raw PCM
(s16le mono at the announced rate), then JSON ``session.end``.
Server → client: JSON events, each with a ``type``; events about a chunk carry
``chunk`` (0-based index) and ``start``/``end`` (seconds of audio from the start
of the stream). Every stream ends with ``session.summary`` and a close.

The JSON schema in ``docs/protocol.md`` is generated from these models
(``python -m server.schema``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from kernel.errors import ErrorCode, RasstError
from server.sinks.models import SinkSpec

PROTOCOL_VERSION = 1
SUPPORTED_SAMPLE_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
SUPPORTED_ENCODINGS = ("pcm_s16le",)
LANGUAGE_CODE = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Client integers are strict: "2", 2.0 and true are refused, not coerced (the schema says
# integer, and a lax server would teach clients to send what stricter ones refuse).
StrictInt = Annotated[int, Field(strict=True)]


def _unicode_scalars(value: str) -> str:
    # JSON may escape a lone surrogate ("\\ud800"); such a string cannot be encoded, stored,
    # hashed or echoed back, so it is refused here, naming the field.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must not contain lone surrogates (\\ud800-\\udfff)") from None
    return value


# Free-form client strings (those without an ASCII pattern).
Text = Annotated[str, AfterValidator(_unicode_scalars)]


# -- client -> server ----------------------------------------------------------


class AudioFormat(_Model):
    encoding: Text = Field(
        default="pcm_s16le", description="Only pcm_s16le (16-bit little-endian)."
    )
    sample_rate: StrictInt = Field(default=16000, description=f"One of {SUPPORTED_SAMPLE_RATES}.")
    channels: StrictInt = Field(
        default=1, description="1 (mono) or 2 (interleaved stereo, mixed down to mono)."
    )


class SessionStart(_Model):
    """First message of every stream."""

    type: Literal["session.start"]
    protocol_version: StrictInt = PROTOCOL_VERSION
    source_language: str = Field(default="en", pattern=LANGUAGE_CODE)
    target_languages: list[Annotated[str, Field(pattern=LANGUAGE_CODE)]] = Field(
        default_factory=list,
        max_length=5,
        description="Languages to translate into; terms are reported with their translations "
        "into these. Empty: source captions only.",
    )
    glossary_ids: list[Annotated[Text, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=16
    )
    lm: StrictInt = Field(default=2, ge=1, le=4, description="Chunk size = 0.96 s × lm.")
    term_memory: Literal["auto"] | None = Field(
        default=None,
        description='"auto": search the tenant\'s whole term memory (besides glossary_ids); '
        "base slices report terms from the start, domain slices once the router switches "
        "them on from what was said (term_memory.routed events); until one is on, the domains "
        "leading the evidence report too.",
    )
    audio: AudioFormat = Field(default_factory=AudioFormat)
    api_key: Text | None = Field(
        default=None, description="For clients that cannot set an Authorization header."
    )
    client: Text | None = Field(default=None, max_length=200, description="Free-form client name.")
    sinks: list[SinkSpec] = Field(
        default_factory=list,
        max_length=4,
        description="Caption destinations (Zoom, YouTube Live, webhook) fed while the session "
        "runs; a failing one sends a sink_failed warning and never slows the session "
        "(docs/integrations.md).",
    )


class SessionEnd(_Model):
    """No more audio: the server flushes, sends ``session.summary`` and closes."""

    type: Literal["session.end"]


class SessionResume(_Model):
    """First message of a new connection that continues a dropped session."""

    type: Literal["session.resume"]
    protocol_version: StrictInt = PROTOCOL_VERSION
    resume_token: Text = Field(min_length=1, max_length=128, description="From session.started.")
    last_seq: StrictInt = Field(
        default=0,
        ge=0,
        description="`seq` of the last event the client received; later events are replayed.",
    )
    api_key: Text | None = Field(default=None, description="As in session.start.")


ClientMessage = Annotated[SessionStart | SessionEnd | SessionResume, Field(discriminator="type")]
_CLIENT_ADAPTER: TypeAdapter[SessionStart | SessionEnd | SessionResume] = TypeAdapter(ClientMessage)
CLIENT_MESSAGE_TYPES = frozenset({"session.start", "session.end", "session.resume"})


def parse_client_message(text: str) -> SessionStart | SessionEnd | SessionResume:
    """Parse one text frame; raises RasstError with a stable code."""
    try:
        raw = json.loads(text)
    except RecursionError:
        raise RasstError(ErrorCode.BAD_MESSAGE, "text frame is nested too deeply") from None
    except ValueError as exc:
        raise RasstError(ErrorCode.BAD_MESSAGE, f"text frame is not JSON: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        raise RasstError(ErrorCode.BAD_MESSAGE, "a message must be a JSON object with a 'type'")
    if raw["type"] not in CLIENT_MESSAGE_TYPES:
        raise RasstError(
            ErrorCode.UNKNOWN_EVENT,
            f"unknown message type {raw['type'][:64]!r}; expected one of "
            f"{sorted(CLIENT_MESSAGE_TYPES)}",
        )
    try:
        return _CLIENT_ADAPTER.validate_python(raw)
    except ValidationError as exc:
        problems = [
            # The first location element is the discriminator tag: leave it out.
            {"loc": ".".join(str(p) for p in err["loc"][1:]), "msg": err["msg"]}
            for err in exc.errors(include_url=False, include_input=False)
        ]
        first = problems[0]
        raise RasstError(
            ErrorCode.BAD_MESSAGE,
            f"invalid {raw['type']} message: {first['loc'] or '(message)'}: {first['msg']}",
            detail=problems,
        ) from None


# -- server -> client ----------------------------------------------------------


class _Event(_Model):
    seq: int = Field(
        default=0,
        ge=0,
        description="1, 2, 3 … per session, across resumed connections; resume with the "
        "last one received.",
    )


class _ChunkEvent(_Event):
    chunk: int = Field(ge=0, description="0-based chunk index.")
    start: float = Field(description="Audio seconds from stream start.")
    end: float


class GlossaryInUse(_Model):
    id: str
    version: int
    entries: int


class GlossarySearchable(GlossaryInUse):
    """A glossary in use, with whether its index is built (after glossary_indexing warnings)."""

    searchable: bool = Field(
        description="False while the glossary's index is still being built; true once terms "
        "come from it."
    )


class SessionLimits(_Model):
    max_pace: float
    max_frame_bytes: int
    idle_timeout_seconds: float
    max_session_seconds: float
    resume_grace_seconds: float = Field(
        description="How long a dropped session waits for session.resume; 0: not resumable."
    )


class SessionStarted(_Event):
    type: Literal["session.started"] = "session.started"
    protocol_version: int = PROTOCOL_VERSION
    session_id: str
    mode: Literal["captions", "translation"]
    viewer_token: str | None = Field(
        default=None,
        description="Read-only access to this session's events for audience viewers "
        "(share the viewer link, not the API key).",
    )
    resume_token: str | None = Field(
        default=None,
        description="Secret for session.resume after a dropped connection (keep it like an "
        "API key); null when sessions are not resumable.",
    )
    source_language: str
    target_languages: list[str]
    lm: int
    chunk_seconds: float
    input_sample_rate: int
    sample_rate: int = Field(description="Rate the server processes at (audio is resampled).")
    glossaries: list[GlossaryInUse]
    limits: SessionLimits


class Word(_Model):
    word: str
    start: float
    end: float


class Caption(_ChunkEvent):
    """Source-language caption of the current utterance.

    ``final: false`` captions are revised by later ones with the same
    ``utterance``; ``final: true`` closes it. ``start``/``end`` span the utterance;
    ``chunk`` is the chunk being processed when it was produced. Both kinds carry
    word times.
    """

    type: Literal["caption"] = "caption"
    utterance: int
    text: str
    final: bool
    words: list[Word] = Field(default_factory=list)
    stable_words: int | None = Field(
        default=None,
        description=(
            "Revisable captions: how many leading words two successive decodes agreed on "
            "(LocalAgreement); later revisions rarely change them. Absent on final captions."
        ),
    )


class TermOut(_Model):
    source: str
    targets: dict[str, str] = Field(description="Translation per session target language.")
    score: float
    start: float
    end: float
    glossary_id: str


class Terms(_ChunkEvent):
    type: Literal["terms"] = "terms"
    terms: list[TermOut]
    retrieval_ms: float


class TranslationDeltaEvent(_ChunkEvent):
    type: Literal["translation.delta"] = "translation.delta"
    first_chunk: int = Field(
        description="First chunk this translation covers; below `chunk` when the server "
        "merged queued chunks into one LLM turn to catch up."
    )
    lang: str
    delta: str = Field(description="New text since the previous delta.")
    text: str = Field(description="Whole revisable text of this chunk so far.")


class TranslationCommitEvent(_ChunkEvent):
    type: Literal["translation.commit"] = "translation.commit"
    first_chunk: int = Field(description="First chunk this translation covers (see delta).")
    lang: str
    text: str = Field(description="Final translation of this chunk, term tags removed.")
    terms_used: list[str]
    terms_missed: list[str] = Field(
        default_factory=list,
        description="Text tier only (--llm-mode text): retrieved terms whose source form is in "
        "the translated caption words but whose glossary rendering is not in `text` (after the "
        "optional repair). Always empty in the speech tier, which has no source words to check.",
    )


class ChunkDone(_ChunkEvent):
    """Every stage has finished with the chunk."""

    type: Literal["chunk.done"] = "chunk.done"
    speech_seconds: float
    processing_ms: float = Field(description="Wall time from processing start to this event.")
    latency_ms: float = Field(description="Wall time from the chunk's last sample to this event.")
    lag_seconds: float = Field(
        description="Audio received but not yet processed: how far the server is behind."
    )


class SessionResumed(_Event):
    """Answer to session.resume: the events after ``last_seq`` follow, then live ones."""

    type: Literal["session.resumed"] = "session.resumed"
    session_id: str
    replayed: int = Field(description="Events re-sent after this one (seq > last_seq).")
    missed: int = Field(
        description="Events after last_seq that are no longer kept (the client was away "
        "longer than the server's event buffer covers); normally 0."
    )
    audio_received_samples: int = Field(
        description="Audio the server has, in samples at the session's input rate: "
        "send the rest of the stream from this offset."
    )
    audio_received_seconds: float
    input_ended: bool = Field(
        description="The server has the stream's session.end: send no more audio."
    )


class Warning_(_Event):
    type: Literal["warning"] = "warning"
    code: str
    message: str
    chunk: int | None = None
    glossary_id: str | None = Field(
        default=None, description="glossary_indexing: the glossary that is not searchable yet."
    )
    progress: float | None = Field(
        default=None, ge=0.0, le=1.0, description="glossary_indexing: how far its index is, 0…1."
    )


class GlossaryUpdated(_Event):
    """A glossary in use changed; terms of later chunks come from these versions."""

    type: Literal["glossary.updated"] = "glossary.updated"
    glossaries: Sequence[GlossarySearchable | GlossaryInUse]


class TermMemoryRouted(_Event):
    """An automatic session's router switched domain slices of the term memory on or off."""

    type: Literal["term_memory.routed"] = "term_memory.routed"
    chunk: int = Field(description="Decided after this chunk; applies from the next one.")
    active: list[str] = Field(description="Domains switched on now (base slices always are).")
    switched_on: list[str]
    switched_off: list[str]
    evidence: dict[str, float] = Field(
        description="Per domain: distinct terms heard in the router's horizon (shared terms "
        "split among the domains holding them)."
    )
    confidence: float = Field(ge=0.0, le=1.0, description="The leading domain's share.")
    glossaries: list[str] = Field(description="Glossaries whose terms are reported now.")


class Error(_Event):
    type: Literal["error"] = "error"
    code: ErrorCode
    message: str
    fatal: bool = Field(description="True when the server closes the stream after this event.")
    chunk: int | None = None
    detail: Any = None


class LatencyStats(_Model):
    p50: float
    p95: float
    max: float


class SessionSummary(_Event):
    type: Literal["session.summary"] = "session.summary"
    session_id: str
    reason: Literal["completed", "error", "disconnected", "shutdown"]
    chunks: int
    audio_seconds: float
    speech_seconds: float
    captions: int = Field(description="Final captions (utterances).")
    term_hits: int
    commits: int
    warnings: int
    errors: int
    latency_ms: LatencyStats = Field(description="chunk.done latency over the session.")
    max_lag_seconds: float
    wall_seconds: float


ServerEvent = Annotated[
    SessionStarted
    | SessionResumed
    | Caption
    | Terms
    | TranslationDeltaEvent
    | TranslationCommitEvent
    | ChunkDone
    | Warning_
    | GlossaryUpdated
    | TermMemoryRouted
    | Error
    | SessionSummary,
    Field(discriminator="type"),
]
SERVER_EVENT_ADAPTER: TypeAdapter[Any] = TypeAdapter(ServerEvent)
