"""HTTP and WebSocket routes of the gateway. Routes build a session and await it; nothing more."""

from __future__ import annotations

import asyncio
import hmac
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request, WebSocket
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from glossary.auth import key_from_headers
from kernel.errors import ErrorCode, RasstError
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
    if not origin_allowed(websocket, services.settings.cors_origins):
        # Refused before the upgrade: the browser sees HTTP 403.
        await websocket.close(code=1008)
        return
    await StreamSession(websocket, services).run()


def origin_allowed(websocket: WebSocket, allowed: list[str]) -> bool:
    """Browsers apply no CORS to WebSockets: check their Origin against RASST_CORS_ORIGINS.

    Clients that send no Origin (CLI, servers) and pages served by this gateway
    itself are always allowed; with no origins configured, every origin is.
    """
    origin = websocket.headers.get("origin")
    if not origin or not allowed or "*" in allowed or origin in allowed:
        return True
    return urlsplit(origin).netloc == websocket.headers.get("host")


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
    # Backends degrade sessions (captions go on without them), so they are reported,
    # not required: an LLM outage must not take every gateway out of rotation.
    backends: dict[str, bool] = {}
    check_llm = getattr(services.translator, "check_ready", None)
    if check_llm is not None:
        try:
            async with asyncio.timeout(2.0):
                backends["llm"] = bool(await check_llm())
        except Exception:
            backends["llm"] = False
    if services.bus is not None:
        # Sessions go on without the bus; only other replicas' view of them pauses.
        backends["bus"] = services.bus.healthy
    return JSONResponse(
        {
            "status": "ready" if ready else "not_ready",
            "backends": backends,
            "checks": checks,
            "sessions": len(services.sessions),
        },
        status_code=200 if ready else 503,
    )


def require_metrics_key(request: Request, services: ServicesDep) -> None:
    """With auth enabled, metrics need RASST_METRICS_KEY (or the admin key) as a bearer token.

    Health probes stay open: they reveal nothing and orchestrators call them bare.
    """
    settings = services.settings
    if not settings.auth_enabled:
        return
    token = key_from_headers(request.headers.get("authorization"), None) or ""
    accepted = [k for k in (settings.metrics_key, settings.admin_key) if k]
    if not token or not any(
        hmac.compare_digest(token.encode("utf-8", "surrogatepass"), k.encode()) for k in accepted
    ):
        raise RasstError(
            ErrorCode.UNAUTHORIZED,
            "metrics need 'Authorization: Bearer <RASST_METRICS_KEY>' when auth is enabled",
        )


@router.get(
    "/metrics",
    tags=["operations"],
    dependencies=[Depends(require_metrics_key)],
    responses={401: {"description": "Auth is enabled and the metrics key is missing"}},
)
async def metrics(services: ServicesDep) -> Response:
    """Prometheus metrics."""
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
