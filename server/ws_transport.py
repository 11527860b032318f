"""The WebSocket transport under uvicorn: two client faults become session errors.

uvicorn's sans-I/O WebSocket protocol fails the connection by itself when

* a message exceeds ``ws_max_size``: a bare close 1009, before the application
  sees anything, so the client gets no ``error`` event and no summary;
* a text frame is not UTF-8: close 1007, with an ERROR traceback in the log.

Both are the client's fault and both deserve the same explicit end as any other
bad input (docs/protocol.md): an ``error`` event with a stable code, the summary,
then the close. This protocol hands such a fault to the application as a
``websocket.receive`` message carrying a :class:`RasstError` under
:data:`TRANSPORT_FAULT` (and neither ``text`` nor ``bytes``); the session raises
it. The oversized payload is skipped as it arrives, never buffered, and frames
after it are parsed again, so the closing handshake completes normally.

Applications that ignore the key see an empty ``websocket.receive``.
"""

from __future__ import annotations

import sys
from collections.abc import Generator
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import PayloadTooBig, ProtocolError
from websockets.frames import BINARY, CONT, TEXT, CloseCode, Frame
from websockets.protocol import CLOSING, OPEN
from websockets.server import ServerProtocol

from kernel.errors import ErrorCode, RasstError

TRANSPORT_FAULT = "rasst.transport_fault"
_MAX_CONTROL_PAYLOAD = 125
# Client frames are masked; the 4-byte key follows the length (RFC 6455 5.2).
_MASK_BYTES = 4


class _SkippingServerProtocol(ServerProtocol):
    """Refuses an oversized message by skipping it instead of failing the connection."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.refused: PayloadTooBig | None = None

    def fail(self, code: CloseCode | int, reason: str = "") -> None:
        # parse() calls fail() inside its ``except PayloadTooBig as exc`` block.
        exc = sys.exc_info()[1]
        if (
            code == CloseCode.MESSAGE_TOO_BIG
            # CLOSING: the session already closed; skip it all the same, so that
            # unread bytes do not turn our close into a reset that loses its events.
            and self.state in (OPEN, CLOSING)
            and isinstance(exc, PayloadTooBig)
            and exc.size is not None
            and not self.extensions  # a compressed payload was read whole already
            and self.refused is None
        ):
            # Frame.parse raised after reading the length: the mask key and the payload follow.
            self.refused = exc
            self.parser = self._skip_then_parse(_MASK_BYTES + exc.size)
            next(self.parser)
            return
        super().fail(code, reason)

    def _skip_then_parse(self, size: int) -> Generator[None]:
        """Skip the refused payload, then read on without buffering another data frame.

        The session is ending (frame_too_large is fatal): later data frames are dropped
        unread, control frames (close, ping) are handled as usual so that the closing
        handshake completes.
        """
        yield from self._skip(size)
        self.current_size = None
        while not (yield from self.reader.at_eof()):
            try:
                frame = yield from Frame.parse(
                    self.reader.read_exact,
                    mask=True,
                    max_size=_MAX_CONTROL_PAYLOAD,
                    extensions=self.extensions,
                )
            except PayloadTooBig as exc:
                yield from self._skip(_MASK_BYTES + (exc.size or 0))
                continue
            except ProtocolError as exc:
                self.fail(CloseCode.PROTOCOL_ERROR, str(exc))
                self.parser_exc = exc
                break
            if frame.opcode not in (CONT, TEXT, BINARY):
                self.recv_frame(frame)
        yield
        raise AssertionError("the skipping parser stepped after its end")

    def _skip(self, size: int) -> Generator[None]:
        left = size
        while left > 0:
            if (yield from self.reader.at_eof()):
                return
            take = min(left, len(self.reader.buffer))
            del self.reader.buffer[:take]
            left -= take


class SessionWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol, reporting oversized and non-UTF-8 messages."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn = _SkippingServerProtocol(
            extensions=self.conn.available_extensions,
            max_size=self.config.ws_max_size,
            logger=self.conn.logger,
        )

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        assert isinstance(conn, _SkippingServerProtocol)
        conn.receive_data(data)
        refused = conn.refused
        if refused is not None and conn.parser_exc is refused:
            conn.parser_exc = None
            self.handle_events()  # messages that came before it, in order
            self.frames = []
            self._report(
                RasstError(
                    ErrorCode.FRAME_TOO_LARGE,
                    f"a message of {refused.size} bytes exceeds the limit of "
                    f"{self.config.ws_max_size} bytes",
                )
            )
            return
        if conn.parser_exc is not None:
            self.handle_parser_exception()
            return
        if conn.handshake_exc is not None and not self.handshake_initiated:
            self.handle_handshake_exception()
            return
        self.handle_events()

    def send_receive_event_to_app(self) -> None:
        if self.curr_msg_data_type == "text" and not self.close_sent:
            try:
                b"".join(self.frames).decode()
            except UnicodeDecodeError as exc:
                self.frames = []
                self._report(
                    RasstError(
                        ErrorCode.BAD_MESSAGE,
                        f"text frame is not valid UTF-8 ({exc.reason} at byte {exc.start})",
                    )
                )
                return
        super().send_receive_event_to_app()

    def _report(self, fault: RasstError) -> None:
        if self.close_sent or not self.handshake_complete:
            return
        self.queue.put_nowait({"type": "websocket.receive", TRANSPORT_FAULT: fault})  # type: ignore[arg-type]
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()
