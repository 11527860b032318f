"""Resumable sessions: the numbered event log and the speaker's link.

Every event gets a ``seq`` once (:class:`EventLog`), goes to the session's viewers, and the
last ``keep`` of those the sender took are kept, so a resumed connection gets what it missed.

The speaker's link (:class:`SpeakerLink`) is in one of three states:

- ``attached``: a connection is live and events go out on it;
- ``detached``: the connection dropped (or a new one is being replayed to); events are only
  kept, and the session waits ``resume_grace_seconds`` for ``session.resume``;
- ``closed``: the session closed its last connection; nothing attaches any more.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from enum import StrEnum

from fastapi import WebSocket
from pydantic import BaseModel

from server.feeds import SessionFeed
from server.protocol import TranslationDeltaEvent


class LinkState(StrEnum):
    ATTACHED = "attached"
    DETACHED = "detached"
    CLOSED = "closed"


class EventLog:
    """Numbers and serialises events once, for the speaker and the viewers; keeps the tail."""

    def __init__(self, keep: int) -> None:
        self.feed: SessionFeed | None = None
        self._seq = 0
        self._kept: deque[tuple[int, str]] = deque(maxlen=keep)
        self.last_sent = 0

    def publish(self, event: BaseModel) -> tuple[int, str]:
        self._seq += 1
        text = event.model_copy(update={"seq": self._seq}).model_dump_json()
        if self.feed is not None:
            # Deltas are superseded by their commit: viewers joining later need only that.
            self.feed.publish(text, retain=not isinstance(event, TranslationDeltaEvent))
        return self._seq, text

    def sent(self, seq: int, text: str) -> None:
        """The sender took event ``seq`` (delivered, or kept for a resume while detached)."""
        self._kept.append((seq, text))
        self.last_sent = seq

    def after(self, last_seq: int) -> tuple[list[str], int]:
        """The kept events after ``last_seq``, and how many after it are no longer kept."""
        replay = [text for seq, text in self._kept if seq > last_seq]
        oldest_kept = self._kept[0][0] if self._kept else self.last_sent + 1
        missed = max(0, min(oldest_kept - 1, self.last_sent) - last_seq)
        return replay, missed


class SpeakerLink:
    """The speaker's current connection and the link's state."""

    def __init__(self, websocket: WebSocket) -> None:
        self.ws = websocket
        # Bumped per connection, so a late failure of an old one is told apart.
        self.generation = 0
        self._state = LinkState.ATTACHED
        self._attached = asyncio.Event()
        self._attached.set()
        self.detached_at = 0.0
        # Set when the current connection is finished with; its handler waits on it.
        self.released: asyncio.Event | None = None

    @property
    def state(self) -> LinkState:
        return self._state

    @property
    def attached(self) -> bool:
        return self._state is LinkState.ATTACHED

    def lose(self, generation: int) -> bool:
        """Connection ``generation`` is gone: detach, unless a newer one took over."""
        if generation != self.generation or self._state is not LinkState.ATTACHED:
            return False
        self._detach()
        self.release()
        return True

    def take_over(self, websocket: WebSocket) -> WebSocket | None:
        """A resuming connection replaces the current one; returns the old one if it was live."""
        previous = self.ws if self._state is LinkState.ATTACHED else None
        self.generation += 1
        self.ws = websocket
        self._detach()
        return previous

    def go_live(self) -> asyncio.Event:
        """The resumed connection has had its replay: attach it."""
        self.released = asyncio.Event()
        self._state = LinkState.ATTACHED
        self._attached.set()
        return self.released

    async def wait_attached(self) -> None:
        await self._attached.wait()

    def close(self) -> None:
        """Closed for good; the caller closes the socket, then :meth:`release`."""
        self._state = LinkState.CLOSED

    def release(self) -> None:
        """The current connection is finished with: its handler may return."""
        if self.released is not None:
            self.released.set()

    def _detach(self) -> None:
        self._state = LinkState.DETACHED
        self._attached.clear()
        self.detached_at = time.monotonic()
