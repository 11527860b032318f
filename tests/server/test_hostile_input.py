"""Regressions of issue 22 (second reliability round): hostile strings, types and sizes.

Each case once ended in a 1011 / 1006 close, a 500, or a traceback in the log; each now gets
a stable error code and a documented close. A real gateway on loopback, a real WebSocket.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from server.session import close_reason
from tests.support.live_server import LiveServer, start_server
from tests.support.ws import Transcript, exchange, read_all, start_message

CSV = "en,de\nneural network,neuronales Netz\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(
        tmp_path_factory.mktemp("hostile"),
        env={
            "RASST_CAPTIONS": "false",
            "RASST_SPEECH_WORKERS": "1",
            "RASST_IDLE_TIMEOUT_SECONDS": "3",
            "RASST_RESUME_GRACE_SECONDS": "1",
        },
    )
    yield server
    server.stop()


@pytest.fixture
async def http(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as client:
        yield client


def _assert_fatal(transcript: Transcript, code: str, close_code: int) -> dict:
    errors = transcript.of_type("error")
    assert errors, transcript.events
    assert errors[-1]["code"] == code and errors[-1]["fatal"] is True
    assert transcript.events[-1]["type"] == "session.summary"
    assert transcript.close_code == close_code, transcript.close_code
    return errors[-1]


# -- item 2: lone surrogates (the JSON escape "\ud800") -------------------------------


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (start_message(api_key="\ud800"), "api_key"),
        (start_message(api_key="key\udfff"), "api_key"),
        (start_message(glossary_ids=["\ud800"]), "glossary_ids.0"),
        (start_message(client="\udc80"), "client"),
        (start_message(audio={"encoding": "\ud800"}), "audio.encoding"),
        (json.dumps({"type": "session.resume", "resume_token": "\ud800"}), "resume_token"),
        (
            json.dumps({"type": "session.resume", "resume_token": "t", "api_key": "\ud800"}),
            "api_key",
        ),
    ],
)
async def test_lone_surrogate_strings_are_bad_message_not_internal_error(
    server: LiveServer, message: str, field: str
) -> None:
    transcript = await exchange(server.ws_url, message, within=20)
    error = _assert_fatal(transcript, "bad_message", 1007)
    assert field in error["message"]


# -- item 3: close reasons are cut in bytes -------------------------------------------


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (json.dumps({"type": "é" * 40}), "unknown_event"),
        (json.dumps({"type": "€" * 64}), "unknown_event"),
        (json.dumps({"type": "😀" * 64}), "unknown_event"),
        (start_message(glossary_ids=["é" * 64]), "glossary_not_found"),
        (start_message(glossary_ids=["語" * 64]), "glossary_not_found"),
    ],
)
async def test_non_ascii_error_messages_close_with_their_code(
    server: LiveServer, message: str, code: str
) -> None:
    transcript = await exchange(server.ws_url, message, within=20)
    # Before the fix: the close reason was cut at 120 characters (> 123 bytes), the close
    # failed silently and the client saw 1006.
    _assert_fatal(transcript, code, 1008)


@pytest.mark.parametrize("char", ["a", "é", "€", "😀"])
def test_close_reason_fits_a_close_frame(char: str) -> None:
    for length in range(0, 140):
        reason = close_reason(char * length)
        assert len(reason.encode()) <= 123
        assert (char * length).startswith(reason)
        assert len(reason.encode()) > 123 - len(char.encode()) or reason == char * length
    assert close_reason("\ud800" * 3) == "???"


# -- item 7: integers are strict -------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (start_message(lm="2"), "lm"),
        (start_message(lm=True), "lm"),
        (start_message(lm=2.0), "lm"),
        (start_message(audio={"sample_rate": "16000"}), "audio.sample_rate"),
        (start_message(audio={"channels": "1"}), "audio.channels"),
        (start_message(audio={"channels": True}), "audio.channels"),
        (start_message(protocol_version=True), "protocol_version"),
        (start_message(protocol_version="1"), "protocol_version"),
        (json.dumps({"type": "session.resume", "resume_token": "t", "last_seq": "0"}), "last_seq"),
        (
            json.dumps({"type": "session.resume", "resume_token": "t", "protocol_version": True}),
            "protocol_version",
        ),
    ],
)
async def test_integer_fields_refuse_strings_and_booleans(
    server: LiveServer, message: str, field: str
) -> None:
    transcript = await exchange(server.ws_url, message, within=20)
    error = _assert_fatal(transcript, "bad_message", 1007)
    assert f": {field}: " in error["message"]
    assert any(p["loc"] == field for p in error["detail"])


async def test_integer_fields_still_take_integers(server: LiveServer) -> None:
    transcript = await exchange(
        server.ws_url,
        start_message(lm=1, protocol_version=1, audio={"sample_rate": 16000, "channels": 1}),
        b"\x00\x00" * 1600,
        json.dumps({"type": "session.end"}),
        within=30,
    )
    assert transcript.events[0]["type"] == "session.started"
    assert transcript.events[-1]["reason"] == "completed"


# -- item 4: If-Match with non-ASCII digits ----------------------------------------------


@pytest.mark.parametrize("value", ["²", "¹", "³", '"²"', 'W/"³"', "1²"])
async def test_if_match_with_non_ascii_digits_is_412_not_500(
    http: httpx.AsyncClient, value: str
) -> None:
    created = await http.post("/v1/glossaries", files={"file": ("t.csv", CSV, "text/csv")})
    assert created.status_code == 201, created.text
    gid = created.json()["id"]
    # Header bytes are Latin-1 on the wire; the server decodes them back to "²".
    if_match = value.encode("latin-1")
    responses = [
        await http.patch(
            f"/v1/glossaries/{gid}", json={"name": "renamed"}, headers={"If-Match": if_match}
        ),
        await http.put(
            f"/v1/glossaries/{gid}",
            files={"file": ("t.csv", CSV, "text/csv")},
            headers={"If-Match": if_match},
        ),
        await http.delete(f"/v1/glossaries/{gid}", headers={"If-Match": if_match}),
    ]
    for response in responses:
        assert response.status_code == 412, (response.request.method, response.text)
        assert response.json()["error"]["code"] == "precondition_failed"
    # The glossary is untouched and the ASCII ETag still works.
    current = await http.get(f"/v1/glossaries/{gid}")
    assert current.json()["name"] != "renamed"
    assert (
        await http.delete(f"/v1/glossaries/{gid}", headers={"If-Match": '"1"'})
    ).status_code == 204


# -- item 5: a client that hangs up mid-upload ------------------------------------------


def _hang_up_mid_upload(server: LiveServer, method: str, path: str, body: bytes) -> None:
    boundary = "b0undary"
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(body) + 100_000}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(head + body)
        time.sleep(0.3)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/glossaries"),
        ("PUT", "/v1/glossaries/{gid}"),
        ("POST", "/v1/glossaries/extract"),
    ],
)
async def test_hanging_up_mid_upload_logs_no_traceback(
    server: LiveServer, http: httpx.AsyncClient, method: str, path: str
) -> None:
    created = await http.post("/v1/glossaries", files={"file": ("t.csv", CSV, "text/csv")})
    gid = created.json()["id"]
    before = len(server.log())
    part = (
        b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="t.csv"\r\n'
        b"Content-Type: text/csv\r\n\r\nen,de\n" + b"x,y\n" * 500
    )
    await asyncio.to_thread(_hang_up_mid_upload, server, method, path.format(gid=gid), part)
    # The server is fine and the glossary untouched.
    assert (await http.get(f"/v1/glossaries/{gid}")).json()["version"] == 1
    await asyncio.sleep(0.5)
    log = server.log()[before:]
    assert "Traceback" not in log and "Exception in ASGI application" not in log, log


# -- item 8: messages over the transport limit, item 5: text frames that are not UTF-8 ----

TRANSPORT_LIMIT = 4 * 1024 * 1024
SILENCE = b"\x00\x00" * 1600


async def _send_and_read(server: LiveServer, *messages: str | bytes | list[str]) -> Transcript:
    transcript = Transcript()
    async with connect(server.ws_url, max_size=2**22, close_timeout=5) as ws:
        for message in messages:
            try:
                if isinstance(message, list):
                    await ws.send(message)
                elif isinstance(message, bytes) and message.startswith(b"\xff"):
                    await ws.send(message, text=True)  # bytes the client does not check
                else:
                    await ws.send(message)
            except ConnectionClosed:
                break
        return await read_all(ws, transcript, within=20)


@pytest.mark.parametrize(
    "messages",
    [
        [start_message(), SILENCE, b"\x00" * (TRANSPORT_LIMIT + 2)],
        [start_message(), SILENCE, b"\x00" * (5 * TRANSPORT_LIMIT)],
        ["x" * (TRANSPORT_LIMIT + 1)],
        [start_message(), ["y" * (1024 * 1024)] * 5],
    ],
    ids=["audio-over-limit", "audio-5x-limit", "text-first", "fragmented-text"],
)
async def test_message_over_the_transport_limit_ends_with_frame_too_large(
    server: LiveServer, messages: list
) -> None:
    started = time.monotonic()
    transcript = await _send_and_read(server, *messages)
    # Before the fix: a bare close 1009 from the WebSocket layer, no event.
    _assert_fatal(transcript, "frame_too_large", 1009)
    assert time.monotonic() - started < 10
    assert "Traceback" not in server.log()


@pytest.mark.parametrize(
    "messages",
    [
        [b"\xff\xfe not utf-8"],
        [start_message(), SILENCE, b"\xff\xc3\x28"],
    ],
    ids=["first", "midstream"],
)
async def test_text_frame_that_is_not_utf8_is_bad_message_without_a_traceback(
    server: LiveServer, messages: list
) -> None:
    before = len(server.log())
    transcript = await _send_and_read(server, *messages)
    error = _assert_fatal(transcript, "bad_message", 1007)
    assert "UTF-8" in error["message"]
    await asyncio.sleep(0.3)
    log = server.log()[before:]
    assert "Traceback" not in log and " ERROR " not in log, log


async def test_the_gateway_is_idle_after_the_hostile_inputs(http: httpx.AsyncClient) -> None:
    # Sessions dropped above wait out the 1 s resume grace.
    for _ in range(50):
        sessions = (await http.get("/readyz")).json()["sessions"]
        if not sessions:
            break
        await asyncio.sleep(0.2)
    assert sessions == 0
