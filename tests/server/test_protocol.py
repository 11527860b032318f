from __future__ import annotations

import json

import pytest

from kernel.errors import ErrorCode, RasstError
from server.protocol import (
    SERVER_EVENT_ADAPTER,
    SessionEnd,
    SessionStart,
    parse_client_message,
)


def test_valid_start_message_with_defaults() -> None:
    msg = parse_client_message(json.dumps({"type": "session.start", "target_languages": ["de"]}))
    assert isinstance(msg, SessionStart)
    assert msg.lm == 2 and msg.audio.sample_rate == 16000 and msg.source_language == "en"


def test_end_message() -> None:
    assert isinstance(parse_client_message('{"type": "session.end"}'), SessionEnd)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("not json", ErrorCode.BAD_MESSAGE),
        ("[1, 2]", ErrorCode.BAD_MESSAGE),
        ('{"no_type": 1}', ErrorCode.BAD_MESSAGE),
        ('{"type": 7}', ErrorCode.BAD_MESSAGE),
        ('{"type": "input_audio_buffer.append"}', ErrorCode.UNKNOWN_EVENT),
        ('{"type": "session.start", "lm": 9}', ErrorCode.BAD_MESSAGE),
        ('{"type": "session.start", "target_languages": ["Deutsch!"]}', ErrorCode.BAD_MESSAGE),
        ('{"type": "session.start", "surprise": true}', ErrorCode.BAD_MESSAGE),
    ],
)
def test_bad_messages_have_stable_codes(text: str, code: ErrorCode) -> None:
    with pytest.raises(RasstError) as exc:
        parse_client_message(text)
    assert exc.value.code == code


def test_invalid_field_is_named_in_the_detail() -> None:
    with pytest.raises(RasstError) as exc:
        parse_client_message('{"type": "session.start", "lm": 0}')
    assert exc.value.detail[0]["loc"] == "lm"


def test_every_server_event_type_is_in_the_union() -> None:
    schema = SERVER_EVENT_ADAPTER.json_schema()
    types = {
        v["properties"]["type"]["const"]
        for v in schema["$defs"].values()
        if "type" in v.get("properties", {}) and "const" in v["properties"]["type"]
    }
    assert types == {
        "session.started",
        "caption",
        "terms",
        "translation.delta",
        "translation.commit",
        "chunk.done",
        "warning",
        "glossary.updated",
        "term_memory.routed",
        "error",
        "session.summary",
        "session.resumed",
    }


def test_protocol_doc_schema_is_generated_from_the_models() -> None:
    from server.schema import DOC, render

    document = DOC.read_text(encoding="utf-8")
    assert render(document) == document, "docs/protocol.md is stale: run python -m server.schema"
