"""One sink: follow a session's feed, deliver its captions, retry, report failures."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx

from server.feeds import SessionFeed
from server.sinks.formats import (
    parse_zoom_seq,
    webhook_request,
    youtube_request,
    zoom_request,
    zoom_seq_url,
)
from server.sinks.models import SinkSpec, SinkStatus

log = logging.getLogger(__name__)

# Every delivery has a deadline: a destination that hangs costs this sink, never the session.
_TIMEOUT = httpx.Timeout(connect=3.0, read=5.0, write=5.0, pool=3.0)
# Zoom's guidance: retry every failed POST (400, 403 and 405 included) with the same seq.
_RETRY_DELAYS = (0.25, 1.0)

Warn = Callable[[str], None]


class _RedactQuery(logging.Filter):
    """httpx logs each request's full URL; caption URLs carry credentials in their query."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 2 and isinstance(args[1], httpx.URL):
            record.args = (args[0], args[1].copy_with(query=None), *args[2:])
        return True


def redact_http_logs() -> None:
    """Install the filter once on httpx's logger (idempotent)."""
    logger = logging.getLogger("httpx")
    if not any(isinstance(f, _RedactQuery) for f in logger.filters):
        logger.addFilter(_RedactQuery())


class SinkRunner:
    def __init__(
        self,
        spec: SinkSpec,
        feed: SessionFeed,
        *,
        source_language: str,
        after_seq: int = 0,
        warn: Warn | None = None,
    ) -> None:
        self.id = secrets.token_hex(6)
        self.spec = spec
        self._feed = feed
        self._source = source_language
        self._after_seq = after_seq
        self._warn = warn
        self._seq = 0  # the destination's counter: +1 per new caption, same on a retry
        self.delivered = 0
        self.failed = 0
        self.last_error: str | None = None
        self.task: asyncio.Task[None] | None = None

    def status(self) -> SinkStatus:
        return SinkStatus(
            id=self.id,
            kind=self.spec.kind,
            lang=self.spec.lang,
            target=urlsplit(self.spec.url).netloc,
            delivered=self.delivered,
            failed=self.failed,
            active=self.task is not None and not self.task.done(),
            last_error=self.last_error,
        )

    def start(self) -> None:
        self.task = asyncio.create_task(self.run(), name=f"sink-{self.spec.kind}-{self.id}")

    async def run(self) -> None:
        try:
            await self._follow()
        except Exception as exc:  # a sink's bug must not go unnoticed, nor reach the session
            log.exception("caption sink failed", extra={"session_id": self._feed.session_id})
            self._report(f"stopped by an internal error ({type(exc).__name__})")
            return
        if self._feed.live:
            # The feed dropped this sink: it fell 1000 events behind the session.
            self._report("the destination is too slow; this sink stopped (the session goes on)")

    async def _follow(self) -> None:
        async with httpx.AsyncClient(timeout=_TIMEOUT, follow_redirects=False) as client:
            if self.spec.kind == "zoom":
                self._seq = await _zoom_last_seq(client, self.spec.url)
            async for text in self._feed.follow():
                event = json.loads(text)
                if int(event.get("seq", 0)) <= self._after_seq:
                    continue
                request = self._request(event)
                if request is not None:
                    await self._deliver(client, *request)

    def _request(self, event: dict[str, Any]) -> tuple[str, dict[str, str], bytes] | None:
        kind = self.spec.kind
        caption = self._caption(event)
        if kind == "webhook":
            payload = caption if caption is not None else _terms_payload(event)
            if payload is None:
                return None
            self._seq += 1
            payload = {"session_id": self._feed.session_id, "sink_seq": self._seq, **payload}
            return webhook_request(self.spec.url, payload, self.spec.secret)
        if caption is None:
            return None
        self._seq += 1
        if kind == "zoom":
            return zoom_request(self.spec.url, self._seq, caption["lang"], caption["text"])
        at = datetime.fromtimestamp(self._feed.opened_at, UTC) + timedelta(
            seconds=float(caption["start"])
        )
        return youtube_request(self.spec.url, self._seq, at, caption["text"])

    def _caption(self, event: dict[str, Any]) -> dict[str, Any] | None:
        """The event as a caption in this sink's language, or None."""
        lang = self.spec.lang or self._source
        kind = event.get("type")
        source_caption = lang == self._source and kind == "caption" and event["final"]
        translation = kind == "translation.commit" and event["lang"] == lang
        if not (source_caption or translation) or not event["text"]:
            return None
        text = str(event["text"]).strip()
        return {
            "type": "caption" if kind == "caption" else "translation",
            "lang": lang,
            "text": text,
            "start": event["start"],
            "end": event["end"],
            "event_seq": event.get("seq", 0),
        }

    async def _deliver(
        self, client: httpx.AsyncClient, url: str, headers: dict[str, str], body: bytes
    ) -> None:
        problem = ""
        for delay in (0.0, *_RETRY_DELAYS):
            if delay:
                await asyncio.sleep(delay)
            try:
                response = await client.post(url, headers=headers, content=body)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"[:200]
                continue
            if response.is_success:
                self.delivered += 1
                return
            problem = f"HTTP {response.status_code}"
        self.failed += 1
        self._report(
            f"a caption was not delivered after {1 + len(_RETRY_DELAYS)} tries ({problem})"
        )

    def _report(self, problem: str) -> None:
        host = urlsplit(self.spec.url).netloc
        message = f"{self.spec.kind} sink {self.id} ({host}): {problem}"
        self.last_error = message
        log.warning(message, extra={"session_id": self._feed.session_id})
        if self._warn is not None and self._feed.live:
            try:
                self._warn(message)
            except Exception as exc:  # the session may be ending: its warning is best effort
                log.debug("sink warning not delivered: %r", exc)


async def _zoom_last_seq(client: httpx.AsyncClient, url: str) -> int:
    """Continue the meeting's caption counter (an earlier stream, a re-attached sink).

    Zoom ignores a ``seq`` it has seen; its ``/closedcaption/seq`` tells the last one it
    accepted. When that call fails, counting starts at 1 as for a new meeting.
    """
    try:
        response = await client.get(zoom_seq_url(url))
    except httpx.HTTPError:
        return 0
    last = parse_zoom_seq(response.text) if response.is_success else None
    return last or 0


def _terms_payload(event: dict[str, Any]) -> dict[str, Any] | None:
    if event.get("type") != "terms" or not event["terms"]:
        return None
    return {
        "type": "terms",
        "start": event["start"],
        "end": event["end"],
        "terms": event["terms"],
        "event_seq": event.get("seq", 0),
    }
