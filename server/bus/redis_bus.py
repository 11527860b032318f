"""The Redis side of the bus: the owner's outbox and the readers' mirrors (see the package doc).

Why one module past 400 lines: the writer and the readers share one key layout and one
lease/retention scheme (who expires what, when); apart, each would restate it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from server.feeds import SessionFeed

log = logging.getLogger(__name__)

# Ops written in one pipeline round trip.
_BATCH = 512
# How long one XREAD waits for new events before the reader checks the owner's lease.
_READ_BLOCK_MS = 2000
# Ended sessions' mirrors kept per process (late viewers and subtitles of recent talks).
_MIRRORS_KEPT = 200
# Events a mirror keeps for late viewers (as a gateway keeps for its own sessions).
_MIRROR_EVENTS = 50_000


def session_key(session_id: str) -> str:
    return f"rasst:s:{session_id}"


def viewer_key(token: str) -> str:
    return f"rasst:v:{token}"


def events_key(session_id: str) -> str:
    return f"rasst:e:{session_id}"


def resume_key(digest: str) -> str:
    return f"rasst:r:{digest}"


@dataclass(frozen=True, slots=True)
class BusParams:
    url: str
    # How other pods reach this one (http://host:port): resumes are forwarded there.
    pod_address: str
    # Events kept per session in its stream (approximate trim): the cross-pod replay buffer.
    stream_max_events: int = 20_000
    # A live session's entries expire this long after the owner last renewed them, so a
    # crashed pod's sessions disappear from the directory by themselves.
    lease_seconds: float = 15.0
    # An ended session's stream and entries are kept this long (late viewers, subtitles).
    retain_seconds: float = 3600.0
    # Writes waiting while Redis is down; past this, new events are dropped (and counted).
    outbox_limit: int = 20_000
    connect_timeout: float = 2.0


@dataclass(frozen=True, slots=True)
class _Op:
    kind: str  # "open" | "event" | "end" | "token" | "untoken"
    session_id: str = ""
    text: str = ""
    retain: bool = True
    feed: SessionFeed | None = None
    digest: str = ""


@dataclass(frozen=True, slots=True)
class RemoteFeed:
    """A session found in the directory (held by some pod, maybe this one)."""

    session_id: str
    tenant: str
    viewer_token: str
    live: bool


class EventBus:
    """One per gateway process: writes its sessions to Redis, reads other pods' sessions."""

    def __init__(self, params: BusParams) -> None:
        self.params = params
        self._redis = aioredis.Redis.from_url(
            params.url,
            decode_responses=True,
            socket_connect_timeout=params.connect_timeout,
            # Above the XREAD block, so a blocked read is not mistaken for a dead socket.
            socket_timeout=_READ_BLOCK_MS / 1000 + 5.0,
        )
        self._outbox: deque[_Op] = deque()
        self._wake = asyncio.Event()
        self._live: dict[str, SessionFeed] = {}
        self._tokens: dict[str, str] = {}
        self._mirrors: OrderedDict[str, SessionFeed] = OrderedDict()
        self._mirror_tasks: set[asyncio.Task[None]] = set()
        self._mirror_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.healthy = True
        self.dropped_events = 0
        self._health_listeners: list[Callable[[bool], None]] = []

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Check Redis once (a wrong URL is reported at start-up), then run the writer."""
        try:
            async with asyncio.timeout(self.params.connect_timeout + 1.0):
                await self._redis.ping()
        except (RedisError, OSError, TimeoutError) as exc:
            # Sessions do not need the bus: start degraded and recover when Redis answers.
            self._set_health(False, f"Redis unreachable at start-up: {exc!r}")
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def aclose(self) -> None:
        # What the outbox still holds (the last sessions' ends) gets a short chance to land.
        if self.healthy and self._outbox:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    while self._outbox:
                        await self._flush()
        for task in [self._task, *self._mirror_tasks]:
            if task is not None:
                task.cancel()
        await asyncio.gather(
            *(t for t in [self._task, *self._mirror_tasks] if t is not None),
            return_exceptions=True,
        )
        await self._redis.aclose()

    def on_health(self, listener: Callable[[bool], None]) -> None:
        self._health_listeners.append(listener)

    # -- the owner's side: FeedSink (called on the event loop; never blocks) ------------------

    def opened(self, feed: SessionFeed) -> None:
        self._live[feed.session_id] = feed
        self._push(_Op("open", feed.session_id, feed=feed))

    def published(self, feed: SessionFeed, text: str, retain: bool) -> None:
        if len(self._outbox) >= self.params.outbox_limit:
            self.dropped_events += 1
            return
        self._push(_Op("event", feed.session_id, text=text, retain=retain))

    def closed(self, feed: SessionFeed) -> None:
        self._live.pop(feed.session_id, None)
        self._push(_Op("end", feed.session_id, feed=feed))

    def resume_token_issued(self, digest: str, session_id: str) -> None:
        self._tokens[digest] = session_id
        self._push(_Op("token", session_id, digest=digest))

    def resume_token_dropped(self, digest: str) -> None:
        if self._tokens.pop(digest, None) is not None:
            self._push(_Op("untoken", digest=digest))

    def _push(self, op: _Op) -> None:
        self._outbox.append(op)
        self._wake.set()

    # -- the readers' side ---------------------------------------------------------------------

    async def find_token(self, token: str) -> RemoteFeed | None:
        """The session behind a viewer token, from the directory (None: unknown or expired)."""
        session_id = await self._redis.get(viewer_key(token))
        return await self.find_session(session_id) if session_id else None

    async def find_session(self, session_id: str) -> RemoteFeed | None:
        entry = await self._redis.hgetall(session_key(session_id))
        if not entry:
            return None
        return RemoteFeed(
            session_id=session_id,
            tenant=entry.get("tenant", ""),
            viewer_token=entry.get("token", ""),
            live=entry.get("live") == "1",
        )

    async def resume_owner(self, digest: str) -> str | None:
        """The address of the pod holding the session of a resume token (by its digest)."""
        owner: str | None = await self._redis.get(resume_key(digest))
        return owner

    async def recorded(self, session_id: str) -> list[dict[str, Any]]:
        """A session's kept events, decoded (for subtitles), read from its stream."""
        events: list[dict[str, Any]] = []
        async for _, fields in self._range(session_id):
            if fields.get("r") == "1":
                events.append(json.loads(fields["t"]))
        return events

    async def mirror(self, remote: RemoteFeed) -> SessionFeed:
        """A local feed that follows another pod's session: viewers here read it like any feed.

        One mirror per session and process, however many viewers it has: one Redis reader.
        """
        async with self._mirror_lock:
            mirror = self._mirrors.get(remote.session_id)
            if mirror is not None:
                return mirror
            mirror = SessionFeed(
                remote.session_id, remote.tenant, _MIRROR_EVENTS, viewer_token=remote.viewer_token
            )
            last = "0-0"
            ended = False
            # The whole backlog first: a viewer must not see it arrive through its bounded queue.
            async for entry_id, fields in self._range(remote.session_id):
                last = entry_id
                if "end" in fields:
                    ended = True
                    break
                mirror.publish(fields["t"], retain=fields.get("r") == "1")
            self._mirrors[remote.session_id] = mirror
            self._forget_old_mirrors()
            if ended:
                mirror.close()
            else:
                task = asyncio.get_running_loop().create_task(self._follow(mirror, last))
                self._mirror_tasks.add(task)
                task.add_done_callback(self._mirror_tasks.discard)
            return mirror

    async def _follow(self, mirror: SessionFeed, last: str) -> None:
        key = events_key(mirror.session_id)
        try:
            while True:
                try:
                    found = await self._redis.xread({key: last}, count=_BATCH, block=_READ_BLOCK_MS)
                except (RedisError, OSError) as exc:
                    mirror.close(f"the event bus is unavailable ({type(exc).__name__})")
                    return
                if not found:
                    remote = await self._lookup_quietly(mirror.session_id)
                    if remote is None:
                        mirror.close("the gateway holding this session is gone")
                        return
                    if not remote.live:
                        # Ended, and its end marker is not coming (the stream was lost).
                        mirror.close()
                        return
                    continue
                for entry_id, fields in found[0][1]:
                    last = entry_id
                    if "end" in fields:
                        mirror.close()
                        return
                    mirror.publish(fields["t"], retain=fields.get("r") == "1")
        finally:
            if mirror.live:
                mirror.close("the viewer relay stopped")

    async def _lookup_quietly(self, session_id: str) -> RemoteFeed | None:
        try:
            return await self.find_session(session_id)
        except (RedisError, OSError):
            return None

    async def _range(self, session_id: str) -> Any:
        key = events_key(session_id)
        start = "-"
        while True:
            page = await self._redis.xrange(key, min=start, max="+", count=1000)
            for entry_id, fields in page:
                yield entry_id, fields
            if len(page) < 1000:
                return
            start = "(" + page[-1][0]

    def _forget_old_mirrors(self) -> None:
        ended = [sid for sid, feed in self._mirrors.items() if not feed.live]
        for session_id in ended[: max(0, len(ended) - _MIRRORS_KEPT)]:
            del self._mirrors[session_id]

    # -- the writer --------------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = 0.5
        renew_every = self.params.lease_seconds / 3
        next_renew = time.monotonic() + renew_every
        while True:
            try:
                if not self.healthy:
                    await self._redis.ping()
                    await self._recover()
                    self._set_health(True, "Redis is back")
                # Cleared before draining: an event pushed while a flush awaits Redis wakes
                # the next round instead of waiting for the next renewal.
                self._wake.clear()
                while self._outbox:
                    await self._flush()
                if time.monotonic() >= next_renew:
                    await self._renew()
                    next_renew = time.monotonic() + renew_every
                backoff = 0.5
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, next_renew - time.monotonic())):
                        await self._wake.wait()
            except (RedisError, OSError) as exc:
                self._set_health(False, f"Redis unavailable: {exc!r}")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _flush(self) -> None:
        ops = [self._outbox[i] for i in range(min(_BATCH, len(self._outbox)))]
        p = self.params
        lease = max(1, round(p.lease_seconds))
        retain = max(1, round(p.retain_seconds))
        pipe = self._redis.pipeline(transaction=False)
        streams: set[str] = set()
        for op in ops:
            if op.kind == "open":
                assert op.feed is not None
                self._write_entry(pipe, op.feed, lease)
            elif op.kind == "event":
                pipe.xadd(
                    events_key(op.session_id),
                    {"t": op.text, "r": "1" if op.retain else "0"},
                    maxlen=p.stream_max_events,
                    approximate=True,
                )
                streams.add(op.session_id)
            elif op.kind == "end":
                assert op.feed is not None
                key = events_key(op.session_id)
                pipe.xadd(key, {"end": "1"}, maxlen=p.stream_max_events, approximate=True)
                pipe.hset(session_key(op.session_id), "live", "0")
                for k in (key, session_key(op.session_id), viewer_key(op.feed.viewer_token)):
                    pipe.expire(k, retain)
                streams.discard(op.session_id)
            elif op.kind == "token":
                pipe.set(resume_key(op.digest), p.pod_address, ex=lease)
            elif op.kind == "untoken":
                pipe.delete(resume_key(op.digest))
        for session_id in streams:
            if session_id in self._live:
                pipe.expire(events_key(session_id), lease)
        await pipe.execute()
        for _ in ops:
            self._outbox.popleft()

    def _write_entry(self, pipe: Any, feed: SessionFeed, lease: int) -> None:
        key = session_key(feed.session_id)
        pipe.hset(
            key,
            mapping={
                "tenant": feed.tenant,
                "token": feed.viewer_token,
                "owner": self.params.pod_address,
                "live": "1",
                "opened_at": f"{feed.opened_at:.3f}",
            },
        )
        pipe.expire(key, lease)
        pipe.set(viewer_key(feed.viewer_token), feed.session_id, ex=lease)

    async def _renew(self) -> None:
        """Extend the leases of this pod's live sessions and resume tokens."""
        if not self._live and not self._tokens:
            return
        lease = max(1, round(self.params.lease_seconds))
        pipe = self._redis.pipeline(transaction=False)
        for session_id, feed in self._live.items():
            for key in (session_key(session_id), viewer_key(feed.viewer_token)):
                pipe.expire(key, lease)
            pipe.expire(events_key(session_id), lease)
        for digest in self._tokens:
            pipe.expire(resume_key(digest), lease)
        await pipe.execute()

    async def _recover(self) -> None:
        """Redis answers again: re-register what it may have lost (a restart loses everything).

        A live session whose stream is gone gets its kept events back from the local feed;
        events queued for it during the outage are then superseded and dropped.
        """
        lease = max(1, round(self.params.lease_seconds))
        lost = set()
        for session_id in self._live:
            if not await self._redis.exists(events_key(session_id)):
                lost.add(session_id)
        if lost:
            self._outbox = deque(
                op for op in self._outbox if not (op.kind == "event" and op.session_id in lost)
            )
        pipe = self._redis.pipeline(transaction=False)
        for session_id, feed in self._live.items():
            self._write_entry(pipe, feed, lease)
            if session_id in lost:
                for text in feed.retained():
                    pipe.xadd(
                        events_key(session_id),
                        {"t": text, "r": "1"},
                        maxlen=self.params.stream_max_events,
                        approximate=True,
                    )
                pipe.expire(events_key(session_id), lease)
        for digest in self._tokens:
            pipe.set(resume_key(digest), self.params.pod_address, ex=lease)
        await pipe.execute()

    def _set_health(self, healthy: bool, why: str) -> None:
        if healthy == self.healthy:
            return
        self.healthy = healthy
        if healthy:
            log.info("event bus: %s", why)
        else:
            log.warning("event bus degraded: %s", why)
        for listener in list(self._health_listeners):
            try:
                listener(healthy)
            except Exception:
                log.exception("event bus health listener failed")
