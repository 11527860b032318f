"""Cross-pod resume: a ``session.resume`` for a session another pod holds is relayed there.

The pipeline state (speech decoder, retriever, translator history) stays where it is; this pod
only relays frames both ways over an internal WebSocket until either side closes, and passes
the owner's close code on. If the owner cannot be reached, the client gets ``resume_failed``
with the reason, and starts a new session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from urllib.parse import urlencode

import websockets
from fastapi import WebSocket
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from kernel.errors import ErrorCode, RasstError
from server.session.wire import ClientGone, close_quietly, receive

log = logging.getLogger(__name__)

_CONNECT_TIMEOUT = 5.0
# Close codes a relay cannot send on (reserved for "no close frame" and TLS failures).
_UNSENDABLE = {1005, 1006, 1015}


def stream_url(owner: str, api_key: str | None) -> str:
    """The owner's ``/v1/stream`` URL from its internal HTTP address."""
    base = owner.rstrip("/")
    if base.startswith("https://"):
        base = "wss://" + base.removeprefix("https://")
    elif base.startswith("http://"):
        base = "ws://" + base.removeprefix("http://")
    query = f"?{urlencode({'api_key': api_key})}" if api_key else ""
    return f"{base}/v1/stream{query}"


async def relay_resume(
    client: WebSocket, owner: str, first_message: str, idle_timeout: float
) -> None:
    """Relay ``client`` to the owner pod, starting with the client's ``session.resume``."""
    headers = {
        name: value
        for name, value in client.headers.items()
        if name.lower() in ("authorization", "x-api-key")
    }
    url = stream_url(owner, client.query_params.get("api_key"))
    try:
        upstream = await websockets.connect(
            url,
            additional_headers=headers,
            open_timeout=_CONNECT_TIMEOUT,
            max_size=None,  # the owner enforces its own limits
        )
    except (OSError, InvalidHandshake, TimeoutError) as exc:
        raise RasstError(
            ErrorCode.RESUME_FAILED,
            f"the gateway holding this session cannot be reached ({type(exc).__name__}); "
            "start a new session",
        ) from None
    log.info("session.resume relayed to %s", owner)
    async with upstream:
        await upstream.send(first_message)

        async def to_owner() -> None:
            try:
                while True:
                    message = await receive(client, idle_timeout)
                    data = message.get("bytes")
                    await upstream.send(data if data is not None else message.get("text") or "")
            except ClientGone:
                # The owner sees a dropped connection, as if the client had dropped there.
                await upstream.close(1001, "client gone")
            except RasstError as exc:
                await upstream.close(1008, exc.message[:100])

        async def to_client() -> None:
            with contextlib.suppress(ConnectionClosed):
                async for data in upstream:
                    if isinstance(data, bytes):
                        await client.send_bytes(data)
                    else:
                        await client.send_text(data)
            code = upstream.close_code
            if code is None or code in _UNSENDABLE:
                code = 1011
            await close_quietly(client, code, upstream.close_reason or "")

        tasks = [asyncio.create_task(to_owner()), asyncio.create_task(to_client())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
