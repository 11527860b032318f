"""Misbehaving clients: each gets a stable error code or a clean close, and nobody else notices."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from websockets.asyncio.client import connect

from server.client import read_wav
from tests.support.live_server import TWO_CITIES, LiveServer, start_server
from tests.support.ws import END, Transcript, exchange, read_all, start_message

SPEECH = read_wav(TWO_CITIES)[1]


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Default limits (2x pace); short idle timeout and resume grace so tests do not wait 30 s."""
    server = start_server(
        tmp_path_factory.mktemp("strict"),
        env={"RASST_IDLE_TIMEOUT_SECONDS": "2", "RASST_RESUME_GRACE_SECONDS": "2"},
    )
    yield server
    server.stop()


def _assert_fatal(transcript: Transcript, code: str, close_code: int) -> None:
    errors = transcript.of_type("error")
    assert [e["code"] for e in errors][-1] == code
    assert errors[-1]["fatal"] is True
    assert transcript.events[-1]["type"] == "session.summary"
    assert transcript.events[-1]["reason"] == "error"
    assert transcript.events[-2] == errors[-1]
    assert transcript.close_code == close_code


@pytest.mark.parametrize(
    ("first", "code", "close_code"),
    [
        ("hello", "bad_message", 1007),
        ('{"type": "input_audio_buffer.append"}', "unknown_event", 1008),
        (b"\x00\x01" * 800, "not_started", 1008),
        ('{"type": "session.end"}', "not_started", 1008),
        (start_message(audio={"sample_rate": 96000}), "unsupported_sample_rate", 1003),
        (start_message(audio={"encoding": "mp3"}), "unsupported_encoding", 1003),
        (start_message(lm=7), "bad_message", 1007),
        (start_message(protocol_version=99), "bad_message", 1007),
        (start_message(glossary_ids=["nope"]), "glossary_not_found", 1008),
    ],
)
async def test_wrong_first_message(
    strict: LiveServer, first: str | bytes, code: str, close_code: int
) -> None:
    transcript = await exchange(strict.ws_url, first)
    _assert_fatal(transcript, code, close_code)


@pytest.mark.parametrize(
    ("frame", "code", "close_code"),
    [
        (b"\x00" * 3201, "bad_audio_frame", 1007),
        (b"\x00" * (256 * 1024 + 2), "frame_too_large", 1009),
    ],
)
async def test_bad_audio_frames(
    strict: LiveServer, frame: bytes, code: str, close_code: int
) -> None:
    good = SPEECH[:3200].tobytes()
    transcript = await exchange(strict.ws_url, start_message(), good, frame, good)
    assert transcript.events[0]["type"] == "session.started"
    _assert_fatal(transcript, code, close_code)


async def test_audio_faster_than_the_pace_limit(strict: LiveServer) -> None:
    # 30 s of audio at once: far beyond 2x real time plus the 10 s burst allowance.
    frames = [
        SPEECH[i : i + 16000].tobytes() for i in range(0, 16000 * 30, 16000) if i < len(SPEECH)
    ]
    frames += [np.zeros(16000, np.int16).tobytes()] * (30 - len(frames))
    transcript = await exchange(strict.ws_url, start_message(), *frames)
    _assert_fatal(transcript, "pace_exceeded", 1008)


async def test_idle_client_is_closed(strict: LiveServer) -> None:
    async with connect(strict.ws_url) as ws:
        await ws.send(start_message())
        await ws.send(SPEECH[:1600].tobytes())
        transcript = await read_all(ws, Transcript(), within=20)
    _assert_fatal(transcript, "idle_timeout", 1001)


async def test_idle_before_start_is_closed(strict: LiveServer) -> None:
    async with connect(strict.ws_url) as ws:
        transcript = await read_all(ws, Transcript(), within=20)
    _assert_fatal(transcript, "idle_timeout", 1001)


async def test_unknown_and_repeated_messages_midstream_are_reported_not_fatal(
    strict: LiveServer,
) -> None:
    audio = SPEECH[: 16000 * 2]
    transcript = await exchange(
        strict.ws_url,
        start_message(lm=1),
        audio[:16000].tobytes(),
        '{"type": "session.pause"}',
        "{broken json",
        start_message(),
        audio[16000:].tobytes(),
        END,
    )
    assert transcript.error_codes() == ["unknown_event", "bad_message", "already_started"]
    assert all(e["fatal"] is False for e in transcript.of_type("error"))
    summary = transcript.events[-1]
    assert summary["type"] == "session.summary" and summary["reason"] == "completed"
    assert summary["audio_seconds"] == pytest.approx(2.0)
    assert summary["errors"] == 3
    assert transcript.close_code == 1000


async def _sessions_open(server: LiveServer) -> int:
    async with httpx.AsyncClient(timeout=5) as http:
        return int((await http.get(f"{server.http_url}/readyz")).json()["sessions"])


async def test_abrupt_disconnect_mid_chunk_frees_the_session_after_the_resume_grace(
    strict: LiveServer,
) -> None:
    ws = await connect(strict.ws_url)
    await ws.send(start_message(lm=4))
    await ws.recv()
    await ws.send(SPEECH[: 16000 * 2 + 123 * 2].tobytes())  # mid-chunk
    # Drop the TCP connection without a close handshake.
    ws.transport.abort()
    # Resumable for 2 s, then gone.
    await asyncio.sleep(0.5)
    assert await _sessions_open(strict) == 1
    for _ in range(80):
        if await _sessions_open(strict) == 0:
            break
        await asyncio.sleep(0.1)
    assert await _sessions_open(strict) == 0
    async with httpx.AsyncClient(timeout=5) as http:
        metrics = (await http.get(f"{strict.http_url}/metrics")).text
    assert 'rasst_sessions_total{reason="disconnected"}' in metrics
    assert 'rasst_session_disconnects_total{outcome="expired"} 1.0' in metrics
    # The server is unharmed: a new session completes.
    transcript = await exchange(strict.ws_url, start_message(lm=1), SPEECH[:16000].tobytes(), END)
    assert transcript.events[-1]["reason"] == "completed"


async def _good_session(url: str, seconds: float) -> Transcript:
    audio = SPEECH[: int(16000 * seconds)]
    transcript = Transcript()
    async with connect(url) as ws:
        await ws.send(start_message(lm=1))
        for i in range(0, len(audio), 1600):
            await ws.send(audio[i : i + 1600].tobytes())
            await asyncio.sleep(0.1)  # real time
        await ws.send(END)
        await read_all(ws, transcript, within=180)
    return transcript


async def _bad_session(url: str) -> Transcript:
    transcript = Transcript()
    async with connect(url) as ws:
        await ws.send(start_message(lm=1))
        await ws.send(SPEECH[:1600].tobytes())
        await asyncio.sleep(0.5)
        await ws.send(b"\x01\x02\x03")  # odd byte count
        await read_all(ws, transcript, within=60)
    return transcript


@pytest.mark.slow
async def test_fifty_concurrent_sessions_with_one_misbehaving(strict: LiveServer) -> None:
    good = [asyncio.create_task(_good_session(strict.ws_url, 2.0)) for _ in range(49)]
    await asyncio.sleep(0.3)
    bad = await _bad_session(strict.ws_url)
    results = await asyncio.gather(*good)
    _assert_fatal(bad, "bad_audio_frame", 1007)
    for transcript in results:
        assert transcript.error_codes() == []
        summary = transcript.events[-1]
        assert summary["type"] == "session.summary" and summary["reason"] == "completed"
        assert summary["audio_seconds"] == pytest.approx(2.0)
        assert [e["chunk"] for e in transcript.of_type("chunk.done")] == [0, 1, 2]
        assert transcript.close_code == 1000
    assert await _sessions_open(strict) == 0


async def test_capacity_limit_answers_server_busy(tmp_path_factory: pytest.TempPathFactory) -> None:
    server = start_server(tmp_path_factory.mktemp("small"), env={"RASST_MAX_SESSIONS": "1"})
    try:
        async with connect(server.ws_url) as first:
            await first.send(start_message())
            assert json.loads(await first.recv())["type"] == "session.started"
            transcript = await exchange(server.ws_url, start_message())
            _assert_fatal(transcript, "server_busy", 1013)
    finally:
        server.stop()


async def test_foreign_browser_origins_are_refused_when_origins_are_configured(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from websockets.exceptions import InvalidStatus

    server = start_server(
        tmp_path_factory.mktemp("origins"),
        env={"RASST_CORS_ORIGINS": '["https://captions.example.org"]'},
    )
    try:
        with pytest.raises(InvalidStatus) as refused:
            await connect(server.ws_url, origin="https://evil.example.com")
        assert refused.value.response.status_code == 403
        for origin in ("https://captions.example.org", f"http://127.0.0.1:{server.port}", None):
            async with connect(server.ws_url, origin=origin) as ws:
                await ws.send(start_message())
                assert json.loads(await ws.recv())["type"] == "session.started"
        async with httpx.AsyncClient(timeout=5) as http:
            preflight = await http.options(
                f"{server.http_url}/v1/glossaries",
                headers={
                    "Origin": "https://captions.example.org",
                    "Access-Control-Request-Method": "POST",
                },
            )
        assert preflight.headers["access-control-allow-origin"] == "https://captions.example.org"
    finally:
        server.stop()
