"""The shared event bus of several gateway replicas, on Redis (``RASST_REDIS_URL``).

Without it a gateway works alone: feeds, the replay buffer and resume tokens live in its
memory. With it, every pod also writes:

- each session's events to a Redis Stream ``rasst:e:{session}`` (bounded length: the
  cross-pod replay buffer; live viewers on any pod read it);
- a directory entry ``rasst:s:{session}`` (tenant, viewer token, owning pod's internal
  address, live or ended) and ``rasst:v:{viewer token}`` → session, with a lease the owner
  renews while the session lives and a retention once it ended;
- ``rasst:r:{sha256(resume token)}`` → owner, so a ``session.resume`` landing on another pod is
  forwarded to the owner over an internal WebSocket hop (``forward``).

Writes never block a session: they go through an outbox drained by one task per process.
When Redis is down, sessions go on; their speakers get one ``bus_unavailable`` warning, the
outbox keeps the newest events (bounded), and everything is re-registered on recovery.
"""

from server.bus.redis_bus import BusParams, EventBus, RemoteFeed

__all__ = ["BusParams", "EventBus", "RemoteFeed"]
