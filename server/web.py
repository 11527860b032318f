"""Browser-facing routes: the speaker page, audience viewers, QR codes and subtitle export.

Viewers read a session's feed (``server.feeds``): the events the speaker's
session already serialised, so any number of viewers cost no extra retrieval or
LLM work. A viewer token is a read-only capability for one session; the
session id routes are tenant-scoped with the glossary API's key check.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from redis.exceptions import RedisError

from glossary.router import TenantDep
from kernel.errors import ErrorCode, RasstError, ws_close_code
from server.feeds import SessionFeed
from server.protocol import Error
from server.routes import ServicesDep, WsServicesDep
from server.services import GatewayServices
from server.subtitles import SubtitleFormat, UnknownLanguage, cues_for, render

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
# A viewer socket that cannot take an event for this long is closed: its TCP
# buffer is full, and the feed's bounded queue would drop it shortly anyway.
_VIEWER_SEND_TIMEOUT = 10.0
_VIEWER_CLOSE_TIMEOUT = 5.0
# Pages load only their own scripts and styles, and talk only to this origin.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; media-src 'self' blob:; frame-ancestors 'self'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}
_MEDIA_TYPES: dict[str, str] = {
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
}

router = APIRouter(tags=["web"])
LangQuery = Annotated[
    str | None,
    Query(
        description="Source language code for captions, or a target language for its "
        "translation; default: the source language.",
        max_length=35,
    ),
]


def static_files() -> StaticFiles:
    """The ``/static`` app (mounted by the composition root)."""
    return StaticFiles(directory=STATIC_DIR)


@router.get("/", response_class=FileResponse, include_in_schema=False)
async def speaker_page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", headers=_PAGE_HEADERS)


@router.get("/view/{token}", response_class=FileResponse, include_in_schema=False)
async def viewer_page(token: str, services: ServicesDep) -> Response:
    if await _find_by_token(services, token) is None:
        return HTMLResponse(
            "<!doctype html><meta charset=utf-8><title>Not found</title>"
            "<p>This captioning session does not exist or has expired.</p>",
            status_code=404,
            headers=_PAGE_HEADERS,
        )
    return FileResponse(STATIC_DIR / "viewer.html", headers=_PAGE_HEADERS)


@router.websocket("/v1/view/{token}")
async def view(websocket: WebSocket, token: str, services: WsServicesDep) -> None:
    """Read-only event stream of one session: past events, then live ones; close 1000 at its end."""
    await websocket.accept()
    try:
        feed = await _find_by_token(services, token)
    except RasstError as exc:
        await _close_with_error(websocket, exc)
        return
    if feed is None:
        await _close_with_error(
            websocket, RasstError(ErrorCode.NOT_FOUND, "unknown or expired viewer link")
        )
        return
    await _relay(websocket, feed)


@router.get(
    "/v1/view/{token}/qr.svg",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}}, 404: {"description": "Unknown token"}},
)
async def viewer_qr(token: str, request: Request, services: ServicesDep) -> Response:
    """QR code of the viewer link, for the audience to scan."""
    await _feed_by_token(services, token)
    import segno  # imported on first use: only QR requests need it

    url = str(request.url_for("viewer_page", token=token))
    buffer = io.BytesIO()
    segno.make(url, error="m", micro=False).save(
        buffer, kind="svg", scale=8, border=2, xmldecl=False, svgns=True, title="Viewer link"
    )
    return Response(
        buffer.getvalue(), media_type="image/svg+xml", headers={"Cache-Control": "max-age=3600"}
    )


@router.get(
    "/v1/sessions/{session_id}/subtitles.{fmt}",
    response_class=Response,
    responses={404: {"description": "No such session for this tenant"}},
)
async def session_subtitles(
    session_id: str,
    fmt: Literal["srt", "vtt"],
    tenant: TenantDep,
    services: ServicesDep,
    lang: LangQuery = None,
) -> Response:
    """SRT or WebVTT of a live or recently finished session of the caller's tenant."""
    feed = services.feeds.get(session_id, tenant)
    if feed is None and services.bus is not None:
        # Held (or last held) by another replica.
        async with _bus_errors():
            remote = await services.bus.find_session(session_id)
            if remote is not None and remote.tenant == tenant:
                feed = await services.bus.mirror(remote)
    if feed is None:
        raise RasstError(ErrorCode.NOT_FOUND, f"no session {session_id!r}")
    return _subtitles(feed, fmt, lang)


@router.get(
    "/v1/view/{token}/subtitles.{fmt}",
    response_class=Response,
    responses={404: {"description": "Unknown viewer token"}},
)
async def viewer_subtitles(
    token: str, fmt: Literal["srt", "vtt"], services: ServicesDep, lang: LangQuery = None
) -> Response:
    """The same export through a viewer link (no API key: the token is the permission)."""
    return _subtitles(await _feed_by_token(services, token), fmt, lang)


async def _find_by_token(services: GatewayServices, token: str) -> SessionFeed | None:
    """This gateway's feed for ``token``, else a mirror of another replica's session."""
    feed = services.feeds.by_token(token)
    if feed is not None or services.bus is None:
        return feed
    async with _bus_errors():
        remote = await services.bus.find_token(token)
        return await services.bus.mirror(remote) if remote is not None else None


async def _feed_by_token(services: GatewayServices, token: str) -> SessionFeed:
    feed = await _find_by_token(services, token)
    if feed is None:
        raise RasstError(ErrorCode.NOT_FOUND, "unknown or expired viewer link")
    return feed


@contextlib.asynccontextmanager
async def _bus_errors() -> AsyncIterator[None]:
    try:
        yield
    except (RedisError, OSError) as exc:
        raise RasstError(
            ErrorCode.BUS_UNAVAILABLE,
            "this session is held by another gateway and the event bus is unavailable; "
            "retry shortly",
        ) from exc


def _subtitles(feed: SessionFeed, fmt: SubtitleFormat, lang: str | None) -> Response:
    events = feed.events()
    try:
        cues = cues_for(events, lang)
    except UnknownLanguage as exc:
        raise RasstError(
            ErrorCode.NOT_FOUND, str(exc), detail={"available": exc.available}
        ) from None
    name = f"{feed.session_id}.{lang or 'source'}.{fmt}"
    return Response(
        render(cues, fmt),
        media_type=_MEDIA_TYPES[fmt],
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            # A live session's subtitles grow; never serve a stale copy.
            "Cache-Control": "no-store",
        },
    )


async def _relay(websocket: WebSocket, feed: SessionFeed) -> None:
    """Forward the feed until it ends, or until the viewer leaves or sends something."""
    forwarder = asyncio.create_task(_forward(websocket, feed))
    listener = asyncio.create_task(_listen(websocket))
    try:
        await asyncio.wait({forwarder, listener}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        # Cancelling the forwarder unsubscribes it from the feed (follow()'s finally).
        forwarder.cancel()
        listener.cancel()
        await asyncio.gather(forwarder, listener, return_exceptions=True)


async def _forward(websocket: WebSocket, feed: SessionFeed) -> None:
    try:
        async for text in feed.follow():
            async with asyncio.timeout(_VIEWER_SEND_TIMEOUT):
                await websocket.send_text(text)
        if feed.failure is not None:  # a mirror whose source went away
            await _close_with_error(websocket, RasstError(ErrorCode.BUS_UNAVAILABLE, feed.failure))
        elif feed.live:  # the feed dropped this viewer: it fell too far behind
            await _close_with_error(
                websocket, RasstError(ErrorCode.CLIENT_TOO_SLOW, "the viewer fell behind")
            )
        else:
            await websocket.close(1000)
    except (TimeoutError, WebSocketDisconnect, RuntimeError, OSError):
        # The viewer is gone or stuck; there is no one left to tell.
        log.debug("viewer of session %s left", feed.session_id)


async def _listen(websocket: WebSocket) -> None:
    """Viewers are read-only: anything they send ends the connection; a disconnect ends it too."""
    try:
        message = await websocket.receive()
        if message["type"] == "websocket.receive":
            await _close_with_error(
                websocket, RasstError(ErrorCode.BAD_MESSAGE, "viewer connections are read-only")
            )
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass


async def _close_with_error(websocket: WebSocket, exc: RasstError) -> None:
    error = Error(code=exc.code, message=exc.message, fatal=True, detail=exc.detail)
    try:
        # A viewer dropped for falling behind may not be reading at all.
        async with asyncio.timeout(_VIEWER_CLOSE_TIMEOUT):
            await websocket.send_text(error.model_dump_json())
            await websocket.close(ws_close_code(exc.code))
    except (TimeoutError, WebSocketDisconnect, RuntimeError, OSError):
        pass
