"""The project's error vocabulary: stable codes, one exception type, one envelope.

Every failure that reaches a client — an HTTP response or an in-band WebSocket
``error`` event — is built from an :class:`ErrorCode` by :func:`error_body`, so
clients can switch on ``code`` and never parse messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel


class ErrorCode(StrEnum):
    # Protocol: the client sent something we cannot accept.
    BAD_MESSAGE = "bad_message"
    UNKNOWN_EVENT = "unknown_event"
    NOT_STARTED = "not_started"
    ALREADY_STARTED = "already_started"
    BAD_AUDIO_FRAME = "bad_audio_frame"
    UNSUPPORTED_SAMPLE_RATE = "unsupported_sample_rate"
    UNSUPPORTED_ENCODING = "unsupported_encoding"
    UNSUPPORTED_LANGUAGE = "unsupported_language"
    FRAME_TOO_LARGE = "frame_too_large"
    PACE_EXCEEDED = "pace_exceeded"
    IDLE_TIMEOUT = "idle_timeout"
    SESSION_TOO_LONG = "session_too_long"
    BACKLOG_EXCEEDED = "backlog_exceeded"
    CLIENT_TOO_SLOW = "client_too_slow"
    RESUME_FAILED = "resume_failed"
    # Capacity and lifecycle.
    SERVER_BUSY = "server_busy"
    SHUTTING_DOWN = "shutting_down"
    # Auth and tenancy.
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    RATE_LIMITED = "rate_limited"
    # Resources.
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    BAD_REQUEST = "bad_request"
    GLOSSARY_NOT_FOUND = "glossary_not_found"
    CONFLICT = "conflict"
    PRECONDITION_FAILED = "precondition_failed"
    VALIDATION_FAILED = "validation_failed"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNSUPPORTED_FORMAT = "unsupported_format"
    LIMIT_EXCEEDED = "limit_exceeded"
    # Backends (usually warnings: the session degrades and recovers).
    RETRIEVER_UNAVAILABLE = "retriever_unavailable"
    # A session's glossary is not searchable yet (its index is being built).
    GLOSSARY_INDEXING = "glossary_indexing"
    LLM_UNAVAILABLE = "llm_unavailable"
    SPEECH_FRONTEND_FAILED = "speech_frontend_failed"
    # The glossary database cannot be reached (REST: 503; retry shortly).
    STORE_UNAVAILABLE = "store_unavailable"
    # Several replicas: the shared event bus (Redis) is down; sessions go on.
    BUS_UNAVAILABLE = "bus_unavailable"
    LAGGING = "lagging"
    # A caption sink (Zoom, YouTube, webhook) refused or failed a delivery: a warning only.
    SINK_FAILED = "sink_failed"
    INTERNAL_ERROR = "internal_error"


@dataclass(frozen=True, slots=True)
class _CodeInfo:
    http_status: int
    # WebSocket close code used when the error ends the session.
    ws_close: int


_INFO: dict[ErrorCode, _CodeInfo] = {
    ErrorCode.BAD_MESSAGE: _CodeInfo(400, 1007),
    ErrorCode.UNKNOWN_EVENT: _CodeInfo(400, 1008),
    ErrorCode.NOT_STARTED: _CodeInfo(400, 1008),
    ErrorCode.ALREADY_STARTED: _CodeInfo(409, 1008),
    ErrorCode.BAD_AUDIO_FRAME: _CodeInfo(400, 1007),
    ErrorCode.UNSUPPORTED_SAMPLE_RATE: _CodeInfo(400, 1003),
    ErrorCode.UNSUPPORTED_ENCODING: _CodeInfo(400, 1003),
    ErrorCode.UNSUPPORTED_LANGUAGE: _CodeInfo(400, 1003),
    ErrorCode.FRAME_TOO_LARGE: _CodeInfo(413, 1009),
    ErrorCode.PACE_EXCEEDED: _CodeInfo(429, 1008),
    ErrorCode.IDLE_TIMEOUT: _CodeInfo(408, 1001),
    ErrorCode.SESSION_TOO_LONG: _CodeInfo(400, 1008),
    ErrorCode.BACKLOG_EXCEEDED: _CodeInfo(503, 1013),
    ErrorCode.CLIENT_TOO_SLOW: _CodeInfo(400, 1008),
    ErrorCode.RESUME_FAILED: _CodeInfo(404, 1008),
    ErrorCode.SERVER_BUSY: _CodeInfo(503, 1013),
    ErrorCode.SHUTTING_DOWN: _CodeInfo(503, 1012),
    ErrorCode.UNAUTHORIZED: _CodeInfo(401, 1008),
    ErrorCode.FORBIDDEN: _CodeInfo(403, 1008),
    ErrorCode.RATE_LIMITED: _CodeInfo(429, 1008),
    ErrorCode.NOT_FOUND: _CodeInfo(404, 1008),
    ErrorCode.METHOD_NOT_ALLOWED: _CodeInfo(405, 1008),
    ErrorCode.BAD_REQUEST: _CodeInfo(400, 1008),
    ErrorCode.GLOSSARY_NOT_FOUND: _CodeInfo(404, 1008),
    ErrorCode.CONFLICT: _CodeInfo(409, 1008),
    ErrorCode.PRECONDITION_FAILED: _CodeInfo(412, 1008),
    ErrorCode.VALIDATION_FAILED: _CodeInfo(422, 1008),
    ErrorCode.PAYLOAD_TOO_LARGE: _CodeInfo(413, 1009),
    ErrorCode.UNSUPPORTED_FORMAT: _CodeInfo(415, 1003),
    ErrorCode.LIMIT_EXCEEDED: _CodeInfo(422, 1008),
    ErrorCode.RETRIEVER_UNAVAILABLE: _CodeInfo(503, 1011),
    ErrorCode.GLOSSARY_INDEXING: _CodeInfo(503, 1013),
    ErrorCode.LLM_UNAVAILABLE: _CodeInfo(503, 1011),
    ErrorCode.SPEECH_FRONTEND_FAILED: _CodeInfo(500, 1011),
    ErrorCode.STORE_UNAVAILABLE: _CodeInfo(503, 1013),
    ErrorCode.BUS_UNAVAILABLE: _CodeInfo(503, 1013),
    ErrorCode.LAGGING: _CodeInfo(503, 1013),
    ErrorCode.SINK_FAILED: _CodeInfo(502, 1011),
    ErrorCode.INTERNAL_ERROR: _CodeInfo(500, 1011),
}


def http_status(code: ErrorCode) -> int:
    return _INFO[code].http_status


def ws_close_code(code: ErrorCode) -> int:
    return _INFO[code].ws_close


class RasstError(Exception):
    """A failure with a stable code, safe to show to the client.

    ``detail`` carries structured data (an import report, the offending
    field); it must never hold secrets or stack traces.
    """

    def __init__(self, code: ErrorCode, message: str, *, detail: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.detail = detail

    @property
    def http_status(self) -> int:
        return http_status(self.code)


class ErrorInfo(BaseModel):
    code: str
    message: str
    detail: Any = None


class ErrorEnvelope(BaseModel):
    """The HTTP error envelope, as documented in the OpenAPI responses."""

    error: ErrorInfo


def error_body(code: ErrorCode, message: str, detail: Any = None) -> dict[str, Any]:
    """The HTTP error envelope: ``{"error": {"code", "message", "detail"}}``."""
    return ErrorEnvelope(
        error=ErrorInfo(code=str(code), message=message, detail=detail)
    ).model_dump()
