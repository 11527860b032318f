"""The real gateway on loopback, real speech over a real WebSocket."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest
from websockets.asyncio.client import connect

from server.asr.wer import wer
from server.client import StreamOptions, read_wav, stream_wav
from tests.support.live_server import REPO, TWO_CITIES, LiveServer
from tests.support.ws import END, Transcript, read_all, start_message

REFERENCE = TWO_CITIES.with_suffix(".txt").read_text()


async def _stream_two_cities(server: LiveServer, speed: float, lm: int = 2) -> list[dict]:
    return [
        event
        async for event in stream_wav(server.ws_url, TWO_CITIES, StreamOptions(lm=lm), speed=speed)
    ]


def _check_sequence(events: list[dict], lm: int) -> None:
    assert events[0]["type"] == "session.started"
    assert events[-1]["type"] == "session.summary"
    assert events[-1]["reason"] == "completed"
    started = events[0]
    assert started["mode"] == "captions"
    assert started["chunk_seconds"] == pytest.approx(0.96 * lm)
    assert started["sample_rate"] == 16000

    done = [e for e in events if e["type"] == "chunk.done"]
    duration = 1420016 / 2 / 16000  # the WAV's audio seconds (44-byte header aside)
    expected_chunks = int(np.ceil((duration - 0.003) / (0.96 * lm)))
    assert [e["chunk"] for e in done] == list(range(expected_chunks))
    for event in done:
        assert event["start"] == pytest.approx(event["chunk"] * 0.96 * lm, abs=1e-3)
        assert event["end"] - event["start"] <= 0.96 * lm + 1e-3
        assert (
            event["latency_ms"] >= 0 and event["processing_ms"] >= 0 and event["lag_seconds"] >= 0
        )
    assert done[-1]["end"] == pytest.approx(duration, abs=0.01)

    # Every caption arrives before its chunk is done; utterance numbers never go back.
    done_at = {e["chunk"]: i for i, e in enumerate(events) if e["type"] == "chunk.done"}
    captions = [(i, e) for i, e in enumerate(events) if e["type"] == "caption"]
    assert captions
    for position, caption in captions:
        assert position < done_at[caption["chunk"]]
        assert 0 <= caption["start"] <= caption["end"] <= duration + 0.01
    utterances = [c["utterance"] for _, c in captions]
    assert utterances == sorted(utterances)

    finals = [c for _, c in captions if c["final"]]
    assert wer(REFERENCE, " ".join(c["text"] for c in finals)) <= 0.05

    summary = events[-1]
    assert summary["chunks"] == expected_chunks
    assert summary["captions"] == len(finals)
    assert summary["audio_seconds"] == pytest.approx(duration, abs=0.01)
    assert 10 < summary["speech_seconds"] <= duration
    assert summary["errors"] == 0


async def test_real_speech_at_real_time(gateway: LiveServer) -> None:
    events = await _stream_two_cities(gateway, speed=1.0)
    _check_sequence(events, lm=2)
    # At real time the 2-core machine keeps up: the server is never far behind.
    assert events[-1]["max_lag_seconds"] < 5.0


@pytest.mark.parametrize("lm", [1, 4])
async def test_real_speech_faster_than_real_time(gateway: LiveServer, lm: int) -> None:
    events = await _stream_two_cities(gateway, speed=6.0, lm=lm)
    _check_sequence(events, lm=lm)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
async def test_other_sample_rates_are_resampled(gateway: LiveServer, rate: int) -> None:
    import soxr

    _, pcm = read_wav(TWO_CITIES)
    audio = soxr.resample(pcm[: 16000 * 6], 16000, rate).astype(np.int16)
    transcript = Transcript()
    async with connect(gateway.ws_url) as ws:
        await ws.send(start_message(audio={"sample_rate": rate}, lm=1))
        step = rate // 10
        for i in range(0, len(audio), step):
            await ws.send(audio[i : i + step].tobytes())
        await ws.send(END)
        await read_all(ws, transcript)
    started, summary = transcript.events[0], transcript.events[-1]
    assert started["input_sample_rate"] == rate
    assert summary["type"] == "session.summary"
    assert summary["audio_seconds"] == pytest.approx(6.0, abs=0.01)
    assert [e["chunk"] for e in transcript.of_type("chunk.done")] == list(range(7))
    text = " ".join(c["text"] for c in transcript.of_type("caption") if c["final"])
    reference = "It was the best of times, it was the worst of times, it was the age of wisdom"
    assert wer(reference, text) <= 0.2, text


def test_cli_stream_json_prints_events_and_exits_zero(gateway: LiveServer) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "server.cli",
            "stream",
            str(TWO_CITIES),
            "--to",
            "de",
            "--server",
            gateway.http_url,
            "--speed",
            "6",
            "--json",
            "--lm",
            "4",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[0]["type"] == "session.started"
    assert events[0]["target_languages"] == ["de"]
    assert events[-1]["type"] == "session.summary"
    assert any(e["type"] == "caption" and e["final"] for e in events)


def test_cli_stream_human_output(gateway: LiveServer) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "server.cli",
            "stream",
            str(TWO_CITIES),
            "--server",
            gateway.http_url,
            "--speed",
            "6",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert "wisdom" in result.stdout
    assert "done:" in result.stderr


async def test_health_readiness_and_metrics(gateway: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=gateway.http_url, timeout=10) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        ready = (await http.get("/readyz")).json()
        assert ready["status"] == "ready"
        await _stream_two_cities_short(gateway)
        text = (await http.get("/metrics")).text
    for name in (
        "rasst_sessions_active",
        'rasst_sessions_total{reason="completed"}',
        "rasst_audio_seconds_total",
        "rasst_chunk_processing_seconds_bucket",
        "rasst_chunk_latency_seconds_count",
        "rasst_session_lag_seconds_bucket",
    ):
        assert name in text, name
    audio_line = next(
        line for line in text.splitlines() if line.startswith("rasst_audio_seconds_total")
    )
    assert float(audio_line.split()[-1]) >= 3.0


async def _stream_two_cities_short(server: LiveServer) -> None:
    _, pcm = read_wav(TWO_CITIES)
    async with connect(server.ws_url) as ws:
        await ws.send(start_message(lm=1))
        for i in range(0, 16000 * 3, 1600):
            await ws.send(pcm[i : i + 1600].tobytes())
        await ws.send(END)
        transcript = await read_all(ws, Transcript())
    assert transcript.events[-1]["type"] == "session.summary"


def test_serve_reads_its_settings_from_the_environment(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from tests.support.live_server import free_port

    port = free_port()
    log = tmp_path_factory.mktemp("envserve") / "log.txt"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve"],
            cwd=REPO,
            env={
                **os.environ,
                "RASST_PORT": str(port),
                "RASST_LOG_JSON": "true",
                "RASST_DATA_DIR": str(log.parent),
                "RASST_SPEECH_WORKERS": "1",
            },
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise AssertionError(log.read_text())
    finally:
        process.terminate()
        process.wait(30)
    lines = [line for line in log.read_text().splitlines() if line.startswith("{")]
    assert lines, "RASST_LOG_JSON=true must give JSON logs"
    assert all("color_message" not in json.loads(line) for line in lines)
