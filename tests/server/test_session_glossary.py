"""Glossaries in live sessions over the real gateway: tenancy, auth and live updates."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest
from websockets.asyncio.client import connect

from server.client import read_wav
from tests.support.live_server import TWO_CITIES, LiveServer, start_server
from tests.support.ws import END, Transcript, exchange, read_all, start_message

ADMIN = "test-admin-key"
SPEECH = read_wav(TWO_CITIES)[1]
GLOSSARY_CSV = "en,de\nage of wisdom,Zeitalter der Weisheit\nseason of light,Zeit des Lichts\n"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(
        tmp_path_factory.mktemp("secured"),
        "--max-pace",
        "8",
        env={"RASST_AUTH_ENABLED": "true", "RASST_ADMIN_KEY": ADMIN},
    )
    yield server
    server.stop()


def _tenant_key(server: LiveServer, name: str) -> str:
    response = httpx.post(
        f"{server.http_url}/v1/tenants",
        json={"name": name},
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["api_key"]["api_key"])


def _upload(server: LiveServer, key: str) -> str:
    response = httpx.post(
        f"{server.http_url}/v1/glossaries",
        files={"file": ("terms.csv", GLOSSARY_CSV, "text/csv")},
        data={"name": "two cities"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_session_uses_own_glossary_and_never_another_tenants(secured: LiveServer) -> None:
    key_a, key_b = _tenant_key(secured, "a"), _tenant_key(secured, "b")
    glossary_id = _upload(secured, key_a)
    audio = SPEECH[:16000].tobytes()

    mine = await exchange(
        secured.ws_url, start_message(api_key=key_a, glossary_ids=[glossary_id]), audio, END
    )
    started = mine.events[0]
    assert started["type"] == "session.started"
    assert started["glossaries"] == [{"id": glossary_id, "version": 1, "entries": 2}]
    assert mine.events[-1]["reason"] == "completed"

    theirs = await exchange(
        secured.ws_url, start_message(api_key=key_b, glossary_ids=[glossary_id]), audio, END
    )
    assert theirs.error_codes() == ["glossary_not_found"]
    assert theirs.close_code == 1008


async def test_api_key_in_header_works_and_missing_key_is_refused(secured: LiveServer) -> None:
    key = _tenant_key(secured, "c")
    async with connect(secured.ws_url, additional_headers={"Authorization": f"Bearer {key}"}) as ws:
        await ws.send(start_message())
        assert json.loads(await ws.recv())["type"] == "session.started"
    for start in (start_message(), start_message(api_key="rasst_not_a_real_key")):
        refused = await exchange(secured.ws_url, start)
        assert refused.error_codes() == ["unauthorized"]
        assert refused.events[-1]["type"] == "session.summary"
        assert refused.close_code == 1008


async def test_glossary_change_reaches_a_live_session_within_seconds(secured: LiveServer) -> None:
    key = _tenant_key(secured, "live")
    glossary_id = _upload(secured, key)
    transcript = Transcript()
    async with connect(secured.ws_url) as ws:
        await ws.send(start_message(api_key=key, glossary_ids=[glossary_id], lm=1))
        reader = asyncio.create_task(read_all(ws, transcript, within=120))
        for i in range(0, 16000 * 8, 1600):
            await ws.send(SPEECH[i : i + 1600].tobytes())
            await asyncio.sleep(0.1)
            if i == 16000 * 2:
                # Events seen before the change was requested: the update may overtake the
                # PATCH response, since the session hears of it in-process.
                before_patch = len(transcript.events)
                async with httpx.AsyncClient(timeout=10) as http:
                    patched = await http.patch(
                        f"{secured.http_url}/v1/glossaries/{glossary_id}",
                        json={
                            "add": [
                                {
                                    "source": "spring of hope",
                                    "targets": {"de": ["Frühling der Hoffnung"]},
                                }
                            ]
                        },
                        headers={"Authorization": f"Bearer {key}"},
                    )
                assert patched.status_code == 200, patched.text
        await ws.send(END)
        await reader
    updates = transcript.of_type("glossary.updated")
    assert updates and updates[0]["glossaries"] == [{"id": glossary_id, "version": 2, "entries": 3}]
    # It arrived while audio was still streaming, and processing never paused.
    update_position = transcript.events.index(updates[0])
    done_after = [e for e in transcript.events[update_position:] if e["type"] == "chunk.done"]
    assert len(done_after) >= 2
    assert update_position >= before_patch
    assert transcript.events[-1]["reason"] == "completed"
    assert max(e["lag_seconds"] for e in transcript.of_type("chunk.done")) < 3.0
