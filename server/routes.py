"""HTTP and WebSocket routes of the gateway. Routes build a session and await it; nothing more."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, WebSocket
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from server.services import GatewayServices
from server.session import StreamSession

router = APIRouter()


def get_services(request: Request) -> GatewayServices:
    return request.app.state.services


def get_ws_services(websocket: WebSocket) -> GatewayServices:
    return websocket.app.state.services


ServicesDep = Annotated[GatewayServices, Depends(get_services)]
WsServicesDep = Annotated[GatewayServices, Depends(get_ws_services)]


@router.websocket("/v1/stream")
async def stream(websocket: WebSocket, services: WsServicesDep) -> None:
    """One speaker stream. The protocol is in docs/protocol.md."""
    await StreamSession(websocket, services).run()


@router.get("/healthz", tags=["operations"])
async def healthz() -> dict[str, str]:
    """Liveness: the process serves requests."""
    return {"status": "ok"}


@router.get("/readyz", tags=["operations"], responses={503: {"description": "Not ready"}})
async def readyz(services: ServicesDep) -> JSONResponse:
    """Readiness: speech workers up and the server not shutting down."""
    checks = {
        "speech_workers": await services.speech.ready(),
        "accepting_sessions": not services.sessions.closing,
    }
    ready = all(checks.values())
    return JSONResponse(
        {
            "status": "ready" if ready else "not_ready",
            "checks": checks,
            "sessions": len(services.sessions),
        },
        status_code=200 if ready else 503,
    )


@router.get("/metrics", tags=["operations"])
async def metrics(services: ServicesDep) -> Response:
    """Prometheus metrics."""
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
