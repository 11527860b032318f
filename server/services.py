"""The long-lived services a session uses, built once at start-up by ``create_app``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from glossary.model import GlossarySnapshot
from server.errors import ErrorCode, RasstError
from server.feeds import FeedHub
from server.metrics import GatewayMetrics
from server.settings import Settings
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


class SessionRegistry:
    """Live sessions: admission against the capacity limit, and shutdown notice."""

    def __init__(self, max_sessions: int) -> None:
        self._max = max_sessions
        self._sessions: set[StreamSession] = set()
        self._closing = False
        self._empty = asyncio.Event()
        self._empty.set()

    def __len__(self) -> int:
        return len(self._sessions)

    @property
    def closing(self) -> bool:
        return self._closing

    def admit(self, session: StreamSession) -> None:
        if self._closing:
            raise RasstError(ErrorCode.SHUTTING_DOWN, "the server is shutting down")
        if len(self._sessions) >= self._max:
            raise RasstError(
                ErrorCode.SERVER_BUSY,
                f"the server is at its limit of {self._max} concurrent sessions; retry later",
            )
        self._sessions.add(session)
        self._empty.clear()

    def remove(self, session: StreamSession) -> None:
        self._sessions.discard(session)
        if not self._sessions:
            self._empty.set()

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


@dataclass
class GatewayServices:
    settings: Settings
    metrics: GatewayMetrics
    speech: SpeechWorkers
    sessions: SessionRegistry
    glossaries: GlossaryAccess | None = None
    retriever: RetrieverService | None = None
    translator: TranslatorService | None = None
    feeds: FeedHub = field(default_factory=FeedHub)
    extras: dict[str, object] = field(default_factory=dict)
