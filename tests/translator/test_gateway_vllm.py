"""End to end: the real gateway (``rasst serve --llm-url``) over a real WebSocket,
translating with a real vLLM (tiny random Qwen3-Omni on the CPU).

Assert on protocol and counts, never on the random model's words.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from server.client import RasstStream, StreamOptions, read_wav, stream_wav
from tests.reliability.faults import FaultRecord, audio_not_done, record
from tests.support.live_server import TWO_CITIES, LiveServer, start_server
from tests.support.vllm_server import VllmServer

pytestmark = [pytest.mark.vllm, pytest.mark.slow, pytest.mark.timeout(900)]

LANGS = ("zh", "de")


@pytest.fixture
def llm_gateway(vllm: VllmServer, tmp_path: Path) -> Iterator[LiveServer]:
    server = start_server(
        tmp_path,
        "--llm-url",
        vllm.url,
        "--llm-model",
        vllm.name,
        "--max-pace",
        "8",
        ready_timeout=120,
    )
    try:
        yield server
    finally:
        server.stop()


async def _send_real_time(stream: RasstStream, samples: Any, rate: int) -> None:
    """One pass over the file in 0.1 s frames at real time, without ending the session."""
    frame = rate // 10
    started = time.monotonic()
    for sent, offset in enumerate(range(0, len(samples), frame)):
        await stream.send_audio(samples[offset : offset + frame].tobytes())
        await asyncio.sleep(max(0.0, started + (sent + 1) * 0.1 - time.monotonic()))


async def test_every_chunk_gets_deltas_and_one_commit_per_language(
    llm_gateway: LiveServer,
) -> None:
    options = StreamOptions(target_languages=LANGS, lm=2)
    events: list[dict[str, Any]] = []
    async with asyncio.timeout(600):
        async for event in stream_wav(llm_gateway.ws_url, TWO_CITIES, options, speed=4.0):
            events.append(event)
    started = events[0]
    assert started["type"] == "session.started"
    assert started["mode"] == "translation", "the gateway must translate when --llm-url is set"
    assert events[-1]["type"] == "session.summary"
    assert events[-1]["reason"] == "completed"

    done = [e["chunk"] for e in events if e["type"] == "chunk.done"]
    assert done == sorted(done) and len(done) >= 20  # 44 s at 1.92 s per chunk
    # Every chunk is covered by exactly one commit per language; at 4x real time the
    # server may merge queued chunks into one turn to catch up (first_chunk < chunk).
    covered = Counter(
        (chunk, e["lang"])
        for e in events
        if e["type"] == "translation.commit"
        for chunk in range(e["first_chunk"], e["chunk"] + 1)
    )
    assert set(covered) == {(chunk, lang) for chunk in done for lang in LANGS}
    assert set(covered.values()) == {1}, "exactly one commit per chunk and language"
    commits = [e for e in events if e["type"] == "translation.commit"]
    assert all(e["start"] == pytest.approx(e["first_chunk"] * 1.92) for e in commits)
    translated = {(e["chunk"], e["lang"]) for e in commits if e["text"]}
    assert len(translated) >= len(commits) // 2, "speech chunks were translated (not empty commits)"
    deltas = {(e["chunk"], e["lang"]) for e in events if e["type"] == "translation.delta"}
    assert translated <= deltas, "every non-empty commit was streamed as deltas first"
    for event in events:
        if event["type"] in ("translation.delta", "translation.commit"):
            text = event.get("text", "") + event.get("delta", "")
            assert "<t>" not in text and "</t>" not in text
    assert not [e for e in events if e["type"] == "error"]
    # Streaming at 4x real time may make the server lag; the LLM must never fail.
    assert not [e for e in events if e["type"] == "warning" and e["code"] != "lagging"]


async def test_killing_vllm_mid_session_warns_and_translation_resumes(
    llm_gateway: LiveServer, vllm: VllmServer
) -> None:
    rate, samples = read_wav(TWO_CITIES)
    options = StreamOptions(target_languages=("zh",), lm=1, sample_rate=rate)
    events: list[dict[str, Any]] = []
    killed = asyncio.Event()
    restarted = asyncio.Event()
    resumed = asyncio.Event()
    times: dict[str, float] = {}

    async with RasstStream(llm_gateway.ws_url, options) as stream:

        async def send_until_resumed() -> None:
            # Loop the file in real time until translation is back, then end.
            while not resumed.is_set():
                await _send_real_time(stream, samples, rate)
            await stream.end()

        async def read() -> None:
            async for event in stream.events():
                events.append(event)
                commit = event["type"] == "translation.commit"
                if commit and event["text"] and not killed.is_set():
                    vllm.kill()
                    times["killed"] = time.monotonic()
                    killed.set()
                if commit and event["text"] and restarted.is_set() and not resumed.is_set():
                    times["resumed"] = time.monotonic()
                    resumed.set()

        async def restart_when_warned() -> None:
            await killed.wait()
            await asyncio.to_thread(vllm.start)
            times["restarted"] = time.monotonic()
            restarted.set()

        async with asyncio.timeout(600), asyncio.TaskGroup() as group:
            sender = group.create_task(send_until_resumed())
            group.create_task(read())
            group.create_task(restart_when_warned())
            await sender

    warnings = [e for e in events if e["type"] == "warning"]
    assert [w["code"] for w in warnings if w["code"] == "llm_unavailable"] == ["llm_unavailable"]
    kinds = Counter(e["type"] for e in events)
    assert kinds["caption"] + kinds["terms"] + kinds["chunk.done"] > 0
    # Chunks kept flowing (empty commits) during the outage.
    outage = [e for e in events if e["type"] == "translation.commit" and not e["text"]]
    assert outage
    assert resumed.is_set()
    assert events[-1]["type"] == "session.summary"
    record(
        FaultRecord(
            fault="vLLM killed",
            injected="SIGKILL of the vLLM process group mid-session, restarted at once",
            duration_s=round(times["restarted"] - times["killed"], 1),
            client_saw=["llm_unavailable", "empty translation.commit"],
            recovery_s=round(times["resumed"] - times["restarted"], 1),
            audio_not_done_s=audio_not_done(events),
            notes=(
                f"{len(outage)} chunk(s) committed empty during the outage; captions and "
                "chunk.done went on (the outage lasts vLLM's start-up)"
            ),
            test="tests/translator/test_gateway_vllm.py",
        )
    )
