"""The session's WebSocket I/O: receive with an idle timeout, send with a deadline, close."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import WebSocket

from glossary.auth import key_from_headers
from kernel.errors import ErrorCode, RasstError
from server.ws_transport import TRANSPORT_FAULT

log = logging.getLogger(__name__)

SEND_TIMEOUT = 5.0

# RFC 6455 5.5: a control frame's payload is at most 125 bytes, 2 of them the code.
_MAX_CLOSE_REASON_BYTES = 123


class ClientGone(Exception):
    """The client disconnected; nothing more can be sent."""


async def receive(ws: WebSocket, idle_timeout: float) -> Mapping[str, Any]:
    """The next message; ``ClientGone`` on a disconnect, RasstError on silence or a bad frame."""
    try:
        async with asyncio.timeout(idle_timeout):
            message = await ws.receive()
    except TimeoutError:
        raise RasstError(ErrorCode.IDLE_TIMEOUT, f"no message for {idle_timeout:g} s") from None
    if message["type"] == "websocket.disconnect":
        raise ClientGone()
    fault = message.get(TRANSPORT_FAULT)
    if fault is not None:
        # An oversized or non-UTF-8 message, refused by the transport.
        raise fault
    return message


async def send_text(ws: WebSocket, text: str) -> None:
    try:
        async with asyncio.timeout(SEND_TIMEOUT):
            await ws.send_text(text)
    except TimeoutError:
        raise RasstError(ErrorCode.CLIENT_TOO_SLOW, "the client is not reading events") from None
    except Exception as exc:
        raise ClientGone() from exc


async def close_quietly(ws: WebSocket, code: int, reason: str) -> None:
    try:
        async with asyncio.timeout(SEND_TIMEOUT):
            await ws.close(code=code, reason=close_reason(reason))
    except Exception as exc:
        log.debug("closing the WebSocket failed: %r", exc)


def close_reason(reason: str) -> str:
    """``reason`` cut to what a close frame can carry: 123 bytes of UTF-8, whole characters."""
    data = reason.encode("utf-8", "replace")[:_MAX_CLOSE_REASON_BYTES]
    return data.decode("utf-8", "ignore")


def api_key_from(ws: WebSocket) -> str | None:
    headers = ws.headers
    return key_from_headers(headers.get("authorization"), headers.get("x-api-key")) or (
        ws.query_params.get("api_key")
    )
