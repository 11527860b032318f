"""The long-lived services a session uses, built once at start-up by ``create_app``."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from glossary.model import GlossarySnapshot
from kernel.errors import ErrorCode, RasstError
from server.bus import EventBus
from server.feeds import FeedHub
from server.metrics import GatewayMetrics
from server.ratelimit import RateLimiter
from server.settings import Settings
from server.sinks.hub import SinkHub
from server.stages import RetrieverService, TranslatorService
from server.workers import SpeechWorkers

if TYPE_CHECKING:
    from server.session import StreamSession


class GlossaryAccess(Protocol):
    """What a streaming session needs from the glossary service."""

    async def authenticate(self, api_key: str | None) -> str:
        """The tenant of ``api_key``; raises RasstError(UNAUTHORIZED)."""
        ...

    async def load(self, tenant: str, ids: Sequence[str]) -> list[GlossarySnapshot]:
        """Current snapshots; raises RasstError(GLOSSARY_NOT_FOUND) for unknown or foreign ids."""
        ...

    def watch(
        self, tenant: str, ids: Sequence[str], since: Mapping[str, int]
    ) -> AsyncIterator[list[GlossarySnapshot]]:
        """Yields the current snapshots each time one of the glossaries changes version.

        ``since`` holds the versions the session loaded, so no change is missed.
        """
        ...


@dataclass(frozen=True, slots=True)
class AdmissionParams:
    """Capacity limits. A limit of 0 is no limit of its own (``max_sessions`` still applies)."""

    max_sessions: int
    max_per_tenant: int = 0
    # Dropped sessions waiting for session.resume, per caller (API key, else client
    # address) and per tenant. Past a budget the oldest of that caller or tenant ends.
    max_detached_per_caller: int = 0
    max_detached_per_tenant: int = 0


@dataclass(frozen=True, slots=True)
class _Detached:
    caller: str
    tenant: str


class SessionRegistry:
    """Live sessions: admission against the capacity limits, resume tokens, shutdown notice.

    A dropped session that waits for ``session.resume`` still holds its slot; so that
    dropped connections cannot lock normal clients out, those sessions have their own
    budget per caller and per tenant, and the oldest of them is evicted (ends as
    ``disconnected``) before a new session is refused with ``server_busy``.
    """

    def __init__(self, params: AdmissionParams, metrics: GatewayMetrics | None = None) -> None:
        self._params = params
        self._max = params.max_sessions
        self._max_per_tenant = params.max_per_tenant
        self._metrics = metrics
        self._sessions: set[StreamSession] = set()
        # Oldest first: insertion order is the order the connections dropped in.
        self._detached: dict[StreamSession, _Detached] = {}
        if metrics is not None:
            metrics.sessions_detached.set_function(lambda: len(self._detached))
        self._per_tenant: Counter[str] = Counter()
        self._tenant_of: dict[StreamSession, str] = {}
        # sha256(resume token) -> session: the registry never holds a usable token.
        self._resumable: dict[str, StreamSession] = {}
        self._closing = False
        self._empty = asyncio.Event()
        self._empty.set()
        # With several replicas, resume tokens are also published on the bus.
        self.bus: EventBus | None = None

    def __len__(self) -> int:
        return len(self._sessions)

    @property
    def closing(self) -> bool:
        return self._closing

    def admit(self, session: StreamSession, tenant: str) -> None:
        if self._closing:
            raise RasstError(ErrorCode.SHUTTING_DOWN, "the server is shutting down")
        if len(self._sessions) >= self._max and self._detached:
            self._evict(next(iter(self._detached)), "capacity")
        if len(self._sessions) >= self._max:
            raise RasstError(
                ErrorCode.SERVER_BUSY,
                f"the server is at its limit of {self._max} concurrent sessions; retry later",
            )
        if self._max_per_tenant and self._per_tenant[tenant] >= self._max_per_tenant:
            raise RasstError(
                ErrorCode.LIMIT_EXCEEDED,
                f"this API key's tenant already has {self._max_per_tenant} live sessions, "
                "its quota; end one first",
            )
        self._sessions.add(session)
        self._per_tenant[tenant] += 1
        self._tenant_of[session] = tenant
        self._empty.clear()

    def remove(self, session: StreamSession) -> None:
        self.reattached(session)
        if session in self._sessions:
            self._sessions.discard(session)
            tenant = self._tenant_of.pop(session)
            self._per_tenant[tenant] -= 1
            if not self._per_tenant[tenant]:
                del self._per_tenant[tenant]
        for digest in [d for d, s in self._resumable.items() if s is session]:
            del self._resumable[digest]
            if self.bus is not None:
                self.bus.resume_token_dropped(digest)
        if not self._sessions:
            self._empty.set()

    @property
    def detached_count(self) -> int:
        return len(self._detached)

    def detached(self, session: StreamSession, caller: str, tenant: str) -> None:
        """``session`` lost its connection and waits for a resume: apply the budgets."""
        if session not in self._sessions:
            return
        self._detached.pop(session, None)
        self._detached[session] = _Detached(caller, tenant)
        self._enforce("caller", self._params.max_detached_per_caller, lambda d: d.caller == caller)
        self._enforce("tenant", self._params.max_detached_per_tenant, lambda d: d.tenant == tenant)

    def reattached(self, session: StreamSession) -> None:
        self._detached.pop(session, None)

    def _enforce(self, budget: str, limit: int, same: Callable[[_Detached], bool]) -> None:
        if not limit:
            return
        mine = [s for s, d in self._detached.items() if same(d)]
        for session in mine[: max(0, len(mine) - limit)]:
            self._evict(session, budget)

    def _evict(self, session: StreamSession, budget: str) -> None:
        """End a dropped session now; its slot and resume token are freed at once."""
        self.remove(session)
        if self._metrics is not None:
            self._metrics.detached_evictions.labels(budget=budget).inc()
        session.evict()

    def issue_resume_token(self, session: StreamSession) -> str:
        token = secrets.token_urlsafe(32)
        digest = token_digest(token)
        self._resumable[digest] = session
        if self.bus is not None:
            self.bus.resume_token_issued(digest, session.session_id)
        return token

    def resumable(self, token: str) -> StreamSession | None:
        return self._resumable.get(token_digest(token))

    async def shutdown(self, grace_seconds: float) -> None:
        """Refuse new sessions, ask live ones to finish, wait up to the grace period."""
        self._closing = True
        for session in list(self._sessions):
            session.request_shutdown()
        try:
            async with asyncio.timeout(grace_seconds):
                await self._empty.wait()
        except TimeoutError:
            for session in list(self._sessions):
                session.abort_now()


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class GatewayServices:
    settings: Settings
    metrics: GatewayMetrics
    speech: SpeechWorkers
    sessions: SessionRegistry
    glossaries: GlossaryAccess | None = None
    retriever: RetrieverService | None = None
    translator: TranslatorService | None = None
    # The translator works from the captions (the text tier): it gets every chunk,
    # silent ones too (an utterance's words are committed in the silence after it),
    # and itself decides when a request is due.
    translator_reads_captions: bool = False
    feeds: FeedHub = field(default_factory=FeedHub)
    sinks: SinkHub = field(default_factory=SinkHub)
    rate_limiter: RateLimiter = field(default_factory=lambda: RateLimiter(0, 1))
    # The shared event bus of several replicas (RASST_REDIS_URL); None: this process alone.
    bus: EventBus | None = None
