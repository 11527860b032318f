"""``/v1/listen``: Deepgram's live WebSocket, served by an ordinary RASST session.

Client → server: binary audio frames; JSON ``KeepAlive`` (keeps an idle stream open),
``CloseStream`` (no more audio: the session flushes, a ``Metadata`` message follows,
then the close) and ``Finalize`` (accepted; RASST finalises at pauses by itself).
Authentication: ``Authorization: Token KEY`` or ``Bearer KEY`` (Deepgram's SDKs), the
``token, KEY`` WebSocket subprotocol (browsers), or ``?api_key=``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from kernel.errors import RasstError, ws_close_code
from server.bridge import SessionBridge, bridged_services
from server.deepgram.messages import ResultMapper, error_message
from server.deepgram.params import parse_listen_params, session_start
from server.routes import WsServicesDep, origin_allowed
from server.session import StreamSession, close_reason

log = logging.getLogger(__name__)
router = APIRouter()

_SEND_TIMEOUT = 5.0


@router.websocket("/v1/listen")
async def listen(websocket: WebSocket, services: WsServicesDep) -> None:
    """Deepgram-compatible live transcription (docs/integrations.md)."""
    if not origin_allowed(websocket, services.settings.cors_origins):
        await websocket.close(code=1008)
        return
    api_key, subprotocol = _credentials(websocket)
    await websocket.accept(subprotocol=subprotocol)
    try:
        params = parse_listen_params(list(websocket.query_params.multi_items()))
    except RasstError as exc:
        await _send(websocket, error_message(str(exc.code), exc.message))
        await websocket.close(code=ws_close_code(exc.code), reason=close_reason(exc.message))
        return
    client = websocket.client
    bridge = SessionBridge(
        headers={k: v for k, v in websocket.headers.items() if k.lower() in _PASSED_HEADERS},
        client_host=client.host if client else None,
    )
    session = StreamSession(bridge.as_websocket(), bridged_services(services))
    bridge.start(session_start(params, api_key))
    mapper = ResultMapper(params, uuid.uuid4().hex)
    session_task = asyncio.create_task(session.run())
    reader = asyncio.create_task(_read_client(websocket, bridge))
    try:
        async for event in bridge.events():
            if not await _send_all(websocket, mapper.map(event)):
                bridge.abandon()  # the client hung up: end the session now
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await session_task
    code = bridge.close_code or 1000
    with contextlib.suppress(RuntimeError, OSError):
        await websocket.close(code=code, reason=close_reason(bridge.close_reason))


# Headers the session reads for rate limiting (the caller behind a proxy).
_PASSED_HEADERS = {"x-forwarded-for", "x-real-ip", "origin"}


def _credentials(websocket: WebSocket) -> tuple[str | None, str | None]:
    """(API key, subprotocol to accept) from Deepgram's ways of passing a key."""
    auth = websocket.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() in ("token", "bearer") and token.strip():
        return token.strip(), None
    offered = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",")]
    if len(offered) >= 2 and offered[0].lower() in ("token", "bearer"):
        return offered[1], offered[0]
    return websocket.query_params.get("api_key") or websocket.headers.get("x-api-key"), None


async def _read_client(websocket: WebSocket, bridge: SessionBridge) -> None:
    """Deepgram client messages → the bridged session, until CloseStream or the hang-up."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            bridge.abandon()
            return
        data = message.get("bytes")
        if data is not None:
            bridge.audio(data)
            continue
        text = message.get("text") or ""
        try:
            kind = json.loads(text).get("type")
        except (ValueError, AttributeError):
            kind = None
        if kind == "CloseStream":
            bridge.end()
            # Audio after CloseStream is not part of the stream; keep reading for the close.
            await _drain(websocket)
            return
        if kind == "KeepAlive":
            # An empty frame restarts the session's idle timer and carries no audio.
            bridge.audio(b"")
        elif kind != "Finalize":
            await _send(
                websocket,
                {
                    "type": "Error",
                    "variant": "SchemaError",
                    "description": "expected KeepAlive, CloseStream, Finalize or binary audio",
                    "message": text[:200],
                },
            )


async def _drain(websocket: WebSocket) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass


async def _send_all(websocket: WebSocket, messages: list[dict[str, Any]]) -> bool:
    """Send ``messages``; False once the client is gone."""
    try:
        for message in messages:
            await _send(websocket, message)
    except (WebSocketDisconnect, RuntimeError, OSError, TimeoutError):
        return False
    return True


async def _send(websocket: WebSocket, message: dict[str, object]) -> None:
    async with asyncio.timeout(_SEND_TIMEOUT):
        await websocket.send_text(json.dumps(message, ensure_ascii=False))
