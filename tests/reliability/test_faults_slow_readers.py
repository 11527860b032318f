"""Clients that stop reading: a speaker and a viewer that never drain their events.

One gateway, three connections at once:

* a *stalled speaker* sends audio at real time but never reads: once the
  socket and the bounded outbound queue (``max_outbound_events``) are full the
  session ends with ``client_too_slow`` (the policy in server/session.py);
* a *healthy speaker* on the same gateway reads everything: its chunk latency
  stays normal and it completes;
* a *stalled viewer* of the healthy speaker's feed never reads: it is dropped
  (its bounded queue, its send timeout) without slowing the speaker down.

Volume matters here: the kernel accepts up to ``net.ipv4.tcp_wmem``'s maximum
(4 MiB by default) per socket before the server's send blocks, which takes
minutes at the event rate of a real session. A canned LLM endpoint
(tests/support/fake_llm.py) makes each chunk's translation hundreds of deltas,
so the buffers fill within seconds; what is tested is the gateway's buffering,
not translation.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from server.client import RasstStream, StreamOptions, read_wav
from tests.reliability.faults import EventLog, FaultRecord, audio_not_done, record, send_until
from tests.support.fake_llm import MODEL, FakeLlm
from tests.support.live_server import TWO_CITIES, LiveServer, start_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

# 120 deltas of 50 characters per chunk: ~400 KB of events per 0.96 s chunk
# (each delta repeats the chunk's text so far). They arrive in one burst, so
# max_outbound_events (default 2000) must stay above a chunk's worth of events:
# a smaller queue overflows even for a client that reads everything.
DELTAS = 120
DELTA = "Wort " * 10


@pytest.fixture(scope="module")
def loaded_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    llm = FakeLlm(deltas=DELTAS, delta=DELTA).start()
    server = start_server(
        tmp_path_factory.mktemp("slow-readers"),
        "--llm-url",
        llm.url,
        "--llm-model",
        MODEL,
        "--workers",
        "1",
        "--max-pace",
        "4",
    )
    try:
        yield server
    finally:
        server.stop()
        llm.close()


async def _non_reading(url: str) -> ClientConnection:
    """A WebSocket whose reader has stalled: a small receive buffer, nothing read.

    The client's library stops reading the socket after one queued frame and
    does not send keepalive pings of its own, like an application whose event
    loop is stuck.
    """
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    return await connect(url, sock=sock, max_queue=1, ping_interval=None, close_timeout=1)


async def _drain(ws: ClientConnection, within: float) -> tuple[list[dict[str, Any]], int | None]:
    """Read what the server had buffered, until it closes (or ``within`` passes)."""
    events: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(within):
            async for message in ws:
                events.append(json.loads(message))
    except (ConnectionClosed, TimeoutError):
        pass
    return events, ws.close_code


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _metric(text: str, name: str, label: str = "", *, unset: float | None = None) -> float:
    """A sample's value. A missing family always fails; a missing labelled sample is
    ``unset`` when given (a labelled counter has no sample before its first increment)."""
    names = {re.escape(name), re.escape(name.removesuffix("_total"))}
    declared = rf"^# TYPE ({'|'.join(names)}) "
    assert re.search(declared, text, re.MULTILINE), f"no metric {name}"
    pattern = rf"^{re.escape(name)}{re.escape(label)}\s+([0-9.eE+-]+)$"
    match = re.search(pattern, text, re.MULTILINE)
    if match is None:
        assert unset is not None, f"no sample {name}{label}"
        return unset
    return float(match.group(1))


async def _send_stalled(ws: ClientConnection, samples: np.ndarray, rate: int) -> None:
    """Real-time audio from the stalled speaker until the server drops it."""
    frame = rate // 10
    started = time.monotonic()
    sent = 0
    try:
        while True:
            offset = (sent * frame) % (len(samples) - frame)
            await ws.send(samples[offset : offset + frame].tobytes())
            sent += 1
            await asyncio.sleep(max(0.0, started + sent * 0.1 - time.monotonic()))
    except ConnectionClosed:
        pass


def _lag_and_latency(done: list[dict[str, Any]]) -> tuple[float, float]:
    return (
        max((e["lag_seconds"] for e in done), default=0.0),
        max((e["latency_ms"] for e in done), default=0.0),
    )


async def test_speaker_that_stops_reading_ends_with_client_too_slow_others_unaffected(
    loaded_gateway: LiveServer,
) -> None:
    gateway = loaded_gateway
    rate, samples = read_wav(TWO_CITIES)
    pid = gateway.process.pid
    rss: list[float] = [_rss_mib(pid)]
    healthy = EventLog()
    stop_healthy = asyncio.Event()
    marks: dict[str, float] = {}
    stalled: dict[str, Any] = {}

    async with httpx.AsyncClient(base_url=gateway.http_url, timeout=10) as http:

        async def too_slow_count() -> float:
            text = (await http.get("/metrics")).text
            return _metric(text, "rasst_errors_total", '{code="client_too_slow"}', unset=0.0)

        async def active_sessions() -> float:
            return _metric((await http.get("/metrics")).text, "rasst_sessions_active")

        counted = await too_slow_count()
        # The concurrent session: captions only, reading everything.
        options = StreamOptions(lm=1, sample_rate=rate)
        async with RasstStream(gateway.ws_url, options) as session:

            async def read_healthy() -> None:
                async for event in session.events():
                    healthy.add(event)

            async def stalled_speaker() -> None:
                await asyncio.sleep(3.0)  # the healthy session's baseline first
                ws = await _non_reading(gateway.ws_url)
                sender: asyncio.Task[None] | None = None
                try:
                    await ws.send(
                        json.dumps({"type": "session.start", "lm": 1, "target_languages": ["de"]})
                    )
                    marks["stalled_start"] = time.monotonic()
                    rss.append(_rss_mib(pid))  # warmed up: a session already runs
                    sender = asyncio.create_task(_send_stalled(ws, samples, rate))
                    async with asyncio.timeout(90):
                        while await too_slow_count() == counted:
                            rss.append(_rss_mib(pid))
                            await asyncio.sleep(0.5)
                    marks["stalled_dropped"] = time.monotonic()
                    rss.append(_rss_mib(pid))
                    stalled["active"] = await active_sessions()
                    # Only now does the stalled client read: what reaches it, how it ends.
                    stalled["events"], stalled["close"] = await _drain(ws, within=20)
                finally:
                    if sender is not None:
                        sender.cancel()
                        await asyncio.gather(sender, return_exceptions=True)
                    await ws.close()
                await asyncio.sleep(2.0)
                stop_healthy.set()

            async with asyncio.timeout(150), asyncio.TaskGroup() as group:
                group.create_task(send_until(session, samples, rate, stop_healthy))
                group.create_task(read_healthy())
                group.create_task(stalled_speaker())
        rss.append(_rss_mib(pid))
        assert await active_sessions() == 0

    detect = marks["stalled_dropped"] - marks["stalled_start"]
    assert stalled["active"] == 1, "the stalled session is gone, the healthy one is not"
    stalled_events: list[dict[str, Any]] = stalled["events"]
    # It read again within the server's send timeout (5 s) of the verdict, so the
    # explicit end still reached it: its buffered events, the error, the summary, 1008.
    # A client that never reads again sees nothing of it: its connection just ends.
    assert [e["code"] for e in stalled_events if e["type"] == "error"] == ["client_too_slow"]
    assert stalled_events[-1]["type"] == "session.summary"
    assert stalled_events[-1]["reason"] == "error"
    assert stalled["close"] == 1008

    # The concurrent session never noticed.
    summary = healthy.events[-1]
    assert summary["type"] == "session.summary" and summary["reason"] == "completed", summary
    assert not healthy.of_type("error") and healthy.warning_codes() == []
    done = healthy.of_type("chunk.done")
    assert [e["chunk"] for e in done] == list(range(len(done)))
    before = healthy.between("chunk.done", 0.0, marks["stalled_start"])
    during = healthy.between("chunk.done", marks["stalled_start"], marks["stalled_dropped"])
    assert during, "the healthy session made progress while the stalled one filled its buffers"
    lag_before, latency_before = _lag_and_latency(before)
    lag_during, latency_during = _lag_and_latency(during)
    # Bounded, not compared: the CPUs are shared with other work, and the stalled
    # session's event volume costs CPU whether or not anyone reads it.
    assert lag_during < 10.0, during

    # From the warmed-up gateway (one session running) to the worst moment; this
    # includes the stalled session's own state (its feed keeps its events for
    # viewers and subtitles, up to 50 000) and the bounded queues.
    warm = rss[1]
    growth = max(rss) - warm
    assert growth < 100, rss
    record(
        FaultRecord(
            fault="Speaker stops reading events",
            injected=(
                "client sends audio at real time and never reads (4 KiB receive buffer); "
                f"{DELTAS} translation deltas per chunk (~400 KB of events), default "
                "max_outbound_events (2000)"
            ),
            duration_s=round(detect, 1),
            client_saw=[
                "error client_too_slow (fatal) + session.summary + close 1008, after "
                f"{len(stalled_events) - 2} buffered events (only once it reads again)"
            ],
            recovery_s=None,
            # Audio the client sent whose chunk.done it never got (the session's end).
            audio_not_done_s=audio_not_done(stalled_events),
            notes=(
                f"session ended with client_too_slow (server log, rasst_errors_total) after "
                f"{detect:.1f} s; gateway RSS {warm:.0f} → max {max(rss):.0f} MiB; a "
                f"concurrent session completed: max lag {lag_during:.1f} s, latency "
                f"{latency_during:.0f} ms (before: {lag_before:.1f} s, {latency_before:.0f} ms)"
            ),
            test="tests/reliability/test_faults_slow_readers.py",
        )
    )


async def test_viewer_that_stops_reading_is_dropped_and_the_speaker_goes_on(
    loaded_gateway: LiveServer,
) -> None:
    gateway = loaded_gateway
    rate, samples = read_wav(TWO_CITIES)
    speaker = EventLog()
    stop = asyncio.Event()
    seen: dict[str, Any] = {}
    options = StreamOptions(target_languages=["de"], lm=1, sample_rate=rate)

    async with RasstStream(gateway.ws_url, options) as session:
        assert session.started is not None
        base = gateway.ws_url.rsplit("/v1/", 1)[0]
        viewer = await _non_reading(f"{base}/v1/view/{session.started['viewer_token']}")
        started = time.monotonic()
        try:

            async def read_speaker() -> None:
                async for event in session.events(validate=False):
                    speaker.add(event)

            async def stall_then_read() -> None:
                # Long enough for the viewer's socket (up to 4 MiB in the kernel) and
                # then its feed queue or send timeout (10 s) to give up on it.
                await asyncio.sleep(25.0)
                seen["reads_at"] = time.monotonic()
                seen["events"], seen["close"] = await _drain(viewer, within=15)
                seen["closed_at"] = time.monotonic()
                await asyncio.sleep(1.0)
                stop.set()

            async with asyncio.timeout(120), asyncio.TaskGroup() as group:
                group.create_task(send_until(session, samples, rate, stop))
                group.create_task(read_speaker())
                group.create_task(stall_then_read())
        finally:
            await viewer.close()

    summary = speaker.events[-1]
    assert summary["type"] == "session.summary" and summary["reason"] == "completed", summary
    assert not speaker.of_type("error")
    assert speaker.warning_codes() == [], speaker.warning_codes()
    done = speaker.of_type("chunk.done")
    assert [e["chunk"] for e in done] == list(range(len(done)))

    # The viewer was dropped while the session was live: what it had buffered came
    # out at once, then the connection ended, without the session's summary.
    viewer_events: list[dict[str, Any]] = seen["events"]
    assert not any(e["type"] == "session.summary" for e in viewer_events)
    assert seen["closed_at"] - seen["reads_at"] < 10.0
    last_seq = max((e.get("seq", 0) for e in viewer_events), default=0)
    assert last_seq < max(e.get("seq", 0) for e in speaker.events)
    stalled_at = next(
        (t - started for t, e in speaker.arrivals if e.get("seq", 0) >= last_seq), None
    )
    lag, latency = _lag_and_latency(done)
    record(
        FaultRecord(
            fault="Viewer stops reading",
            injected="a viewer WebSocket (4 KiB receive buffer) of a translating session never reads",
            duration_s=None,
            client_saw=[
                f"{len(viewer_events)} buffered events, then close {seen['close']}, "
                "no session.summary"
            ],
            recovery_s=None,
            audio_not_done_s=audio_not_done(speaker.events),
            notes=(
                f"the viewer's stream stopped {stalled_at or 0:.0f} s into the session (its "
                "buffers full), then the server dropped it; the speaker completed without a "
                f"warning (max lag {lag:.1f} s, max latency {latency:.0f} ms)"
            ),
            test="tests/reliability/test_faults_slow_readers.py",
        )
    )
