"""ASGI middleware that applies per-caller rate limits and the request body limit to HTTP calls.

It sits in front of routing so that a flood or an oversized upload is refused
before any route reads it. Bodies are counted while they stream in, so a
client that lies about (or omits) ``Content-Length`` is cut off at the limit
too; nothing beyond the limit is ever buffered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kernel.errors import ErrorCode, error_body, http_status
from server.ratelimit import RateLimiter, caller_identity

# Audience-facing paths stay unlimited: a whole conference hall may share one
# address, and a viewer token grants read access only.
_UNLIMITED_PREFIXES = ("/v1/view/",)
# A refused body is read and discarded (up to this much, for this long) before the 413:
# closing with unread data makes the kernel reset the connection, and the client would
# lose the answer it has not read yet.
_DRAIN_MAX_BYTES = 64 * 1024 * 1024
_DRAIN_SECONDS = 10.0


class _BodyTooLarge(Exception):
    pass


class RequestGuard:
    def __init__(self, app: ASGIApp, *, limiter: RateLimiter, max_body_bytes: int) -> None:
        self._app = app
        self._limiter = limiter
        self._max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        path: str = scope["path"]
        if path.startswith("/v1/") and not path.startswith(_UNLIMITED_PREFIXES):
            client = scope.get("client")
            caller = caller_identity(headers, None, client[0] if client else None)
            wait = self._limiter.acquire(caller)
            if wait > 0:
                await _refuse(
                    send,
                    ErrorCode.RATE_LIMITED,
                    f"too many requests for this API key; retry in {math.ceil(wait)} s",
                    retry_after=math.ceil(wait),
                )
                return
        declared = headers.get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > self._max_body:
            if int(declared) <= _DRAIN_MAX_BYTES:
                await _drain(receive)
            await _refuse(send, *self._too_large())
            return
        await self._guarded(scope, receive, send)

    def _too_large(self) -> tuple[ErrorCode, str]:
        return (
            ErrorCode.PAYLOAD_TOO_LARGE,
            f"the request body is larger than the limit of {self._max_body} bytes",
        )

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = 0
        response_started = False
        refused = False

        async def counting_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self._max_body:
                    refused = True
                    if message.get("more_body", False):
                        await _drain(receive)
                    if not response_started:
                        await _refuse(send, *self._too_large())
                    # The app sees a client that went away and stops reading.
                    raise _BodyTooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if refused:
                return  # our 413 has been sent; the app's late answer is dropped
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self._app(scope, counting_receive, tracking_send)
        except Exception as exc:
            if refused and _caused_by_limit(exc):
                return
            raise


async def _drain(receive: Receive) -> None:
    drained = 0
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(_DRAIN_SECONDS):
            while drained < _DRAIN_MAX_BYTES:
                message = await receive()
                if message["type"] != "http.request":
                    return
                drained += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return


def _caused_by_limit(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, _BodyTooLarge):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


async def _refuse(
    send: Send, code: ErrorCode, message: str, *, retry_after: int | None = None
) -> None:
    body = json.dumps(error_body(code, message)).encode()
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    start: dict[str, Any] = {
        "type": "http.response.start",
        "status": http_status(code),
        "headers": headers,
    }
    await send(start)
    await send({"type": "http.response.body", "body": body})
