"""Several gateway processes on one Redis bus: viewers, resume and subtitles on any replica.

Real ``redis-server``, three real gateways on loopback (A, B, C), real speech. A speaker
talks to A; its viewer, its subtitles and its resumed connection go through B, as a load
balancer without client pinning would send them.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from server.client import read_wav
from tests.support.live_server import TWO_CITIES, LiveServer, free_port, start_server
from tests.support.redis_server import RedisServer, start_redis
from tests.support.ws import END, Transcript, read_all, start_message

pytestmark = pytest.mark.slow

RATE = 16000
SPEECH = read_wav(TWO_CITIES)[1]
LEASE = 3.0


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.kill()


def _gateway(root: Path, name: str, redis: RedisServer) -> LiveServer:
    return start_server(
        root / name,
        "--max-pace",
        "8",
        "--workers",
        "1",
        env={
            "RASST_REDIS_URL": redis.url,
            "RASST_BUS_LEASE_SECONDS": str(LEASE),
            "RASST_RESUME_GRACE_SECONDS": "20",
        },
    )


@pytest.fixture(scope="module")
def pods(
    redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, LiveServer]]:
    root = tmp_path_factory.mktemp("pods")
    (root / "a").mkdir()
    (root / "b").mkdir()
    a = _gateway(root, "a", redis)
    b = _gateway(root, "b", redis)
    yield a, b
    a.stop()
    b.stop()


async def _send(ws: ClientConnection, audio: Any, start: int, end: int) -> None:
    for i in range(start, end, 3200):
        await ws.send(audio[i : min(i + 3200, end)].tobytes())


async def _view(url: str, within: float = 120.0) -> tuple[list[dict[str, Any]], int | None]:
    """A viewer's whole stream; it retries while the bus has not seen the session yet."""
    async with asyncio.timeout(within):
        for _ in range(20):
            events: list[dict[str, Any]] = []
            async with connect(url) as ws:
                async for message in ws:
                    events.append(json.loads(message))
            if not (events and events[0].get("code") == "not_found"):
                break
            await asyncio.sleep(0.25)
        return events, ws.close_code


async def _bus_up(pod: LiveServer) -> bool:
    async with httpx.AsyncClient(timeout=5) as http:
        return bool((await http.get(f"{pod.http_url}/readyz")).json()["backends"]["bus"])


def _numbered(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e.get("seq", 0) > 0]


async def test_a_viewer_on_another_gateway_sees_the_whole_session(
    pods: tuple[LiveServer, LiveServer],
) -> None:
    a, b = pods
    audio = SPEECH[: RATE * 10]
    speaker = Transcript()
    async with connect(a.ws_url) as ws:
        await ws.send(start_message(lm=1, target_languages=[]))
        started = json.loads(await ws.recv())
        speaker.events.append(started)
        token = started["viewer_token"]
        viewer = asyncio.create_task(_view(f"{b.ws_url.rsplit('/v1/', 1)[0]}/v1/view/{token}"))
        await _send(ws, audio, 0, len(audio))
        await ws.send(END)
        await read_all(ws, speaker, within=120)
    seen, close_code = await viewer
    # B relays A's events: the same numbered events, in order, then a normal close.
    assert close_code == 1000
    assert [e["seq"] for e in _numbered(seen)] == [e["seq"] for e in _numbered(speaker.events)]
    assert [e["type"] for e in seen] == [e["type"] for e in speaker.events]
    assert any(e["type"] == "caption" and e["final"] for e in seen)
    # Subtitles of A's session, from B: by viewer link and by session id.
    async with httpx.AsyncClient(timeout=30) as http:
        from_a = await http.get(f"{a.http_url}/v1/view/{token}/subtitles.srt")
        from_b = await http.get(f"{b.http_url}/v1/view/{token}/subtitles.srt")
        by_id = await http.get(f"{b.http_url}/v1/sessions/{started['session_id']}/subtitles.vtt")
        page = await http.get(f"{b.http_url}/view/{token}")
        unknown = await http.get(f"{b.http_url}/v1/view/not-a-token/subtitles.srt")
    assert from_a.status_code == from_b.status_code == 200
    assert from_b.text == from_a.text and "-->" in from_b.text
    assert by_id.status_code == 200 and by_id.text.startswith("WEBVTT")
    assert page.status_code == 200
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"


async def test_a_speaker_cut_from_one_gateway_resumes_through_another(
    pods: tuple[LiveServer, LiveServer],
) -> None:
    a, b = pods
    audio = SPEECH[: RATE * 12]
    ws = await connect(a.ws_url)
    await ws.send(start_message(lm=1, target_languages=[]))
    started = json.loads(await ws.recv())
    first = [started]
    sent = RATE * 6 + 777
    await _send(ws, audio, 0, sent)
    async with asyncio.timeout(60):
        while not any(e["type"] == "chunk.done" for e in first):
            first.append(json.loads(await ws.recv()))
    ws.transport.abort()  # no close handshake: the link just dies
    await asyncio.sleep(1.0)

    last_seq = max(e["seq"] for e in first)
    second = Transcript()
    resume = {
        "type": "session.resume",
        "resume_token": started["resume_token"],
        "last_seq": last_seq,
    }
    async with connect(b.ws_url) as ws2:
        await ws2.send(json.dumps(resume))
        resumed = json.loads(await ws2.recv())
        assert resumed["type"] == "session.resumed", resumed
        assert resumed["session_id"] == started["session_id"]
        offset = resumed["audio_received_samples"]
        assert 0 < offset <= sent
        await _send(ws2, audio, offset, len(audio))
        await ws2.send(END)
        await read_all(ws2, second, within=120)
    numbered = _numbered(first + second.events)
    seqs = [e["seq"] for e in numbered]
    assert sorted(seqs) == list(range(1, max(seqs) + 1)), "a gap or a duplicate in seq"
    done = [e["chunk"] for e in numbered if e["type"] == "chunk.done"]
    assert done == list(range(len(done)))
    # The owner's close code comes through the relay, and every sample counts once.
    assert second.close_code == 1000
    summary = second.events[-1]
    assert summary["type"] == "session.summary" and summary["reason"] == "completed"
    assert summary["audio_seconds"] == pytest.approx(len(audio) / RATE, abs=1e-3)


async def test_resume_through_another_gateway_when_the_owner_is_gone(
    redis: RedisServer, pods: tuple[LiveServer, LiveServer], tmp_path: Path
) -> None:
    _, b = pods
    (tmp_path / "c").mkdir()
    c = _gateway(tmp_path, "c", redis)
    try:
        ws = await connect(c.ws_url)
        await ws.send(start_message(lm=1, target_languages=[]))
        started = json.loads(await ws.recv())
        await _send(ws, SPEECH, 0, RATE * 2)
        await asyncio.sleep(0.5)  # the resume token reaches the bus
    finally:
        c.stop(signal.SIGKILL)
    resume = {"type": "session.resume", "resume_token": started["resume_token"], "last_seq": 1}
    async with connect(b.ws_url) as ws2:
        await ws2.send(json.dumps(resume))
        error = json.loads(await ws2.recv())
        await asyncio.sleep(0.2)
    assert error["type"] == "error" and error["code"] == "resume_failed"
    assert "cannot be reached" in error["message"]
    assert ws2.close_code is not None and ws2.close_code != 1000
    # After the lease, the dead pod's session leaves the directory: its viewer link is gone.
    await asyncio.sleep(LEASE + 1.0)
    async with httpx.AsyncClient(timeout=10) as http:
        gone = await http.get(f"{b.http_url}/v1/view/{started['viewer_token']}/subtitles.srt")
    assert gone.status_code == 404


async def test_redis_killed_and_restarted_mid_session(
    redis: RedisServer, pods: tuple[LiveServer, LiveServer]
) -> None:
    a, b = pods
    audio = SPEECH[: RATE * 16]
    speaker = Transcript()
    async with connect(a.ws_url) as ws:
        await ws.send(start_message(lm=1, target_languages=[]))
        started = json.loads(await ws.recv())
        speaker.events.append(started)
        token = started["viewer_token"]
        reader = asyncio.create_task(read_all(ws, speaker, within=180))
        # Real time, so the outage falls inside the session.
        for i in range(0, RATE * 4, 3200):
            await ws.send(audio[i : i + 3200].tobytes())
            await asyncio.sleep(0.2)
        redis.kill()
        for i in range(RATE * 4, RATE * 8, 3200):
            await ws.send(audio[i : i + 3200].tobytes())
            await asyncio.sleep(0.2)
        assert not await _bus_up(a)  # degraded, and says so
        redis.start()
        for i in range(RATE * 8, len(audio), 3200):
            await ws.send(audio[i : i + 3200].tobytes())
            await asyncio.sleep(0.2)
        async with asyncio.timeout(30):
            for _ in iter(int, 1):  # polling another process: no event to await
                if await _bus_up(a):
                    break
                await asyncio.sleep(0.25)
        # A viewer on B joins after the restart: A put back what Redis lost.
        viewer = asyncio.create_task(_view(f"{b.ws_url.rsplit('/v1/', 1)[0]}/v1/view/{token}"))
        await asyncio.sleep(1.0)
        await ws.send(END)
        await reader
    summary = speaker.events[-1]
    # The session itself never noticed more than a warning.
    assert summary["type"] == "session.summary" and summary["reason"] == "completed"
    assert summary["audio_seconds"] == pytest.approx(len(audio) / RATE, abs=1e-3)
    assert "bus_unavailable" in [e["code"] for e in speaker.of_type("warning")]
    assert speaker.error_codes() == []
    seen, close_code = await viewer
    assert close_code == 1000
    done_speaker = [e["chunk"] for e in speaker.of_type("chunk.done")]
    done_viewer = [e["chunk"] for e in seen if e["type"] == "chunk.done"]
    assert done_viewer == done_speaker
    finals = [e["text"] for e in speaker.of_type("caption") if e["final"]]
    assert [e["text"] for e in seen if e["type"] == "caption" and e["final"]] == finals


async def test_a_gateway_starts_and_serves_while_redis_is_unreachable(tmp_path: Path) -> None:
    dead = RedisServer(port=free_port(), work_dir=tmp_path)  # never started
    (tmp_path / "d").mkdir()
    d = _gateway(tmp_path, "d", dead)
    try:
        assert not await _bus_up(d)
        transcript = Transcript()
        async with connect(d.ws_url) as ws:
            await ws.send(start_message(lm=1, target_languages=[]))
            await _send(ws, SPEECH, 0, RATE * 3)
            await ws.send(END)
            await read_all(ws, transcript, within=60)
        assert transcript.events[-1]["reason"] == "completed"
        assert transcript.error_codes() == []
        # Said once, right after session.started.
        warnings = transcript.of_type("warning")
        assert [w["code"] for w in warnings] == ["bus_unavailable"]
        assert transcript.events[1]["type"] == "warning"
    finally:
        d.stop()
