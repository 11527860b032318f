"""Running the gateway under uvicorn with a graceful drain of live sessions."""

from __future__ import annotations

import logging
import socket

import uvicorn
from fastapi import FastAPI

from server.app import create_app
from server.settings import Settings
from server.ws_transport import SessionWebSocketProtocol

log = logging.getLogger(__name__)

_MAX_MESSAGE_BYTES = 4 * 1024 * 1024


class GracefulServer(uvicorn.Server):
    """On SIGTERM/SIGINT: refuse new sessions, let live ones flush and end, then stop.

    uvicorn's own shutdown closes WebSockets with 1012 at once; captioning
    clients would lose the audio they had sent. Draining first gives every
    session its remaining events, a ``session.summary`` and a 1001 close.
    """

    def __init__(self, config: uvicorn.Config, app: FastAPI, grace_seconds: float) -> None:
        super().__init__(config)
        self._app = app
        self._grace = grace_seconds

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        services = getattr(self._app.state, "services", None)
        if services is not None and len(services.sessions):
            log.info("draining %d live session(s)", len(services.sessions))
            await services.sessions.shutdown(self._grace)
        await super().shutdown(sockets)


def run(settings: Settings) -> None:
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,
        # The transport's limit on one message (text or audio); audio frames have their
        # own, smaller RASST_MAX_FRAME_BYTES, checked by the session. Larger messages are
        # skipped unread and end the session with frame_too_large (server/ws_transport.py).
        ws=SessionWebSocketProtocol,
        ws_max_size=max(_MAX_MESSAGE_BYTES, settings.max_frame_bytes),
        # Raw PCM barely compresses, and deflating every 100 ms frame costs both ends
        # CPU (a third of a client's time in the soak); events are small anyway.
        ws_per_message_deflate=False,
        timeout_graceful_shutdown=5,
    )
    GracefulServer(config, app, settings.shutdown_grace_seconds).run()
