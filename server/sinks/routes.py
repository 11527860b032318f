"""REST: attach a sink to a running session, list a session's sinks."""

from __future__ import annotations

from fastapi import APIRouter

from glossary.router import TenantDep
from kernel.errors import ErrorCode, RasstError
from server.routes import ServicesDep
from server.sinks.models import SinkSpec, SinkStatus
from server.subtitles import session_languages

router = APIRouter(tags=["sinks"])


@router.post(
    "/v1/sessions/{session_id}/sinks",
    status_code=201,
    responses={404: {"description": "No such session"}, 409: {"description": "Session ended"}},
)
async def attach_sink(
    session_id: str, spec: SinkSpec, tenant: TenantDep, services: ServicesDep
) -> SinkStatus:
    """Send this live session's captions from now on to Zoom, YouTube Live or a webhook."""
    feed = services.feeds.get(session_id, tenant)
    if feed is None:
        raise RasstError(ErrorCode.NOT_FOUND, f"no session {session_id!r}")
    if not feed.live:
        raise RasstError(ErrorCode.CONFLICT, "the session has ended; sinks need a live session")
    events = feed.events()
    source, targets = session_languages(events)
    if not any(e["type"] == "session.started" and e["mode"] == "translation" for e in events):
        targets = []  # a captions-only session commits no translations
    # Captions published before the sink was attached are not sent (live destinations).
    after = max((int(e.get("seq", 0)) for e in events), default=0)
    (runner,) = services.sinks.attach(
        feed, [spec], source_language=source, target_languages=targets, after_seq=after
    )
    return runner.status()


@router.get("/v1/sessions/{session_id}/sinks", responses={404: {"description": "No such session"}})
async def list_sinks(session_id: str, tenant: TenantDep, services: ServicesDep) -> list[SinkStatus]:
    """The session's sinks: deliveries, failures, the last error."""
    if services.feeds.get(session_id, tenant) is None:
        raise RasstError(ErrorCode.NOT_FOUND, f"no session {session_id!r}")
    return services.sinks.statuses(session_id)
