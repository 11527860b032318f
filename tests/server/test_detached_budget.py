"""Dropped sessions cannot lock normal clients out (issue 22, item 6).

A session whose connection drops without ``session.end`` waits for ``session.resume`` and
keeps its slot. Such sessions have their own budget per caller (API key, else client
address) and per tenant; the oldest is evicted past a budget, and before a new session is
refused with ``server_busy``. Real gateways, real TCP drops (``transport.abort()``).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.support.live_server import LiveServer, start_server
from tests.support.ws import END, Transcript, read_all, start_message

SILENCE = b"\x00\x00" * 3200
ENV = {"RASST_CAPTIONS": "false", "RASST_SPEECH_WORKERS": "1", "RASST_RESUME_GRACE_SECONDS": "120"}


@pytest.fixture(scope="module")
def budgets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(
        tmp_path_factory.mktemp("budgets"),
        env={
            **ENV,
            "RASST_MAX_SESSIONS": "8",
            "RASST_MAX_DETACHED_SESSIONS_PER_CALLER": "2",
            "RASST_MAX_DETACHED_SESSIONS_PER_TENANT": "4",
        },
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(
        tmp_path_factory.mktemp("full"),
        env={
            **ENV,
            "RASST_MAX_SESSIONS": "3",
            "RASST_MAX_DETACHED_SESSIONS_PER_CALLER": "0",
            "RASST_MAX_DETACHED_SESSIONS_PER_TENANT": "0",
        },
    )
    yield server
    server.stop()


async def _drop(server: LiveServer, key: str | None = None) -> str:
    """Start a session, send a little audio, then vanish without a close handshake."""
    fields = {"api_key": key} if key else {}
    async with connect(server.ws_url) as ws:
        await ws.send(start_message(**fields))
        started = json.loads(await ws.recv())
        assert started["type"] == "session.started", started
        await ws.send(SILENCE)
        ws.transport.abort()
    return started["resume_token"]


async def _metric(server: LiveServer, name: str) -> float:
    async with httpx.AsyncClient(timeout=5) as http:
        text = (await http.get(f"{server.http_url}/metrics")).text
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def _detached_becomes(server: LiveServer, expected: int) -> float:
    """The gauge once the server has noticed the drops (it sees the RST at once)."""
    value = -1.0
    for _ in range(50):
        value = await _metric(server, "rasst_sessions_detached")
        if value == expected:
            break
        await asyncio.sleep(0.1)
    return value


async def _resume_and_end(server: LiveServer, token: str, key: str | None = None) -> Transcript:
    message = {"type": "session.resume", "resume_token": token, "last_seq": 0}
    if key:
        message["api_key"] = key
    transcript = Transcript()
    async with connect(server.ws_url) as ws:
        await ws.send(json.dumps(message))
        first = json.loads(await ws.recv())
        transcript.events.append(first)
        if first["type"] == "session.resumed":
            await ws.send(END)
        return await read_all(ws, transcript, within=30)


async def _live(server: LiveServer, key: str) -> tuple[Transcript, object]:
    """A live session (started, not ended): the transcript so far and its connection."""
    ws = await connect(server.ws_url)
    await ws.send(start_message(api_key=key))
    transcript = Transcript(events=[json.loads(await ws.recv())])
    return transcript, ws


async def test_one_caller_dropping_sessions_cannot_hold_the_slots(budgets: LiveServer) -> None:
    # One anonymous client drops 5 sessions: only its 2 newest wait for a resume.
    anonymous = [await _drop(budgets) for _ in range(5)]
    assert await _detached_becomes(budgets, 2) == 2
    assert await _metric(budgets, 'rasst_detached_evictions_total{budget="caller"}') == 3
    # Three more callers (keys) of the same tenant drop one each: the tenant budget (4)
    # evicts the oldest of the tenant's, an anonymous one.
    keyed = [await _drop(budgets, f"key-{i}") for i in range(3)]
    assert await _detached_becomes(budgets, 4) == 4
    assert await _metric(budgets, 'rasst_detached_evictions_total{budget="tenant"}') == 1
    async with httpx.AsyncClient(timeout=5) as http:
        assert (await http.get(f"{budgets.http_url}/readyz")).json()["sessions"] == 4
    # Evicted sessions are gone; the ones kept still resume and complete.
    for token in anonymous[:4]:
        gone = await _resume_and_end(budgets, token)
        assert gone.error_codes() == ["resume_failed"], gone.events
    kept = await _resume_and_end(budgets, anonymous[4])
    assert kept.events[0]["type"] == "session.resumed"
    assert kept.events[-1]["type"] == "session.summary"
    assert kept.events[-1]["reason"] == "completed"
    resumed = await _resume_and_end(budgets, keyed[2], "key-2")
    assert resumed.events[-1]["reason"] == "completed"
    # Other clients are served: 6 live sessions fit beside the 2 dropped ones left.
    lives = [await _live(budgets, f"other-{i}") for i in range(6)]
    try:
        assert all(t.events[0]["type"] == "session.started" for t, _ in lives), lives
        assert await _metric(budgets, 'rasst_session_disconnects_total{outcome="evicted"}') == 4
    finally:
        for _, ws in lives:
            await ws.close()  # type: ignore[attr-defined]
    # Closing without session.end is a drop too: the tenant budget keeps 4 of the 8.
    assert await _detached_becomes(budgets, 4) == 4


async def test_oldest_dropped_session_is_evicted_before_server_busy(full: LiveServer) -> None:
    tokens = [await _drop(full, key) for key in ("a", "b", "c")]
    assert await _detached_becomes(full, 3) == 3
    # Full of dropped sessions: a new one evicts the oldest instead of server_busy.
    d, ws_d = await _live(full, "d")
    assert d.events[0]["type"] == "session.started", d.events
    assert await _metric(full, 'rasst_detached_evictions_total{budget="capacity"}') == 1
    assert (await _resume_and_end(full, tokens[0], "a")).error_codes() == ["resume_failed"]
    # b resumes (and stays live); c is the only dropped one left.
    async with connect(full.ws_url) as ws_b:
        await ws_b.send(json.dumps({"type": "session.resume", "resume_token": tokens[1]}))
        assert json.loads(await ws_b.recv())["type"] == "session.resumed"
        e, ws_e = await _live(full, "e")  # evicts c
        assert e.events[0]["type"] == "session.started", e.events
        assert await _detached_becomes(full, 0) == 0
        # Three live sessions and none dropped: now, and only now, server_busy.
        f, ws_f = await _live(full, "f")
        f = await read_all(ws_f, f, within=10)  # type: ignore[arg-type]
        assert f.error_codes() == ["server_busy"] and f.close_code == 1013
        for ws in (ws_d, ws_e):
            await ws.close()  # type: ignore[attr-defined]
    assert await _metric(full, 'rasst_detached_evictions_total{budget="capacity"}') == 2
