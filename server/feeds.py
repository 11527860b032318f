"""Live event feeds: fan-out of one session's events to read-only viewers.

The speaker's session publishes every event it sends (already serialised, once)
to its feed; any number of viewers subscribe without extra retrieval or LLM
work. A feed keeps the session's events so late joiners catch up and subtitles
can be exported live and after the session ends (finished feeds are retained
for a while, bounded in number).

Viewer backpressure: each viewer has a bounded queue; a viewer that stops
reading is dropped (its queue closed) rather than slowing the speaker down.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

_VIEWER_QUEUE = 1000


def new_viewer_token() -> str:
    """An unguessable viewer token that never starts with "-".

    A token is also a command-line argument (``rasst subtitles TOKEN --viewer``), and one
    starting with "-" read as an unknown option there (1 token in 64; seen in the suite).
    """
    while (token := secrets.token_urlsafe(18)).startswith("-"):
        pass
    return token


class FeedSink(Protocol):
    """Where a gateway's own feeds are copied to (the shared bus of several replicas)."""

    def opened(self, feed: SessionFeed) -> None: ...

    def published(self, feed: SessionFeed, text: str, retain: bool) -> None: ...

    def closed(self, feed: SessionFeed) -> None: ...


class SessionFeed:
    def __init__(
        self, session_id: str, tenant: str, max_events: int, viewer_token: str | None = None
    ) -> None:
        self.session_id = session_id
        self.tenant = tenant
        # Unguessable: whoever has the link may read this session's captions.
        self.viewer_token = viewer_token or new_viewer_token()
        self.opened_at = time.time()
        self.closed_at: float | None = None
        # Why a feed ended without its session ending (a mirror whose owner pod is gone).
        self.failure: str | None = None
        # Copies of this session's own events go there too (None: this process only).
        self.sink: FeedSink | None = None
        # Called when the sink stops taking events (the speaker is warned once).
        self.on_sink_trouble: Callable[[], None] | None = None
        self._events: list[str] = []
        self._max_events = max_events
        self._truncated = False
        self._viewers: set[asyncio.Queue[str | None]] = set()

    @property
    def live(self) -> bool:
        return self.closed_at is None

    @property
    def viewers(self) -> int:
        return len(self._viewers)

    def publish(self, text: str, *, retain: bool = True) -> None:
        """Send to the viewers; keep for late joiners and subtitles only if ``retain``.

        Translation deltas are not kept: each repeats its chunk's text so far and the
        commit supersedes them, so keeping them would multiply a feed's memory.
        """
        if retain:
            if len(self._events) < self._max_events:
                self._events.append(text)
            else:
                self._truncated = True
        for queue in list(self._viewers):
            try:
                queue.put_nowait(text)
            except asyncio.QueueFull:
                self._drop(queue)
        if self.sink is not None:
            self.sink.published(self, text, retain)

    def close(self, failure: str | None = None) -> None:
        if self.closed_at is not None:
            return
        self.failure = failure
        self.closed_at = time.time()
        if self.sink is not None:
            self.sink.closed(self)
        for queue in list(self._viewers):
            # The end goes after what each viewer has still to read (the summary, the last
            # captions); only a viewer already a full queue behind loses its tail.
            try:
                queue.put_nowait(None)
            except asyncio.QueueFull:
                self._drop(queue)
            self._viewers.discard(queue)

    def events(self) -> list[dict[str, Any]]:
        """The events so far, decoded (for subtitle export)."""
        return [json.loads(text) for text in self._events]

    def retained(self) -> list[str]:
        """The kept events, serialised (to re-publish them to a bus that lost them)."""
        return list(self._events)

    async def follow(self) -> AsyncIterator[str]:
        """Past events, then live ones until the session ends or this viewer falls behind."""
        queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=_VIEWER_QUEUE)
        backlog = list(self._events)
        following = self.live
        if following:
            self._viewers.add(queue)
        try:
            for text in backlog:
                yield text
            if not following:
                return
            # Everything published since joining, up to the end (or this viewer's drop).
            while (item := await queue.get()) is not None:
                yield item
        finally:
            self._viewers.discard(queue)

    def _drop(self, queue: asyncio.Queue[str | None]) -> None:
        self._viewers.discard(queue)
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(None)


class FeedHub:
    """All feeds of this gateway process: live ones and recently finished ones."""

    def __init__(
        self,
        *,
        max_events_per_feed: int = 50_000,
        retain_finished: int = 200,
        sink: FeedSink | None = None,
    ) -> None:
        self.sink = sink
        self._max_events = max_events_per_feed
        self._retain = retain_finished
        self._feeds: OrderedDict[str, SessionFeed] = OrderedDict()
        self._by_token: dict[str, SessionFeed] = {}

    def open(self, session_id: str, tenant: str) -> SessionFeed:
        feed = SessionFeed(session_id, tenant, self._max_events)
        self._feeds[session_id] = feed
        self._by_token[feed.viewer_token] = feed
        self._evict()
        if self.sink is not None:
            feed.sink = self.sink
            self.sink.opened(feed)
        return feed

    @property
    def max_events_per_feed(self) -> int:
        return self._max_events

    def live(self) -> list[SessionFeed]:
        return [feed for feed in self._feeds.values() if feed.live]

    def by_token(self, token: str) -> SessionFeed | None:
        return self._by_token.get(token)

    def get(self, session_id: str, tenant: str) -> SessionFeed | None:
        """A tenant's own session; another tenant's id looks exactly like an unknown one."""
        feed = self._feeds.get(session_id)
        return feed if feed is not None and feed.tenant == tenant else None

    def _evict(self) -> None:
        finished = [sid for sid, feed in self._feeds.items() if not feed.live]
        for session_id in finished[: max(0, len(finished) - self._retain)]:
            feed = self._feeds.pop(session_id)
            self._by_token.pop(feed.viewer_token, None)
