"""The glossary service as a streaming session sees it: auth, snapshots, live changes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence

from glossary.auth import authenticate
from glossary.live import GlossaryWatcher
from glossary.model import GlossarySnapshot
from glossary.store import GlossaryStore


class StoreGlossaryAccess:
    """Reads the glossary store off the event loop; implements ``GlossaryAccess``."""

    def __init__(self, store: GlossaryStore, *, auth_enabled: bool, poll_interval: float = 1.0):
        self._store = store
        self._auth_enabled = auth_enabled
        self._watcher = GlossaryWatcher(store, poll_interval=poll_interval)

    async def authenticate(self, api_key: str | None) -> str:
        return await asyncio.to_thread(
            authenticate, self._store, api_key, auth_enabled=self._auth_enabled
        )

    @property
    def store(self) -> GlossaryStore:
        return self._store

    async def load(self, tenant: str, ids: Sequence[str]) -> list[GlossarySnapshot]:
        unique = list(dict.fromkeys(ids))
        return await asyncio.to_thread(
            lambda: [self._store.get_snapshot(tenant, glossary_id) for glossary_id in unique]
        )

    def watch(
        self, tenant: str, ids: Sequence[str], since: Mapping[str, int]
    ) -> AsyncIterator[list[GlossarySnapshot]]:
        return self._watcher.watch(tenant, ids, since=since)
