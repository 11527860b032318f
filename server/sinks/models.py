"""What a client asks for: one sink (``sinks`` in ``session.start`` or the REST call)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

SinkKind = Literal["zoom", "youtube", "webhook"]


class SinkSpec(BaseModel):
    """A destination for the session's captions (docs/integrations.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: SinkKind = Field(description="zoom, youtube or webhook.")
    url: str = Field(
        min_length=8,
        max_length=2048,
        description="Zoom's caption URL (API token), YouTube's caption ingestion URL, or the "
        "webhook's URL. It holds credentials: it is never echoed back in full.",
    )
    lang: str | None = Field(
        default=None,
        pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$",
        description="Caption language: the source (default) or one of the session's target "
        "languages (its committed translations).",
    )
    secret: str | None = Field(
        default=None,
        max_length=256,
        description="Webhook only: signs each body as X-RASST-Signature: sha256=HMAC.",
    )

    @field_validator("url")
    @classmethod
    def _http_only(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value


class SinkStatus(BaseModel):
    id: str
    kind: SinkKind
    lang: str | None
    target: str = Field(description="The destination's host (the URL's credentials hidden).")
    delivered: int
    failed: int
    active: bool
    last_error: str | None = None
