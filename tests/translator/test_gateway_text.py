"""End to end: the real gateway with ``--llm-mode text`` over a real WebSocket,
translating its own Whisper captions with a real vLLM (tiny random Qwen3 text
model on the CPU) and a real glossary.

Assert on protocol, coverage and the terminology check, never on the random
model's words.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from server.client import RasstStream, StreamOptions, send_paced
from tests.server.test_retrieval_e2e import PHRASES, RATE, SPEECH, upload
from tests.support.live_server import LiveServer, start_server
from tests.support.vllm_server import VllmServer

pytestmark = [pytest.mark.vllm, pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture
def text_gateway(vllm_text: VllmServer, tmp_path: Path) -> Iterator[LiveServer]:
    server = start_server(
        tmp_path,
        "--llm-url",
        vllm_text.url,
        "--llm-mode",
        "text",
        "--max-pace",
        "8",
        ready_timeout=120,
    )
    try:
        yield server
    finally:
        server.stop()


async def test_a_text_tier_session_translates_its_captions_with_the_glossary(
    text_gateway: LiveServer,
) -> None:
    glossary_id = upload(text_gateway)
    options = StreamOptions(target_languages=["de"], glossary_ids=[glossary_id], lm=2)
    events: list[dict[str, Any]] = []
    async with asyncio.timeout(600), RasstStream(text_gateway.ws_url, options) as session:
        started = session.started
        sender = asyncio.create_task(send_paced(session, SPEECH, RATE, speed=4.0))
        async for event in session.events():
            events.append(event)
        await sender

    assert started is not None and started["mode"] == "translation"
    assert events[-1]["type"] == "session.summary" and events[-1]["reason"] == "completed"
    assert not [e for e in events if e["type"] == "error"]
    assert not [e for e in events if e["type"] == "warning" and e["code"] != "lagging"]

    done = [e["chunk"] for e in events if e["type"] == "chunk.done"]
    assert done == sorted(done) and len(done) >= 20
    commits = [e for e in events if e["type"] == "translation.commit"]
    covered = Counter(chunk for e in commits for chunk in range(e["first_chunk"], e["chunk"] + 1))
    assert set(covered) == set(done) and set(covered.values()) == {1}, (
        "one commit per chunk, silent chunks and waiting chunks included"
    )
    translated = [e for e in commits if e["text"]]
    captions = [e for e in events if e["type"] == "caption" and e["final"]]
    assert captions, "the speech front end captioned the talk"
    # The policy sends words at utterance and clause ends: fewer turns than chunks,
    # yet every final caption's words were sent (the last chunk flushes the rest).
    assert 0 < len(translated) <= len(done)
    deltas = {e["chunk"] for e in events if e["type"] == "translation.delta"}
    assert {e["chunk"] for e in translated} <= deltas, "every translation streamed first"
    # The random model renders no glossary term: the check reports terms said but missed.
    missed = {term for e in commits for term in e["terms_missed"]}
    assert missed, "glossary phrases were said, sent in the term_map, and checked"
    assert missed <= set(PHRASES)
    heard = {t["source"] for e in events if e["type"] == "terms" for t in e["terms"]}
    assert missed <= heard, "only retrieved terms are checked"
