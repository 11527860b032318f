"""Fuzzing the streaming protocol against a real gateway on loopback.

A Hypothesis state machine plays a misbehaving client (valid and invalid
starts, audio of every odd shape, garbage text, pings, pauses, abrupt closes)
over one real WebSocket per example; other targets send random bytes as the
first message, as frames midstream, and as raw TCP in place of the HTTP
handshake or of WebSocket frames.

Invariants, checked on every example:

* every server text frame is a documented event (``SERVER_EVENT_ADAPTER``) and
  every ``error`` carries an ``ErrorCode``, never ``internal_error``;
* the server never closes with 1011, only with the documented close codes;
* a stream the client did not abandon ends with ``session.summary``, last,
  right after the fatal error if there is one, and the close code matches it;
* nothing hangs: every receive has a timeout;
* afterwards the gateway answers ``/healthz``, its session count returns to 0
  and a fresh, well-behaved session completes.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import struct
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any, ClassVar

import httpx
import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State
from websockets.sync.client import ClientConnection, connect

from kernel.errors import ErrorCode, ws_close_code
from server.client import read_wav
from server.protocol import SERVER_EVENT_ADAPTER, SUPPORTED_SAMPLE_RATES
from tests.reliability.fuzzing import fuzz_settings, hostile_text
from tests.support.live_server import TWO_CITIES, LiveServer, start_server

SPEECH = read_wav(TWO_CITIES)[1]
MAX_FRAME_BYTES = 32 * 1024
# The WebSocket layer's limit on one message (server/runner.py).
TRANSPORT_LIMIT = 4 * 1024 * 1024
IDLE_TIMEOUT = 3.0
RESUME_GRACE = 1.0
# How long a stream may take to end after the client said session.end (or went
# quiet): processing the audio sent so far, or the idle timeout. Longer means a hang.
FINISH_WITHIN = 30.0
DOCUMENTED_CLOSE_CODES = frozenset({1000, 1001, 1003, 1007, 1008, 1009, 1012, 1013})
END = json.dumps({"type": "session.end"})


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Default limits except short idle timeout and resume grace, and a small frame limit."""
    server = start_server(
        tmp_path_factory.mktemp("fuzz-protocol"),
        "--workers",
        "1",
        env={
            "RASST_IDLE_TIMEOUT_SECONDS": str(IDLE_TIMEOUT),
            "RASST_MAX_FRAME_BYTES": str(MAX_FRAME_BYTES),
            "RASST_RESUME_GRACE_SECONDS": str(RESUME_GRACE),
            # Hundreds of sessions a minute from one address: not what is under test.
            "RASST_RATE_LIMIT_PER_MINUTE": "0",
        },
    )
    yield server
    server.stop()


# -- one client connection with its checks ------------------------------------------------


class Conversation:
    """One WebSocket: sends what it is told, records every event and checks the stream's end."""

    def __init__(self, server: LiveServer, *, resumes_after: int | None = None) -> None:
        # For a connection that sends session.resume: the last_seq it sends.
        self.resumes_after = resumes_after
        self._exit = contextlib.ExitStack()
        self.ws: ClientConnection = self._exit.enter_context(
            connect(
                server.ws_url, max_size=2**22, open_timeout=10, close_timeout=5, ping_interval=None
            )
        )
        self.events: list[dict[str, Any]] = []
        # The client hung up first: the server owes it nothing more.
        self.client_closed = False
        # The client broke RFC 6455 itself (a text frame that is not UTF-8): the stream
        # still ends explicitly (bad_message, summary, 1007); counted apart in ENDINGS.
        self.broke_framing = False
        # Another connection resumed this one's session, which closes this one (1000).
        self.superseded = False

    @property
    def open(self) -> bool:
        return not self.client_closed and self.ws.state is State.OPEN

    def send(self, message: str | bytes, *, text: bool | None = None) -> None:
        # ConnectionClosed: the server ended the stream first; finish() checks how.
        with contextlib.suppress(ConnectionClosed):
            self.ws.send(message, text=text)

    def send_fragments(self, fragments: list[str]) -> None:
        with contextlib.suppress(ConnectionClosed):
            self.ws.send(fragments)

    def read(self, wait: float) -> None:
        """Record the events that arrive within ``wait`` seconds."""
        deadline = time.monotonic() + wait
        while True:
            try:
                message = self.ws.recv(timeout=max(0.0, deadline - time.monotonic()))
            except (TimeoutError, ConnectionClosed):
                return
            self._record(message)

    def _record(self, message: str | bytes) -> None:
        assert isinstance(message, str), f"the server sent a binary frame: {message[:64]!r}"
        event = json.loads(message)
        SERVER_EVENT_ADAPTER.validate_python(event)  # a documented event, or this fails
        if event["type"] in ("error", "warning"):
            # Warnings share the stable codes (``Warning_.code`` is a plain string).
            assert ErrorCode(event["code"]) is not ErrorCode.INTERNAL_ERROR, event
        self.events.append(event)

    def close(self) -> None:
        self.client_closed = True
        self.ws.close()

    def abort(self) -> None:
        """Drop the TCP connection without a close handshake (RST)."""
        self.client_closed = True
        sock = self.ws.socket
        with contextlib.suppress(OSError):  # the server may have closed it a moment ago
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.shutdown(socket.SHUT_RDWR)
        self.ws.wait_closed(5)

    def finish(self) -> None:
        """Say session.end (unless gone), read until the server closes, check the stream."""
        with self._exit:
            self._finish()

    @property
    def resume_token(self) -> str | None:
        started = [e for e in self.events if e["type"] == "session.started"]
        return started[0]["resume_token"] if started else None

    @property
    def last_seq(self) -> int:
        return max((e["seq"] for e in self.events), default=0)

    def _finish(self) -> None:
        if self.superseded:
            self.read(1.0)
            assert self.ws.wait_closed(10), "a superseded connection stayed open"
            self.check()
            return
        if self.client_closed:
            assert self.ws.wait_closed(10), "the client's own close did not complete"
            self.check()
            return
        self.send(END)
        deadline = time.monotonic() + FINISH_WITHIN
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no close within {FINISH_WITHIN} s: {self.types}"
            try:
                message = self.ws.recv(timeout=remaining)
            except TimeoutError:
                continue  # the assert above fails next
            except ConnectionClosed:
                break
            self._record(message)
        assert self.ws.wait_closed(10)
        self.check()

    @property
    def types(self) -> list[str]:
        return [e["type"] for e in self.events]

    def check(self) -> None:
        types = self.types
        received = self.ws.protocol.close_rcvd
        close = received.code if received is not None else None
        numbered = [e["seq"] for e in self.events if e["type"] != "session.resumed"]
        assert numbered == sorted(set(numbered)), f"seq out of order: {numbered}"
        assert types.count("session.started") <= 1, types
        assert types.count("session.summary") <= 1, types
        if "session.summary" in types:
            assert types[-1] == "session.summary", types
        assert close != 1011, (close, types)
        if self.resumes_after is None:
            assert "session.started" not in types[1:], types
            assert "session.resumed" not in types, types
        elif types[:1] == ["session.resumed"]:
            assert all(seq > self.resumes_after for seq in numbered), (self.resumes_after, numbered)
            assert types.count("session.resumed") == 1, types
        if self.client_closed or self.superseded:
            return
        # Every stream the client did not abandon ends explicitly.
        assert types and types[-1] == "session.summary", (close, types)
        assert close in DOCUMENTED_CLOSE_CODES, (close, types)
        summary = self.events[-1]
        fatal = [e for e in self.events if e["type"] == "error" and e["fatal"]]
        if fatal:
            assert len(fatal) == 1, fatal
            assert self.events[-2] == fatal[0], types
            assert summary["reason"] in ("error", "shutdown"), summary
            assert close == ws_close_code(ErrorCode(fatal[0]["code"])), (close, fatal)
        else:
            assert summary["reason"] == "completed", summary
            assert close == 1000, (close, types)


def _sessions_open(server: LiveServer) -> int:
    return int(httpx.get(f"{server.http_url}/readyz", timeout=5).json()["sessions"])


def assert_gateway_healthy(
    server: LiveServer, *, fresh_session: bool = True, settle: bool = True
) -> None:
    """The process lives and answers; with ``settle``, every session is freed (a dropped one
    after the resume grace); with ``fresh_session``, a normal stream still completes."""
    assert server.process.poll() is None, f"the gateway died:\n{server.log()[-4000:]}"
    assert httpx.get(f"{server.http_url}/healthz", timeout=5).status_code == 200
    if not settle:
        return
    deadline = time.monotonic() + 10
    while _sessions_open(server) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _sessions_open(server) == 0, "a session outlived its connection"
    if fresh_session:
        conversation = Conversation(server)
        conversation.send(json.dumps({"type": "session.start", "lm": 1}))
        conversation.send(SPEECH[:4000].tobytes())
        conversation.finish()
        assert conversation.types[0] == "session.started"
        assert conversation.events[-1]["reason"] == "completed"
        assert not [e for e in conversation.events if e["type"] == "error"]


# -- what a client may send ----------------------------------------------------------------

LANGS = st.sampled_from(["en", "de", "zh", "zh-CN", "ja", "fr", "pt-BR"])


def _json_containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | hostile_text(20)
    | st.sampled_from(["session.start", "session.end", "en", "pcm_s16le"]),
    _json_containers,
    max_leaves=12,
)

valid_audio = st.fixed_dictionaries(
    {},
    optional={
        "encoding": st.just("pcm_s16le"),
        "sample_rate": st.sampled_from(SUPPORTED_SAMPLE_RATES),
        "channels": st.just(1),
    },
)

valid_starts = st.fixed_dictionaries(
    {"type": st.just("session.start")},
    optional={
        "protocol_version": st.just(1),
        "source_language": LANGS,
        "target_languages": st.lists(LANGS, max_size=5),
        "glossary_ids": st.lists(hostile_text(64).filter(bool), max_size=2),
        "lm": st.integers(1, 4),
        "audio": valid_audio,
        "api_key": st.none() | hostile_text(40),
        "client": st.none() | hostile_text(200),
    },
)

START_FIELDS = [
    "protocol_version",
    "source_language",
    "target_languages",
    "glossary_ids",
    "lm",
    "audio",
    "api_key",
    "client",
]


@st.composite
def broken_starts(draw: st.DrawFn) -> dict[str, Any]:
    """A session.start with one thing wrong: a type, a value, an unknown field, a size."""
    message = dict(draw(valid_starts))
    kind = draw(
        st.sampled_from(
            ["wrong_type", "unknown_field", "huge", "version", "sample_rate", "audio", "lists"]
        )
    )
    if kind == "wrong_type":
        message[draw(st.sampled_from(START_FIELDS))] = draw(json_values)
    elif kind == "unknown_field":
        message[draw(hostile_text(20).filter(lambda k: k not in START_FIELDS))] = draw(json_values)
    elif kind == "huge":
        field = draw(st.sampled_from(["client", "api_key", "source_language"]))
        message[field] = "x" * draw(st.integers(200, 300_000))
    elif kind == "version":
        message["protocol_version"] = draw(
            st.integers().filter(lambda v: v != 1) | st.sampled_from([1.5, "1", "one", 2**70])
        )
    elif kind == "sample_rate":
        message["audio"] = {
            "sample_rate": draw(
                st.integers().filter(lambda r: r not in SUPPORTED_SAMPLE_RATES)
                | st.sampled_from([16000.0, 16000.5, "16000", 2**70, -16000, 0])
            )
        }
    elif kind == "audio":
        message["audio"] = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "encoding": st.sampled_from(["mp3", "opus", "PCM_S16LE", ""]) | hostile_text(),
                    "channels": st.integers(-2, 8),
                    "sample_rate": st.sampled_from(SUPPORTED_SAMPLE_RATES),
                },
            )
            | json_values
        )
    else:
        message[draw(st.sampled_from(["target_languages", "glossary_ids"]))] = draw(
            st.lists(hostile_text(70), min_size=0, max_size=40)
        )
    return message


start_messages = st.one_of(valid_starts, broken_starts()).map(json.dumps)

# session.resume with tokens no server issued (valid resumes are a state machine rule).
stray_resumes = st.fixed_dictionaries(
    {"type": st.just("session.resume")},
    optional={
        "resume_token": hostile_text(130) | json_values,
        "last_seq": st.integers() | json_values,
        "protocol_version": st.integers(0, 2),
        "api_key": st.none() | hostile_text(40),
    },
).map(json.dumps)

# Nesting deeper than the JSON parser's recursion limit.
deep_json = st.integers(1_000, 100_000).flatmap(
    lambda depth: st.sampled_from(["[" * depth, '{"a":' * depth, "[" * depth + "]" * depth])
)

garbage_text = st.one_of(
    st.text(max_size=200),
    json_values.map(json.dumps),
    st.dictionaries(hostile_text(12), json_values, max_size=4).flatmap(
        lambda extra: (
            st.sampled_from(
                ["session.start", "session.end", "session.resume", "session.pause", "", "x" * 100]
            )
            | hostile_text(70)
        ).map(lambda kind: json.dumps({**extra, "type": kind}))
    ),
    stray_resumes,
    deep_json,
)


@st.composite
def pcm_frames(draw: st.DrawFn) -> bytes:
    """Whole 16-bit samples: speech, silence or noise, 0 to 16000 of them."""
    samples = draw(st.integers(0, 16000))
    kind = draw(st.sampled_from(["speech", "silence", "noise", "extreme"]))
    if kind == "speech":
        offset = draw(st.integers(0, len(SPEECH) - samples))
        return bytes(SPEECH[offset : offset + samples].tobytes())
    if kind == "silence":
        return bytes(2 * samples)
    if kind == "extreme":
        return np.resize(np.array([32767, -32768], np.int16), samples).tobytes()
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return rng.integers(-32768, 32768, samples, dtype=np.int16).tobytes()


any_frame = st.one_of(
    pcm_frames(),
    st.binary(max_size=4096),
    garbage_text,
    start_messages,
    st.just(END),
)


# -- the state machine -----------------------------------------------------------------------


class ClientBehaviours(RuleBasedStateMachine):
    """One session per example; each rule is something a real client might do.

    The session lives on one connection until the client resumes it on another
    (after dropping the first, or while the first is still open).
    """

    server: ClassVar[LiveServer | None] = None

    def __init__(self) -> None:
        super().__init__()
        assert self.server is not None
        self.conversation = Conversation(self.server)
        self.history = [self.conversation]

    @initialize(
        first=st.one_of(
            # No glossary_ids: none exists on this gateway (glossary_not_found).
            valid_starts.map(lambda m: json.dumps({**m, "glossary_ids": []})),
            valid_starts.map(lambda m: json.dumps({**m, "glossary_ids": [], "lm": 1})),
            start_messages,
            st.none(),
        )
    )
    def open_the_session(self, first: str | None) -> None:
        """Mostly a valid start, so that the rules exercise a running session."""
        if first is not None:
            self.conversation.send(first)

    def _is_open(self) -> bool:
        # Only what the client did, never what the server did: preconditions must give the
        # same rules when Hypothesis replays an example. (Sending to a connection the server
        # closed is a no-op.)
        return not self.conversation.client_closed

    @precondition(_is_open)
    @rule(message=start_messages)
    def send_start(self, message: str) -> None:
        self.conversation.send(message)

    @precondition(_is_open)
    @rule(frame=pcm_frames())
    def send_audio(self, frame: bytes) -> None:
        self.conversation.send(frame)

    @precondition(_is_open)
    @rule(samples=st.integers(0, 8000))
    def send_odd_frame(self, samples: int) -> None:
        self.conversation.send(bytes(2 * samples + 1))

    @precondition(_is_open)
    @rule()
    def send_empty_frame(self) -> None:
        self.conversation.send(b"")

    @precondition(_is_open)
    @rule(extra=st.integers(1, 4096))
    def send_oversize_frame(self, extra: int) -> None:
        self.conversation.send(bytes(MAX_FRAME_BYTES + 2 * extra))

    @precondition(_is_open)
    @rule(extra=st.integers(1, 1 << 20), text=st.booleans())
    def send_over_the_transport_limit(self, extra: int, text: bool) -> None:
        """A message past the WebSocket layer's own limit (4 MiB): frame_too_large, 1009."""
        size = TRANSPORT_LIMIT + extra
        self.conversation.send("x" * size if text else bytes(size))

    @precondition(_is_open)
    @rule(data=st.binary(max_size=4096))
    def send_random_bytes(self, data: bytes) -> None:
        self.conversation.send(data)

    @precondition(_is_open)
    @rule(text=garbage_text)
    def send_garbage_text(self, text: str) -> None:
        self.conversation.send(text)

    @precondition(_is_open)
    @rule(
        data=st.text(min_size=1, max_size=64).map(str.encode) | st.binary(min_size=1, max_size=64)
    )
    def send_text_frame_of_raw_bytes(self, data: bytes) -> None:
        """A text frame of bytes the client library does not check: UTF-8, or not."""
        try:
            data.decode()
        except UnicodeDecodeError:
            self.conversation.broke_framing = True
        self.conversation.send(data, text=True)

    @precondition(_is_open)
    @rule(message=start_messages | st.just(END), cuts=st.lists(st.integers(0, 64), max_size=3))
    def send_fragmented_text(self, message: str, cuts: list[int]) -> None:
        bounds = sorted({min(c, len(message)) for c in cuts} | {0, len(message)})
        pieces = [message[a:b] for a, b in zip(bounds, bounds[1:], strict=False)] or [""]
        self.conversation.send_fragments(pieces)

    @precondition(_is_open)
    @rule()
    def send_end(self) -> None:
        self.conversation.send(END)

    @precondition(_is_open)
    @rule()
    def ping(self) -> None:
        try:
            pong = self.conversation.ws.ping()
        except ConnectionClosed:
            return
        assert pong.wait(5) or not self.conversation.open, "no pong within 5 s"

    @rule(seconds=st.floats(0, 0.5))
    def pause_without_reading(self, seconds: float) -> None:
        time.sleep(seconds)

    @rule(wait=st.floats(0, 0.5))
    def read_events(self, wait: float) -> None:
        self.conversation.read(wait)

    @precondition(_is_open)
    @rule(abruptly=st.booleans())
    def hang_up(self, abruptly: bool) -> None:
        """A close handshake, or a dropped TCP connection (RST)."""
        if abruptly:
            self.conversation.abort()
        else:
            self.conversation.close()

    @precondition(lambda self: len(self.history) < 3)
    @rule(back=st.integers(0, 30))
    def resume_on_a_new_connection(self, back: int) -> None:
        assert self.server is not None
        self.conversation.read(0.1)
        if self.history[0].resume_token is None and len(self.history) == 1:
            self.conversation.read(0.5)  # session.started may still be on its way
        token = self.history[0].resume_token
        last_seq = max(0, self.conversation.last_seq - back)
        if token is None:
            # Still resume (a token no server issued: resume_failed), so that the rules
            # drawn next never depend on how fast session.started arrived.
            ENDINGS["resume tried before session.started"] += 1
            token = "no-session-started-yet"
        elif self.conversation.open:
            self.conversation.superseded = True
        self.conversation = Conversation(self.server, resumes_after=last_seq)
        self.history.append(self.conversation)
        self.conversation.send(
            json.dumps({"type": "session.resume", "resume_token": token, "last_seq": last_seq})
        )

    def teardown(self) -> None:
        assert self.server is not None
        for conversation in self.history:
            conversation.finish()
        _count_endings(self.history[-1])
        assert_gateway_healthy(self.server)


# How the state machine's streams ended, printed after the run (pytest -s shows it).
ENDINGS: Counter[str] = Counter()


def _count_endings(conversation: Conversation) -> None:
    codes = [e["code"] for e in conversation.events if e["type"] == "error"]
    summary = [e["reason"] for e in conversation.events if e["type"] == "session.summary"]
    if conversation.client_closed:
        ending = "client hung up"
    elif conversation.broke_framing:
        ending = "client broke the framing (1007)"
    else:
        ending = f"summary {summary[-1]}" if summary else "no summary"
    ENDINGS[f"ended: {ending}"] += 1
    ENDINGS.update(f"error: {code}" for code in codes)
    if conversation.resumes_after is not None:
        ENDINGS["resumed connections"] += 1


def test_client_behaviours_state_machine(gateway: LiveServer) -> None:
    ClientBehaviours.server = gateway
    try:
        run_state_machine_as_test(
            ClientBehaviours, settings=fuzz_settings(20, stateful_step_count=10)
        )
    finally:
        ClientBehaviours.server = None
        print("state machine:", dict(sorted(ENDINGS.items())))


# -- random bytes ---------------------------------------------------------------------------


@fuzz_settings(40)
@given(first=st.binary(max_size=4096) | garbage_text | start_messages)
@example(first=b"")
def test_random_first_message(gateway: LiveServer, first: str | bytes) -> None:
    conversation = Conversation(gateway)
    conversation.send(first)
    conversation.finish()
    if isinstance(first, bytes):
        assert conversation.events[-2]["code"] == ErrorCode.NOT_STARTED
    assert_gateway_healthy(gateway, fresh_session=False)


@fuzz_settings(25)
@given(frames=st.lists(any_frame, max_size=6))
def test_random_frames_midstream(gateway: LiveServer, frames: list[str | bytes]) -> None:
    conversation = Conversation(gateway)
    conversation.send(json.dumps({"type": "session.start", "lm": 1}))
    for frame in frames:
        conversation.send(frame)
    conversation.finish()
    assert conversation.types[0] == "session.started"
    assert_gateway_healthy(gateway, fresh_session=False)


# -- raw TCP -------------------------------------------------------------------------------------


def _handshake(port: int, key: bytes = b"dGhlIHNhbXBsZSBub25jZQ==") -> bytes:
    return (
        b"GET /v1/stream HTTP/1.1\r\n"
        + f"Host: 127.0.0.1:{port}\r\n".encode()
        + b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
        + b"Sec-WebSocket-Key: "
        + key
        + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )


def _masked_frame(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _talk_raw(port: int, data: bytes, *, half_close: bool, read_for: float) -> bytes:
    """Send raw bytes and read what comes back until EOF or ``read_for`` seconds."""
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            return received  # the server hung up while we were still sending
        deadline = time.monotonic() + read_for
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            received += chunk
    return received


def _assert_no_server_error(response: bytes) -> None:
    if response.startswith(b"HTTP/"):
        status = response.split(b" ", 2)[1]
        assert not status.startswith(b"5"), response[:300]


@st.composite
def mutated_handshakes(draw: st.DrawFn) -> bytes:
    """The WebSocket upgrade request with lines dropped, duplicated, garbled or oversized."""
    lines = _handshake(0, draw(st.sampled_from([b"x", b"", b"dGhlIHNhbXBsZSBub25jZQ=="]))).split(
        b"\r\n"
    )
    for _ in range(draw(st.integers(1, 3))):
        index = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["drop", "dup", "garble", "huge", "version"]))
        if action == "drop":
            lines.pop(index)
        elif action == "dup":
            lines.insert(index, lines[index])
        elif action == "garble":
            lines[index] = draw(st.binary(max_size=80))
        elif action == "huge":
            lines.insert(index, b"X-Fuzz: " + b"a" * draw(st.integers(1000, 100_000)))
        else:
            lines[index] = b"Sec-WebSocket-Version: " + str(draw(st.integers(-1, 99))).encode()
        if not lines:
            lines = [b""]
    return b"\r\n".join(lines)


@fuzz_settings(30)
@given(data=st.binary(max_size=4096) | mutated_handshakes())
@example(data=b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n")
@example(data=b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a TLS ClientHello
def test_garbage_instead_of_the_handshake(gateway: LiveServer, data: bytes) -> None:
    _assert_no_server_error(_talk_raw(gateway.port, data, half_close=True, read_for=2.0))
    assert_gateway_healthy(gateway, fresh_session=False)


@fuzz_settings(20)
@given(
    started=st.booleans(),
    garbage=st.binary(min_size=1, max_size=4096),
    frames=st.lists(
        st.tuples(
            st.sampled_from([0x0, 0x1, 0x2, 0x3, 0x8, 0x9, 0xA, 0xF]), st.binary(max_size=300)
        ),
        max_size=3,
    ),
)
def test_garbage_frames_after_the_handshake(
    gateway: LiveServer, started: bool, garbage: bytes, frames: list[tuple[int, bytes]]
) -> None:
    key = base64.b64encode(os.urandom(16))
    data = _handshake(gateway.port, key)
    if started:
        data += _masked_frame(0x1, json.dumps({"type": "session.start"}).encode())
    data += b"".join(_masked_frame(op, payload) for op, payload in frames) + garbage
    # Garbage that is an unfinished frame leaves the server waiting: stop reading soon.
    response = _talk_raw(gateway.port, data, half_close=False, read_for=0.5)
    # Empty: the server reset the connection (garbage it did not read) before we read the 101.
    assert not response or response.startswith(b"HTTP/1.1 101"), response[:300]
    # Sessions started here linger for the resume grace; the last test checks they end.
    assert_gateway_healthy(gateway, fresh_session=False, settle=False)


# -- strict wire types and hang-ups at every stage (issue 22) -------------------------------

# Where each integer field of a client message lives.
INTEGER_FIELDS = {
    "lm": ("session.start", ()),
    "protocol_version": ("session.start", ()),
    "audio.sample_rate": ("session.start", ("audio",)),
    "audio.channels": ("session.start", ("audio",)),
    "last_seq": ("session.resume", ()),
}


@fuzz_settings(25)
@given(
    field=st.sampled_from(sorted(INTEGER_FIELDS)),
    value=json_values.filter(lambda v: type(v) is not int),
)
@example(field="lm", value="2")
@example(field="lm", value=True)
@example(field="audio.sample_rate", value="16000")
@example(field="protocol_version", value=True)
def test_integer_fields_take_only_integers(gateway: LiveServer, field: str, value: Any) -> None:
    """The schema says integer: a string, a boolean, a float or null is bad_message, naming
    the field (lax parsing once accepted lm:"2" and protocol_version:true)."""
    kind, parents = INTEGER_FIELDS[field]
    message: dict[str, Any] = {"type": kind}
    if kind == "session.resume":
        message["resume_token"] = "not-a-token"
    target = message
    for parent in parents:
        target = target.setdefault(parent, {})
    target[field.rsplit(".", 1)[-1]] = value
    conversation = Conversation(gateway)
    conversation.send(json.dumps(message))
    conversation.finish()
    fatal = [e for e in conversation.events if e["type"] == "error" and e["fatal"]]
    assert [e["code"] for e in fatal] == ["bad_message"], conversation.events
    assert f": {field}: " in fatal[0]["message"], fatal[0]


# Every string a client message carries, and where it goes.
STRING_FIELDS = [
    ("session.start", "type"),
    ("session.start", "api_key"),
    ("session.start", "client"),
    ("session.start", "glossary_ids"),
    ("session.start", "source_language"),
    ("session.start", "target_languages"),
    ("session.start", "audio.encoding"),
    ("session.resume", "resume_token"),
    ("session.resume", "api_key"),
]


@fuzz_settings(40)
@given(where=st.sampled_from(STRING_FIELDS), value=hostile_text(80))
@example(where=("session.start", "api_key"), value="\ud800")
@example(where=("session.start", "type"), value="é" * 40)
@example(where=("session.start", "glossary_ids"), value="é" * 64)
@example(where=("session.resume", "resume_token"), value="\udfff")
def test_hostile_strings_in_every_field(
    gateway: LiveServer, where: tuple[str, str], value: str
) -> None:
    """Non-ASCII, multi-byte and lone-surrogate strings in every string field (and as the
    message type): a documented error and close, never 1011 or a close that failed (a
    reason over 123 bytes once turned 1008 into 1006)."""
    kind, field = where
    message: dict[str, Any] = {"type": kind}
    if kind == "session.resume":
        message["resume_token"] = "not-a-token"
    if field == "type":
        message["type"] = value
    elif field in ("glossary_ids", "target_languages"):
        message[field] = [value]
    elif field == "audio.encoding":
        message["audio"] = {"encoding": value}
    else:
        message[field] = value
    conversation = Conversation(gateway)
    conversation.send(json.dumps(message))
    conversation.finish()  # the invariants: documented events, close code, summary last
    close = conversation.ws.protocol.close_rcvd
    assert close is not None and len(close.reason.encode()) <= 123, close


def _whole_conversation(port: int) -> bytes:
    """Every byte of a complete, well-behaved stream: upgrade, start, audio, end, close."""
    audio = SPEECH[:9600].tobytes()
    return (
        _handshake(port, base64.b64encode(os.urandom(16)))
        + _masked_frame(0x1, json.dumps({"type": "session.start", "lm": 1}).encode())
        + b"".join(_masked_frame(0x2, audio[i : i + 3200]) for i in range(0, len(audio), 3200))
        + _masked_frame(0x1, END.encode())
        + _masked_frame(0x8, struct.pack("!H", 1000))
    )


@fuzz_settings(25)
@given(cut=st.floats(0, 1), reset=st.booleans())
@example(cut=0.0, reset=True)
@example(cut=0.1, reset=False)  # inside the upgrade request
@example(cut=0.5, reset=True)  # inside an audio frame
@example(cut=0.99, reset=False)  # inside the close frame
def test_hanging_up_at_every_stage(gateway: LiveServer, cut: float, reset: bool) -> None:
    """The client's bytes stop anywhere (FIN or RST): nothing crashes, nothing leaks (the
    session count and the log are checked after all the targets)."""
    data = _whole_conversation(gateway.port)
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(data[: int(cut * len(data))])
        time.sleep(0.02)
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(0.2)
            with contextlib.suppress(OSError):
                sock.recv(65536)
    assert_gateway_healthy(gateway, fresh_session=False, settle=False)


def test_gateway_serves_normally_after_the_fuzzing(gateway: LiveServer) -> None:
    assert_gateway_healthy(gateway)
    log = gateway.log()
    # A session that crashed, an exception that escaped to the ASGI server, or any other
    # traceback (uvicorn logged one for every text frame that was not UTF-8).
    for marker in ("session failed", "Exception in ASGI application", "Traceback"):
        assert marker not in log, log[log.index(marker) - 2000 : log.index(marker) + 4000]


# -- regressions found by the fuzzers ---------------------------------------------------


@pytest.mark.parametrize("midstream", [False, True], ids=["first", "midstream"])
def test_deeply_nested_json_is_a_bad_message(gateway: LiveServer, midstream: bool) -> None:
    conversation = Conversation(gateway)
    if midstream:
        conversation.send(json.dumps({"type": "session.start"}))
    conversation.send("[" * 100_000)
    conversation.finish()
    errors = [e["code"] for e in conversation.events if e["type"] == "error"]
    assert errors == ["bad_message"]
