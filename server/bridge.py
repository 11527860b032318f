"""Run a streaming session in process, for adapters that speak another protocol.

The Deepgram-compatible endpoint and the batch (file) endpoint do not re-implement the
pipeline: each drives an ordinary :class:`~server.session.StreamSession` through a
:class:`SessionBridge`, an in-memory stand-in for the speaker's WebSocket. The adapter
feeds it our protocol's messages (``session.start``, audio, ``session.end``) and reads
the session's events back as dicts, so every limit, error code and stage of
``/v1/stream`` applies unchanged.

Bridged sessions are never resumable (the adapter's own client cannot send
``session.resume``); :func:`bridged_services` turns the resume grace off, and batch
work also lifts the pace limit (see there).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any, cast

from fastapi import WebSocket
from starlette.datastructures import Address, Headers, QueryParams

from server.services import GatewayServices

# The session's sender waits at most 5 s on a full queue, then ends with client_too_slow:
# the same protection a slow WebSocket reader gets.
_OUTBOUND_LIMIT = 2000


class SessionBridge:
    """The subset of Starlette's WebSocket that StreamSession uses, backed by two queues."""

    def __init__(
        self,
        *,
        headers: Mapping[str, str] | None = None,
        client_host: str | None = None,
    ) -> None:
        self.headers = Headers(headers=dict(headers or {}))
        self.query_params = QueryParams()
        self.client = Address(client_host, 0) if client_host else None
        self.close_code: int | None = None
        self.close_reason = ""
        self._inbound: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._outbound: asyncio.Queue[str | None] = asyncio.Queue(maxsize=_OUTBOUND_LIMIT)
        self._closed = False
        self._abandoned = False

    # -- the session's side (Starlette's WebSocket API) ---------------------

    async def accept(self, subprotocol: str | None = None) -> None:
        return None

    async def receive(self) -> dict[str, Any]:
        return await self._inbound.get()

    async def send_text(self, text: str) -> None:
        if self._closed or self._abandoned:
            # The session reads this as a client that is gone.
            raise RuntimeError("the bridge is closed")
        await self._outbound.put(text)

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        self.close_code = code
        self.close_reason = reason or ""
        if not self._abandoned:
            await self._outbound.put(None)

    # -- the adapter's side -------------------------------------------------

    def as_websocket(self) -> WebSocket:
        # Duck-typed: StreamSession only calls the methods above.
        return cast(WebSocket, self)

    def start(self, message: Mapping[str, Any]) -> None:
        self._inbound.put_nowait({"type": "websocket.receive", "text": json.dumps(message)})

    def audio(self, data: bytes) -> None:
        self._inbound.put_nowait({"type": "websocket.receive", "bytes": data})

    def end(self) -> None:
        self._inbound.put_nowait({"type": "websocket.receive", "text": '{"type":"session.end"}'})

    def disconnect(self) -> None:
        self._inbound.put_nowait({"type": "websocket.disconnect", "code": 1000})

    def abandon(self) -> None:
        """The adapter's client is gone: the session's sends fail at once and it ends.

        Events not yet read are dropped and :meth:`events` ends now, so neither side
        waits on a queue nobody drains.
        """
        if self._abandoned:
            return
        self._abandoned = True
        self.disconnect()
        while not self._outbound.empty():
            self._outbound.get_nowait()
        self._outbound.put_nowait(None)

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """The session's events, in order, until it closes the bridge."""
        while (text := await self._outbound.get()) is not None:
            yield json.loads(text)


def bridged_services(services: GatewayServices, *, unpaced: bool = False) -> GatewayServices:
    """The gateway's services with settings for a bridged session.

    Shares every long-lived service (workers, registry, feeds): only the settings copy
    differs. ``unpaced`` is for batch work, whose feeder paces itself by the session's
    progress instead of the wall clock (see server.batch).
    """
    update: dict[str, Any] = {"resume_grace_seconds": 0.0}
    if unpaced:
        update["max_pace"] = 1e9
        update["pace_burst_seconds"] = 1e9
    settings = services.settings.model_copy(update=update)
    return dataclasses.replace(services, settings=settings)
