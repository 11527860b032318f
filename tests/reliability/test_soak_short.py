"""The CI-sized soak: many concurrent real-time speakers, some of them cut off, nothing lost.

The 10-minute, 64-session runs in docs/reliability.md use the same harness
(``bench/soak.py``); this one is small enough for every CI run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from server.client import StreamOptions, read_wav, stream_wav
from tests.support.live_server import TWO_CITIES, LiveServer, start_server
from tests.support.soak import soak
from tests.support.tcp_proxy import TcpProxy

SPEECH = read_wav(TWO_CITIES)[1]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # VAD and chunking only: 32 captioned sessions would need more than these 2 cores
    # (docs/benchmarks.md), and this test is about accounting, not decoding speed.
    server = start_server(
        tmp_path_factory.mktemp("soak"), env={"RASST_CAPTIONS": "false", "RASST_MAX_PACE": "4"}
    )
    yield server
    server.stop()


async def _cut_and_resumed(server: LiveServer) -> list[dict[str, Any]]:
    """One speaker whose link is cut twice mid-stream; the client resumes each time."""
    events: list[dict[str, Any]] = []
    with TcpProxy(server.port) as proxy:
        url = f"ws://127.0.0.1:{proxy.port}/v1/stream"
        cuts = 0
        async for event in stream_wav(url, TWO_CITIES, StreamOptions(lm=1), speed=2.0):
            events.append(event)
            done = sum(1 for e in events if e["type"] == "chunk.done")
            if cuts < 2 and done >= 6 * (cuts + 1):
                proxy.cut()
                cuts += 1
    return events


@pytest.mark.slow
async def test_thirty_two_real_time_sessions_lose_no_audio(gateway: LiveServer) -> None:
    report, cut = await asyncio.gather(
        soak(gateway.ws_url, SPEECH, sessions=32, seconds=20, lm=2),
        _cut_and_resumed(gateway),
    )
    assert report.completed == 32
    assert report.lost_audio_seconds == 0
    assert report.chunks >= 32 * 10
    assert not {code for code in report.codes if code.startswith("error:")}

    assert [e["type"] for e in cut].count("session.resumed") == 2
    summary = cut[-1]
    assert summary["type"] == "session.summary" and summary["reason"] == "completed"
    assert summary["audio_seconds"] == pytest.approx(len(SPEECH) / 16000, abs=1e-3)
