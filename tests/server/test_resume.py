"""Resumable sessions: a speaker whose connection drops reconnects and loses nothing.

Every test drops a real TCP connection to a real gateway (``transport.abort()``:
no close handshake, like a Wi-Fi hand-over) and resumes on a new one.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from server.client import read_wav
from server.protocol import SERVER_EVENT_ADAPTER
from tests.support.live_server import TWO_CITIES, LiveServer, start_server
from tests.support.ws import END, Transcript, read_all, start_message

RATE = 16000
SPEECH = read_wav(TWO_CITIES)[1]
GRACE = 4.0


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(
        tmp_path_factory.mktemp("resume"),
        "--max-pace",
        "8",
        env={"RASST_RESUME_GRACE_SECONDS": str(GRACE)},
    )
    yield server
    server.stop()


def resume_message(token: str, last_seq: int) -> str:
    return json.dumps({"type": "session.resume", "resume_token": token, "last_seq": last_seq})


async def _read_for(ws: ClientConnection, seconds: float) -> list[dict[str, Any]]:
    """Whatever arrives within ``seconds`` (the connection stays open)."""
    events: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(seconds):
            async for message in ws:
                events.append(json.loads(message))
    except TimeoutError:
        pass
    return events


async def _sessions_open(server: LiveServer) -> int:
    async with httpx.AsyncClient(timeout=5) as http:
        return int((await http.get(f"{server.http_url}/readyz")).json()["sessions"])


def _assert_nothing_lost(first: list[dict[str, Any]], second: list[dict[str, Any]]) -> None:
    """The events of both connections number 1..N once each, and every chunk is done once."""
    numbered = [e for e in first + second if e["seq"] > 0]
    seqs = [e["seq"] for e in numbered]
    assert sorted(seqs) == list(range(1, max(seqs) + 1)), "a gap or a duplicate in seq"
    done = [e["chunk"] for e in numbered if e["type"] == "chunk.done"]
    assert done == list(range(len(done)))


async def test_drop_mid_stream_then_resume_loses_no_audio_and_no_event(
    gateway: LiveServer,
) -> None:
    audio = SPEECH[: RATE * 12]
    ws = await connect(gateway.ws_url)
    await ws.send(start_message(lm=1, target_languages=[]))
    started = json.loads(await ws.recv())
    assert started["seq"] == 1 and started["limits"]["resume_grace_seconds"] == GRACE
    token = started["resume_token"]
    assert token and len(token) >= 32
    # Six seconds in odd-sized frames, read up to the first chunk's end, then the link
    # dies while the server still has the other chunks to process.
    sent = RATE * 6 + 777
    for i in range(0, sent, 3200):
        await ws.send(audio[i : min(i + 3200, sent)].tobytes())
    first = [started]
    async with asyncio.timeout(60):
        while not any(e["type"] == "chunk.done" for e in first):
            first.append(json.loads(await ws.recv()))
    ws.transport.abort()
    await asyncio.sleep(1.5)  # the server goes on without the client
    assert await _sessions_open(gateway) == 1

    last_seq = max(e["seq"] for e in first)
    second = Transcript()
    async with connect(gateway.ws_url) as ws2:
        await ws2.send(resume_message(token, last_seq))
        resumed = json.loads(await ws2.recv())
        SERVER_EVENT_ADAPTER.validate_python(resumed)
        assert resumed["type"] == "session.resumed"
        assert resumed["session_id"] == started["session_id"]
        assert resumed["missed"] == 0
        offset = resumed["audio_received_samples"]
        # TCP may have lost the tail of what was sent; the server says where to go on.
        assert 0 < offset <= sent and offset % 1 == 0
        for i in range(offset, len(audio), 3200):
            await ws2.send(audio[i : i + 3200].tobytes())
        await ws2.send(END)
        await read_all(ws2, second, within=120)
    # What the server produced while the client was away comes first, in order.
    replayed = resumed["replayed"]
    assert replayed > 0
    assert [e["seq"] for e in second.events[:replayed]] == list(
        range(last_seq + 1, last_seq + 1 + replayed)
    )
    assert second.close_code == 1000
    summary = second.events[-1]
    assert summary["type"] == "session.summary" and summary["reason"] == "completed"
    # Every sample is accounted for, once.
    assert summary["audio_seconds"] == pytest.approx(len(audio) / RATE, abs=1e-3)
    _assert_nothing_lost(first, second.events)
    assert await _sessions_open(gateway) == 0


async def test_client_gone_before_the_tail_collects_it_on_resume(gateway: LiveServer) -> None:
    audio = SPEECH[: RATE * 5]
    ws = await connect(gateway.ws_url)
    await ws.send(start_message(lm=2))
    started = json.loads(await ws.recv())
    await ws.send(audio.tobytes())
    await ws.send(END)
    ws.transport.abort()  # nothing but session.started was read
    await asyncio.sleep(1.0)
    transcript = Transcript()
    async with connect(gateway.ws_url) as ws2:
        await ws2.send(resume_message(started["resume_token"], started["seq"]))
        await read_all(ws2, transcript, within=60)
    resumed, *replayed = transcript.events
    assert resumed["type"] == "session.resumed"
    assert resumed["audio_received_samples"] == len(audio)
    assert replayed[-1]["type"] == "session.summary"
    assert replayed[-1]["reason"] == "completed"
    assert replayed[-1]["audio_seconds"] == pytest.approx(5.0, abs=1e-3)
    assert transcript.close_code == 1000
    _assert_nothing_lost([started], replayed)


async def test_a_new_connection_takes_over_a_half_open_one(gateway: LiveServer) -> None:
    old = await connect(gateway.ws_url)
    await old.send(start_message(lm=1))
    started = json.loads(await old.recv())
    await old.send(SPEECH[: RATE * 2].tobytes())
    first = await _read_for(old, 0.5)
    # The old connection is still open as far as the server knows.
    async with connect(gateway.ws_url) as new:
        last = max([started["seq"], *(e["seq"] for e in first)])
        await new.send(resume_message(started["resume_token"], last))
        resumed = json.loads(await new.recv())
        assert resumed["type"] == "session.resumed"
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(10):
                while True:
                    await old.recv()
        assert old.close_code == 1000
        await new.send(END)
        transcript = await read_all(new, Transcript(), within=60)
    assert transcript.events[-1]["type"] == "session.summary"
    assert transcript.events[-1]["audio_seconds"] == pytest.approx(2.0, abs=1e-3)


async def test_unknown_and_expired_tokens_are_refused(gateway: LiveServer) -> None:
    async with connect(gateway.ws_url) as ws:
        await ws.send(resume_message("not-a-token", 0))
        transcript = await read_all(ws, Transcript(), within=10)
    assert transcript.error_codes() == ["resume_failed"]
    assert transcript.close_code == 1008

    ws = await connect(gateway.ws_url)
    await ws.send(start_message(lm=1))
    token = json.loads(await ws.recv())["resume_token"]
    ws.transport.abort()
    await asyncio.sleep(GRACE + 1.5)
    assert await _sessions_open(gateway) == 0
    async with connect(gateway.ws_url) as ws:
        await ws.send(resume_message(token, 1))
        transcript = await read_all(ws, Transcript(), within=10)
    assert transcript.error_codes() == ["resume_failed"]


async def test_resume_mid_stream_is_reported_not_fatal(gateway: LiveServer) -> None:
    async with connect(gateway.ws_url) as ws:
        await ws.send(start_message(lm=1))
        started = json.loads(await ws.recv())
        await ws.send(resume_message(started["resume_token"], 1))
        await ws.send(SPEECH[:RATE].tobytes())
        await ws.send(END)
        transcript = await read_all(ws, Transcript(), within=30)
    assert transcript.error_codes() == ["already_started"]
    assert transcript.events[-1]["reason"] == "completed"


async def test_python_client_resumes_through_a_cut_link(gateway: LiveServer) -> None:
    """``stream_wav`` (the CLI's client) rides out two network cuts and loses nothing."""
    from server.client import StreamOptions, stream_wav
    from tests.support.tcp_proxy import TcpProxy

    with TcpProxy(gateway.port) as proxy:
        url = f"ws://127.0.0.1:{proxy.port}/v1/stream"
        events: list[dict[str, Any]] = []
        cuts = 0
        async for event in stream_wav(url, TWO_CITIES, StreamOptions(lm=1), speed=4.0):
            events.append(event)
            done = sum(1 for e in events if e["type"] == "chunk.done")
            if cuts < 2 and done >= 4 * (cuts + 1):
                assert proxy.cut() >= 1
                cuts += 1
    assert cuts == 2
    assert [e["type"] for e in events].count("session.resumed") == 2
    numbered = [e for e in events if e["seq"] > 0]
    assert [e["seq"] for e in numbered] == list(range(1, len(numbered) + 1))
    summary = events[-1]
    assert summary["type"] == "session.summary" and summary["reason"] == "completed"
    assert summary["audio_seconds"] == pytest.approx(len(SPEECH) / RATE, abs=1e-3)
    done = [e["chunk"] for e in events if e["type"] == "chunk.done"]
    assert done == list(range(len(done)))
