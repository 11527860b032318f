"""The official OpenAI Python client's transcription call against a real gateway."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from tests.support.live_server import SAMPLE, TWO_CITIES, LiveServer


def _client(server: LiveServer) -> OpenAI:
    return OpenAI(api_key="any-key", base_url=f"{server.http_url}/v1", max_retries=0)


def test_openai_client_verbose_json(gateway: LiveServer) -> None:
    with SAMPLE.open("rb") as audio, _client(gateway) as client:
        result = client.audio.transcriptions.create(
            model="whisper-1", file=audio, response_format="verbose_json", language="en"
        )
    assert "best of times" in result.text.lower() and "worst of times" in result.text.lower()
    assert result.duration == pytest.approx(6.4, abs=0.05)
    assert result.segments and result.segments[0].start >= 0
    assert result.segments[-1].end <= 6.45
    extras = result.model_extra["rasst"]  # type: ignore[index]
    assert extras["translations"] == {} and extras["session_id"]
    # Faster than real time (no pacing for batch work), with a wide margin for slow CI.
    assert extras["wall_seconds"] < 60


def test_openai_client_srt_with_translation(translating_gateway: LiveServer) -> None:
    with SAMPLE.open("rb") as audio, _client(translating_gateway) as client:
        srt = client.audio.transcriptions.create(
            model="whisper-1",
            file=audio,
            response_format="srt",
            extra_body={"target_language": ["de"]},
        )
    assert isinstance(srt, str)
    assert "00:00:0" in srt and "-->" in srt
    assert "Wort" in srt  # the canned translation, not the English captions
    assert "times" not in srt


def test_translation_without_translator_is_a_clear_error(gateway: LiveServer) -> None:
    response = httpx.post(
        f"{gateway.http_url}/v1/audio/transcriptions",
        files={"file": ("talk.wav", SAMPLE.read_bytes(), "audio/wav")},
        data={"target_language": "de"},
        timeout=30,
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_failed" and "--llm-url" in error["message"]
    assert error["message"].startswith("target_language")


def test_not_a_wav_file_is_415(gateway: LiveServer, tmp_path: Path) -> None:
    response = httpx.post(
        f"{gateway.http_url}/v1/audio/transcriptions",
        files={"file": ("talk.mp3", b"ID3\x03\x00not a wav", "audio/mpeg")},
        timeout=30,
    )
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_format"
    assert "ffmpeg" in response.json()["error"]["message"]


def test_openai_client_streaming_transcription(gateway: LiveServer) -> None:
    """stream=True: text deltas as the job goes, then the whole text (plus RASST's progress)."""
    with SAMPLE.open("rb") as audio, _client(gateway) as client:
        stream = client.audio.transcriptions.create(
            model="gpt-4o-transcribe", file=audio, stream=True
        )
        events = list(stream)
    kinds = [e.type for e in events]
    assert "transcript.text.delta" in kinds and kinds[-1] == "transcript.text.done"
    assert kinds.index("rasst.progress") < kinds.index("transcript.text.done")
    deltas = "".join(e.delta for e in events if e.type == "transcript.text.delta")
    assert deltas.strip() == events[-1].text
    assert "worst of times" in events[-1].text.lower()


def test_a_client_that_hangs_up_ends_the_batch_job(gateway: LiveServer) -> None:
    """The 44 s recording: leave after the first progress event; the session slot is freed."""
    with (
        httpx.Client(base_url=gateway.http_url, timeout=30) as client,
        client.stream(
            "POST",
            "/v1/audio/transcriptions",
            data={"stream": "true"},
            files={"file": ("talk.wav", TWO_CITIES.read_bytes(), "audio/wav")},
        ) as response,
    ):
        assert response.status_code == 200
        first = next(line for line in response.iter_lines() if line.startswith("data: "))
        assert json.loads(first[6:])["type"] == "rasst.progress"
        assert client.get("/readyz").json()["sessions"] == 1
    deadline = time.monotonic() + 20
    while client_sessions(gateway) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert client_sessions(gateway) == 0


def client_sessions(gateway: LiveServer) -> int:
    return int(httpx.get(f"{gateway.http_url}/readyz", timeout=5).json()["sessions"])
