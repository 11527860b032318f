"""Caption sinks against real HTTP receivers that check each destination's format."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import wave
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from server.client import StreamError, StreamOptions, read_wav, stream_wav
from tests.support.http_receiver import HttpReceiver
from tests.support.live_server import SAMPLE, LiveServer, free_port

YOUTUBE_BODY = re.compile(r"\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\n[^\n]+\n\Z")


@pytest.fixture
def receivers() -> Iterator[dict[str, HttpReceiver]]:
    made = {
        # An earlier stream in this meeting got to seq 41: captions go on from 42.
        "zoom": HttpReceiver(fail_first=1, get_body="41\n"),
        "youtube": HttpReceiver(),
        "webhook": HttpReceiver(),
    }
    yield made
    for receiver in made.values():
        receiver.close()


async def _stream(
    server: LiveServer, sinks: list[dict], speed: float = 4.0, wav: Path = SAMPLE
) -> list[dict]:
    options = StreamOptions(extra={"sinks": sinks})
    return [e async for e in stream_wav(server.ws_url, wav, options, speed=speed)]


def _sample_twice(path: Path) -> Path:
    """The sample, a pause, the sample again: the first caption is final mid-session."""
    rate, samples = read_wav(SAMPLE)
    pause = np.zeros(rate, dtype=np.int16)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.concatenate([samples, pause, samples]).tobytes())
    return path


async def _settle(receivers: dict[str, HttpReceiver], count: int) -> None:
    """Sinks deliver after the events: wait (bounded) for the receivers to see them."""
    async with asyncio.timeout(15):
        # The receivers run in their own threads: there is no asyncio event to wait on.
        while any(len(r.delivered()) < count for r in receivers.values()):  # noqa: ASYNC110
            await asyncio.sleep(0.1)


async def test_zoom_youtube_and_webhook_get_their_formats(
    gateway: LiveServer, receivers: dict[str, HttpReceiver]
) -> None:
    sinks = [
        {"kind": "zoom", "url": f"{receivers['zoom'].url}/closedcaption?id=42&ns=abc&signature=s"},
        {"kind": "youtube", "url": f"{receivers['youtube'].url}/closedcaption?cid=stream-key"},
        {"kind": "webhook", "url": f"{receivers['webhook'].url}/hook", "secret": "s3cret"},
    ]
    events = await _stream(gateway, sinks)
    assert events[-1]["type"] == "session.summary" and events[-1]["reason"] == "completed"
    finals = [e["text"].strip() for e in events if e["type"] == "caption" and e["final"]]
    assert finals
    await _settle(receivers, len(finals))

    zoom = receivers["zoom"]
    # The last seq came from Zoom's /closedcaption/seq (with the URL's credentials); the first
    # POST got a 500: the retry carries the same seq; then 43, 44 …
    assert zoom.gets[0].startswith("/closedcaption/seq?id=42&")
    assert zoom.requests[0].query["seq"] == zoom.requests[1].query["seq"] == ["42"]
    delivered = zoom.delivered()
    assert [int(r.query["seq"][0]) for r in delivered] == list(range(42, 42 + len(finals)))
    for request in delivered:
        assert request.query["lang"] == ["en-US"]
        assert request.query["id"] == ["42"] and request.query["signature"] == ["s"]
        assert request.headers["content-type"].startswith("text/plain")
    assert [r.body.decode() for r in delivered] == finals

    youtube = receivers["youtube"].delivered()
    assert [int(r.query["seq"][0]) for r in youtube] == list(range(1, len(finals) + 1))
    for request, text in zip(youtube, finals, strict=True):
        assert request.query["cid"] == ["stream-key"]
        body = request.body.decode()
        assert YOUTUBE_BODY.match(body), body
        assert body.splitlines()[1] == text

    hooks = receivers["webhook"].delivered()
    for request in hooks:
        digest = hmac.new(b"s3cret", request.body, hashlib.sha256).hexdigest()
        assert request.headers["x-rasst-signature"] == f"sha256={digest}"
    payloads = [json.loads(r.body) for r in hooks]
    assert [p["text"] for p in payloads if p["type"] == "caption"] == finals
    assert all(p["session_id"] == events[0]["session_id"] for p in payloads)


async def test_a_failing_sink_warns_and_the_session_completes(
    gateway: LiveServer, tmp_path: Path
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/closedcaption?id=1&signature=secret"  # nobody there
    # The first caption's retries end while the session still runs (a failure after the
    # session's end is only logged and shown by GET …/sinks).
    wav = _sample_twice(tmp_path / "twice.wav")
    events = await _stream(gateway, [{"kind": "zoom", "url": dead}], speed=2.0, wav=wav)
    summary = events[-1]
    assert summary["type"] == "session.summary" and summary["reason"] == "completed"
    warnings = [e for e in events if e["type"] == "warning" and e["code"] == "sink_failed"]
    assert warnings and "zoom sink" in warnings[0]["message"]
    assert "signature" not in warnings[0]["message"]  # the caption URL's secrets stay out


async def test_bad_sink_refuses_the_start(gateway: LiveServer) -> None:
    with pytest.raises(StreamError, match="bad_message"):
        await _stream(gateway, [{"kind": "zoom", "url": "ftp://example/cc"}])
    # German captions from a server without a translator would never come.
    options = StreamOptions(
        target_languages=["de"],
        extra={"sinks": [{"kind": "zoom", "url": "http://x/cc", "lang": "de"}]},
    )
    with pytest.raises(StreamError, match="validation_failed.*translator"):
        async for _ in stream_wav(gateway.ws_url, SAMPLE, options):
            pass


async def test_rest_attaches_a_webhook_to_a_live_session(gateway: LiveServer) -> None:
    hook = HttpReceiver()
    try:
        events: list[dict] = []
        async for event in stream_wav(gateway.ws_url, SAMPLE, StreamOptions(), speed=2.0):
            events.append(event)
            if event["type"] == "session.started":
                session = event["session_id"]
                async with httpx.AsyncClient(base_url=gateway.http_url, timeout=10) as client:
                    made = await client.post(
                        f"/v1/sessions/{session}/sinks",
                        json={"kind": "webhook", "url": f"{hook.url}/hook"},
                    )
                    assert made.status_code == 201, made.text
                    assert made.json()["target"] == hook.url.removeprefix("http://")
                    bad = await client.post(
                        f"/v1/sessions/{session}/sinks",
                        json={"kind": "webhook", "url": f"{hook.url}/x", "lang": "de"},
                    )
                    assert (
                        bad.status_code == 422 and "not produced" in bad.json()["error"]["message"]
                    )
        finals = [e for e in events if e["type"] == "caption" and e["final"]]
        await _settle({"hook": hook}, len(finals))
        async with httpx.AsyncClient(base_url=gateway.http_url, timeout=10) as client:
            listed = (await client.get(f"/v1/sessions/{session}/sinks")).json()
        assert listed[0]["delivered"] >= len(finals) and listed[0]["failed"] == 0
    finally:
        hook.close()
