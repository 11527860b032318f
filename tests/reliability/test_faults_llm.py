"""The network to the LLM stalls mid-session: gateway → TCP proxy (paused) → real CPU vLLM.

The proxy stops forwarding bytes both ways and keeps connections open, for
longer than the translator's deadline. The session must not hang: the stalled
chunks end with an empty (or partial) commit and one ``llm_unavailable``
warning, captions and ``chunk.done`` keep flowing with bounded lag, the
circuit breaker stops sending requests into the stall, and translation comes
back by itself within a bounded time after the network resumes.

(Killing vLLM mid-session is tests/translator/test_gateway_vllm.py.)
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.client import RasstStream, StreamOptions, read_wav
from server.translator import FaultParams
from tests.reliability.faults import FaultRecord, audio_not_done, record
from tests.support.live_server import TWO_CITIES, LiveServer, start_server
from tests.support.tcp_proxy import TcpProxy, tcp_proxy  # noqa: F401  (fixture)
from tests.support.vllm_server import VllmServer

pytestmark = [pytest.mark.vllm, pytest.mark.slow, pytest.mark.timeout(600)]

# Short translator timeouts so that a stall of a few seconds outlasts them; the
# breaker keeps its default threshold, with a short reset so a probe fails and
# backs off during the stall.
FAULTS = FaultParams(
    connect_timeout=1.0,
    request_deadline=2.0,
    breaker_failures=3,
    breaker_reset_seconds=1.0,
    breaker_reset_max_seconds=3.0,
)
STALL_SECONDS = 10.0
CHUNK_SECONDS = 0.96  # lm 1


@pytest.fixture
def stalled_llm_gateway(
    vllm: VllmServer,
    tcp_proxy: Any,  # noqa: F811
    tmp_path: Path,
) -> Iterator[tuple[LiveServer, TcpProxy]]:
    proxy: TcpProxy = tcp_proxy(vllm.port)
    server = start_server(
        tmp_path,
        "--llm-url",
        f"http://127.0.0.1:{proxy.port}",
        "--llm-model",
        vllm.name,
        "--max-pace",
        "4",
        env={
            "RASST_LLM_CONNECT_TIMEOUT_SECONDS": str(FAULTS.connect_timeout),
            "RASST_LLM_REQUEST_DEADLINE_SECONDS": str(FAULTS.request_deadline),
            "RASST_LLM_BREAKER_FAILURES": str(FAULTS.breaker_failures),
            "RASST_LLM_BREAKER_RESET_SECONDS": str(FAULTS.breaker_reset_seconds),
            "RASST_LLM_BREAKER_RESET_MAX_SECONDS": str(FAULTS.breaker_reset_max_seconds),
        },
        ready_timeout=120,
    )
    try:
        yield server, proxy
    finally:
        server.stop()


async def test_stalled_llm_network_degrades_to_captions_and_translation_comes_back(
    stalled_llm_gateway: tuple[LiveServer, TcpProxy],
) -> None:
    gateway, proxy = stalled_llm_gateway
    rate, samples = read_wav(TWO_CITIES)
    options = StreamOptions(target_languages=("zh",), lm=1, sample_rate=rate)
    arrivals: list[tuple[float, dict[str, Any]]] = []
    translating = asyncio.Event()
    recovered = asyncio.Event()
    marks: dict[str, float] = {}
    connections: dict[str, int] = {}
    readiness: dict[str, Any] = {}

    async with RasstStream(gateway.ws_url, options) as stream:

        async def send() -> None:
            # Real time, looping the file, until translation is back and a few chunks later.
            frame = rate // 10
            started = time.monotonic()
            sent = 0
            while not recovered.is_set() or time.monotonic() < marks["recovered"] + 3.0:
                offset = (sent * frame) % (len(samples) - frame)
                await stream.send_audio(samples[offset : offset + frame].tobytes())
                sent += 1
                await asyncio.sleep(max(0.0, started + sent * 0.1 - time.monotonic()))
            await stream.end()

        async def read() -> None:
            async for event in stream.events():
                now = time.monotonic()
                arrivals.append((now, event))
                if event["type"] == "translation.commit" and event["text"]:
                    if "resumed" in marks and not recovered.is_set():
                        marks["recovered"] = now
                        recovered.set()
                    translating.set()

        async def stall() -> None:
            await translating.wait()
            connections["before"] = proxy.connections_total
            marks["paused"] = time.monotonic()
            proxy.pause()
            await asyncio.sleep(STALL_SECONDS / 2)
            # Readiness does not wait for the stalled LLM, nor fail on it.
            opened = proxy.connections_total
            async with httpx.AsyncClient(timeout=10) as http:
                asked = time.monotonic()
                ready = await http.get(f"{gateway.http_url}/readyz")
                readiness["seconds"] = time.monotonic() - asked
            readiness["status"] = ready.status_code
            readiness["llm"] = ready.json()["backends"].get("llm")
            readyz_connections = proxy.connections_total - opened
            await asyncio.sleep(max(0.0, marks["paused"] + STALL_SECONDS - time.monotonic()))
            connections["during"] = (
                proxy.connections_total - connections["before"] - readyz_connections
            )
            proxy.resume()
            marks["resumed"] = time.monotonic()

        async with asyncio.timeout(240), asyncio.TaskGroup() as group:
            group.create_task(send())
            group.create_task(read())
            group.create_task(stall())

    events = [e for _, e in arrivals]
    paused, resumed, back = marks["paused"], marks["resumed"], marks["recovered"]
    assert events[-1]["type"] == "session.summary" and events[-1]["reason"] == "completed"
    assert not [e for e in events if e["type"] == "error"]
    codes = [e["code"] for e in events if e["type"] == "warning" and e["code"] != "lagging"]
    assert codes == ["llm_unavailable"], "warned once for the one outage"

    # chunk.done kept flowing through the stall: no gap much longer than one
    # request deadline (without it: the 20 s read timeout, three times over).
    done_times = [t for t, e in arrivals if e["type"] == "chunk.done"]
    in_stall = [t for t in done_times if paused <= t <= resumed]
    assert len(in_stall) >= STALL_SECONDS / CHUNK_SECONDS / 3, (len(in_stall), done_times)
    gaps = [b - a for a, b in zip(done_times, done_times[1:], strict=False)]
    assert max(gaps) < FAULTS.request_deadline + 4.0, max(gaps)
    done = [e for e in events if e["type"] == "chunk.done"]
    assert [e["chunk"] for e in done] == list(range(len(done)))
    max_lag = max(e["lag_seconds"] for e in done)
    assert max_lag < FAULTS.breaker_failures * FAULTS.request_deadline + 4.0, max_lag
    # Captions never waited for the LLM.
    assert any(e["type"] == "caption" and paused <= t <= resumed for t, e in arrivals)

    assert readiness["status"] == 200 and readiness["llm"] is False, readiness
    assert readiness["seconds"] < 3.0, readiness

    # Every chunk still got exactly one commit; the stalled ones are empty or partial.
    covered = Counter(
        chunk
        for e in events
        if e["type"] == "translation.commit"
        for chunk in range(e["first_chunk"], e["chunk"] + 1)
    )
    assert set(covered) == {e["chunk"] for e in done} and set(covered.values()) == {1}
    stalled_commits = [
        e for t, e in arrivals if e["type"] == "translation.commit" and paused < t <= resumed
    ]
    assert stalled_commits and all(not e["text"] for e in stalled_commits[1:])

    # The breaker stopped sending requests into the stall: at most its threshold,
    # then one probe per reset period (each new attempt is a new connection, as a
    # timed-out stream is closed), far fewer than the turns that failed meanwhile.
    probes_at_most = 1 + int(STALL_SECONDS / FAULTS.breaker_reset_seconds)
    assert connections["during"] <= FAULTS.breaker_failures + probes_at_most
    stalled_chunks = sum(e["chunk"] - e["first_chunk"] + 1 for e in stalled_commits)
    assert connections["during"] < stalled_chunks, (connections, stalled_chunks)

    # Translation came back by itself: within one capped breaker reset, one
    # deadline and the lag built up meanwhile.
    recovery = back - resumed
    assert recovery < FAULTS.breaker_reset_max_seconds + FAULTS.request_deadline + max_lag + 2.0
    chunks_to_recover = sum(1 for t in done_times if resumed < t <= back)
    record(
        FaultRecord(
            fault="LLM network stall",
            injected=(
                "TCP proxy between gateway and vLLM stops forwarding both ways, "
                "connections kept open (request_deadline 2 s, breaker 3 failures, reset 1-3 s)"
            ),
            duration_s=STALL_SECONDS,
            client_saw=sorted({*codes, "empty translation.commit"}),
            recovery_s=round(recovery, 2),
            audio_not_done_s=audio_not_done(events),
            notes=(
                f"captions and chunk.done went on (max gap {max(gaps):.1f} s, max lag "
                f"{max_lag:.1f} s); {connections['during']} requests reached the network for "
                f"{stalled_chunks} stalled chunks; translated again "
                f"{chunks_to_recover} chunk(s) after resume"
            ),
            test="tests/reliability/test_faults_llm.py",
        )
    )
