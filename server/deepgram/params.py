"""The ``/v1/listen`` query parameters: Deepgram's, plus RASST's documented extensions.

Deepgram parameters that change what a RASST session does are honoured (``language``,
``encoding``, ``sample_rate``, ``channels``, ``interim_results``, ``utterance_end_ms``);
the others (``model``, ``punctuate``, ``smart_format``, ``endpointing`` …) are accepted
and ignored, so existing clients connect unchanged. Extensions: ``target_language``
(repeatable) asks for translations, ``glossary`` (repeatable) for term retrieval, ``lm``
for the chunk size.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kernel.errors import ErrorCode, RasstError

# Deepgram's names for raw 16-bit little-endian PCM (the only encoding RASST takes).
_PCM16 = {"linear16"}
_TRUE = {"true", "1", "yes"}


class ListenParams(BaseModel):
    model_config = ConfigDict(frozen=True)

    model: str = "rasst"
    language: str = "en"
    encoding: str = "linear16"
    sample_rate: int = 16000
    channels: int = 1
    interim_results: bool = False
    utterance_end_ms: int | None = Field(default=None, ge=0)
    target_languages: list[str] = Field(default_factory=list)
    glossary_ids: list[str] = Field(default_factory=list)
    lm: int = 2


def parse_listen_params(items: list[tuple[str, str]]) -> ListenParams:
    """Query items (repeated keys kept) → params; raises RasstError on bad values."""
    single: dict[str, Any] = {}
    targets: list[str] = []
    glossaries: list[str] = []
    for key, value in items:
        if key == "target_language":
            targets.extend(v for v in value.split(",") if v)
        elif key == "glossary":
            glossaries.extend(v for v in value.split(",") if v)
        elif key in ("interim_results",):
            single[key] = value.lower() in _TRUE
        elif key in ListenParams.model_fields:
            single[key] = value
    if single.get("utterance_end_ms") in ("", "false"):
        single.pop("utterance_end_ms")
    try:
        params = ListenParams(**single, target_languages=targets, glossary_ids=glossaries)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise RasstError(
            ErrorCode.BAD_MESSAGE,
            f"query parameter {first['loc'][0]}: {first['msg']}",
        ) from None
    if params.encoding.lower() not in _PCM16:
        raise RasstError(
            ErrorCode.UNSUPPORTED_ENCODING,
            f"encoding {params.encoding[:32]!r} is not supported; send raw 16-bit PCM "
            "with encoding=linear16 and sample_rate",
        )
    return params


def session_start(params: ListenParams, api_key: str | None) -> dict[str, Any]:
    """The ``session.start`` message of the bridged session."""
    # Deepgram takes BCP-47 tags (en-US); RASST's speech front end is per base language.
    language = params.language.split("-")[0].lower() or "en"
    return {
        "type": "session.start",
        "source_language": language,
        "target_languages": params.target_languages,
        "glossary_ids": params.glossary_ids,
        "lm": params.lm,
        "audio": {
            "encoding": "pcm_s16le",
            "sample_rate": params.sample_rate,
            "channels": params.channels,
        },
        "api_key": api_key,
        "client": "deepgram-compatible",
    }
