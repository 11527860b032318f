"""Viewer feed and subtitle export against a real gateway (no browser needed)."""

from __future__ import annotations

import asyncio
import html
import json
import subprocess
import sys
from typing import Any

import httpx
import pytest
import srt
import webvtt
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from server.client import StreamOptions, stream_wav
from tests.support.live_server import REPO, TWO_CITIES, LiveServer

_TIMEOUT = httpx.Timeout(10.0)


def _view_url(gateway: LiveServer, token: str) -> str:
    return f"ws://127.0.0.1:{gateway.port}/v1/view/{token}"


async def _follow(url: str) -> tuple[list[dict[str, Any]], int | None]:
    """Every event a viewer receives, and the close code."""
    events: list[dict[str, Any]] = []
    async with connect(url, open_timeout=10) as ws:
        try:
            while True:
                events.append(json.loads(await ws.recv()))
        except ConnectionClosed as closed:
            return events, closed.rcvd.code if closed.rcvd else None


def _srt_cues(text: str) -> list[tuple[float, float, str]]:
    return [
        (s.start.total_seconds(), s.end.total_seconds(), s.content.replace("\n", " "))
        for s in srt.parse(text)
    ]


def _vtt_cues(text: str) -> list[tuple[float, float, str]]:
    def seconds(stamp: str) -> float:
        h, m, s = stamp.split(":")
        return int(h) * 3600 + int(m) * 60 + float(s)

    return [
        (seconds(c.start), seconds(c.end), html.unescape(c.raw_text).replace("\n", " "))
        for c in webvtt.from_string(text)
    ]


def _assert_times_increase(cues: list[tuple[float, float, str]]) -> None:
    assert cues
    for start, end, _ in cues:
        assert end > start
    for before, after in zip(cues, cues[1:], strict=False):
        assert after[0] >= before[1]


async def test_viewer_and_subtitles_follow_a_live_session_and_outlast_it(
    gateway: LiveServer,
) -> None:
    finals: list[str] = []
    started: dict[str, Any] = {}
    live_srt = ""
    viewer: asyncio.Task[tuple[list[dict[str, Any]], int | None]] | None = None
    speaker_events: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=gateway.http_url, timeout=_TIMEOUT) as http:
        options = StreamOptions(target_languages=["de"])
        async for event in stream_wav(gateway.ws_url, TWO_CITIES, options, speed=4):
            speaker_events.append(event)
            if event["type"] == "session.started":
                started = event
                viewer = asyncio.create_task(_follow(_view_url(gateway, event["viewer_token"])))
            elif event["type"] == "caption" and event["final"]:
                finals.append(event["text"])
                if len(finals) == 1:  # live: the subtitles so far
                    response = await http.get(f"/v1/sessions/{started['session_id']}/subtitles.srt")
                    assert response.status_code == 200
                    live_srt = response.text
        assert viewer is not None
        viewer_events, close_code = await asyncio.wait_for(viewer, 30)

        session, token = started["session_id"], started["viewer_token"]
        after_srt = await http.get(f"/v1/sessions/{session}/subtitles.srt", params={"lang": "en"})
        after_vtt = await http.get(f"/v1/sessions/{session}/subtitles.vtt")
        via_token = await http.get(f"/v1/view/{token}/subtitles.vtt", params={"lang": "en"})
        german = await http.get(f"/v1/view/{token}/subtitles.vtt", params={"lang": "de"})
        french = await http.get(f"/v1/view/{token}/subtitles.srt", params={"lang": "fr"})

    # The viewer saw exactly what the speaker saw (it joined after the start: the backlog
    # replays the beginning), then a normal close.
    assert close_code == 1000
    assert viewer_events == speaker_events
    assert viewer_events[-1]["type"] == "session.summary"

    # Live export: the first utterance, as a valid SRT file.
    live_cues = _srt_cues(live_srt)
    assert " ".join(text for _, _, text in live_cues) == finals[0]

    # After the end: every final caption, in order, in both formats.
    assert after_srt.headers["content-type"].startswith("application/x-subrip")
    assert after_vtt.headers["content-type"].startswith("text/vtt")
    srt_cues, vtt_cues = _srt_cues(after_srt.text), _vtt_cues(after_vtt.text)
    _assert_times_increase(srt_cues)
    assert " ".join(text for _, _, text in srt_cues) == " ".join(finals)
    assert vtt_cues == srt_cues
    assert via_token.text == after_vtt.text
    first_caption = next(e for e in speaker_events if e["type"] == "caption" and e["final"])
    assert srt_cues[0][0] == pytest.approx(first_caption["words"][0]["start"], abs=0.002)

    # Captions mode: no translation commits, so the German file is valid and empty.
    assert german.status_code == 200 and list(webvtt.from_string(german.text)) == []
    assert french.status_code == 404
    assert french.json()["error"]["detail"]["available"] == ["en", "de"]

    # The CLI downloads the same file (a subprocess, off the event loop).
    cli = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "cli.main", "subtitles", session, "--format", "srt"]
        + ["--server", gateway.http_url],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert cli.stdout == after_srt.text
    by_token = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "cli.main", "subtitles", token, "--viewer", "--format", "vtt"]
        + ["--lang", "en", "--server", gateway.http_url],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert by_token.stdout == via_token.text


async def test_unknown_sessions_and_tokens_are_not_found(gateway: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=gateway.http_url, timeout=_TIMEOUT) as http:
        for path in (
            "/v1/sessions/nope/subtitles.srt",
            "/v1/view/nope/subtitles.vtt",
            "/v1/view/nope/qr.svg",
        ):
            response = await http.get(path)
            assert response.status_code == 404
            assert response.json()["error"]["code"] == "not_found"
        assert (await http.get("/view/nope")).status_code == 404
        assert (await http.get("/v1/sessions/nope/subtitles.txt")).status_code == 422
    events, code = await _follow(_view_url(gateway, "nope"))
    assert code == 1008
    assert [(e["type"], e["code"], e["fatal"]) for e in events] == [("error", "not_found", True)]


async def test_viewers_are_read_only_and_get_a_qr_code(gateway: LiveServer) -> None:
    options = StreamOptions(target_languages=["de"])
    async for event in stream_wav(gateway.ws_url, TWO_CITIES, options, speed=4):
        assert event["type"] == "session.started"
        token = event["viewer_token"]
        async with connect(_view_url(gateway, token), open_timeout=10) as ws:
            assert json.loads(await ws.recv())["type"] == "session.started"
            await ws.send("hello")
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    event = json.loads(await ws.recv())
                    if event["type"] == "error":
                        assert event["code"] == "bad_message"
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007
        async with httpx.AsyncClient(base_url=gateway.http_url, timeout=_TIMEOUT) as http:
            qr = await http.get(f"/v1/view/{token}/qr.svg")
            page = await http.get(f"/view/{token}")
        assert qr.status_code == 200 and qr.headers["content-type"] == "image/svg+xml"
        assert qr.text.startswith("<svg")
        assert page.status_code == 200 and "viewer.js" in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
        break  # leaving the stream disconnects the speaker; the viewer test is done
