"""Live glossary updates for running sessions.

A session watches its glossary ids and receives fresh snapshots whenever one
of them changes version. Changes made through the same store object arrive at
once (in-process notification); changes made by another process (a second
gateway replica, the CLI against PostgreSQL) arrive within ``poll_interval``.
Database reads run in worker threads, so the event loop, and with it audio
processing, never waits for the store.

A database outage never ends a watch: while the store answers
``STORE_UNAVAILABLE`` the watcher keeps the versions it knows and retries with
a capped backoff (the session goes on with the glossaries it has); the first
successful poll afterwards delivers any change made meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping, Sequence

from glossary.model import GlossarySnapshot
from glossary.store import GlossaryChange, GlossaryStore
from kernel.errors import ErrorCode, RasstError

log = logging.getLogger(__name__)


class GlossaryWatcher:
    def __init__(
        self, store: GlossaryStore, poll_interval: float = 1.0, max_retry_interval: float = 5.0
    ) -> None:
        self.store = store
        self.poll_interval = poll_interval
        # Longest wait between polls while the database is unavailable.
        self.max_retry_interval = max(max_retry_interval, poll_interval)

    async def watch(
        self,
        tenant: str,
        ids: Sequence[str],
        *,
        since: Mapping[str, int] | None = None,
    ) -> AsyncIterator[list[GlossarySnapshot]]:
        """Yield the current snapshots of ``ids`` (in that order) after every change.

        Each yielded list holds every watched glossary that still exists, changed
        or not; a deleted glossary is simply absent. Pass ``since`` (id ->
        version, e.g. from the snapshots the session started with) so that a
        change made between loading and watching is not missed; without it the
        versions at the first poll are the baseline.
        """
        ids = list(dict.fromkeys(ids))
        wanted = set(ids)
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()

        def on_change(change: GlossaryChange) -> None:
            if change.tenant == tenant and change.glossary_id in wanted:
                # RuntimeError: the session's loop has closed; there is nothing to wake.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(wake.set)

        unsubscribe = self.store.subscribe(on_change)
        cache: dict[tuple[str, int], GlossarySnapshot] = {}
        # None until the first poll when no baseline was given.
        known: dict[str, int] | None = dict(since) if since is not None else None
        wait = self.poll_interval if known is not None else 0.0
        failures = 0
        try:
            while True:
                if wait > 0:
                    try:
                        async with asyncio.timeout(wait):
                            await wake.wait()
                    except TimeoutError:
                        pass
                wake.clear()
                try:
                    versions = await asyncio.to_thread(self.store.current_versions, tenant, ids)
                    snapshots = None
                    if known is not None and versions != known:
                        snapshots = await asyncio.to_thread(
                            self._load, tenant, ids, versions, cache
                        )
                except RasstError as exc:
                    if exc.code is not ErrorCode.STORE_UNAVAILABLE:
                        raise
                    failures += 1
                    if failures == 1:
                        log.warning(
                            "glossary updates paused: the database is unavailable; retrying"
                        )
                    wait = min(self.poll_interval * 2**failures, self.max_retry_interval)
                    continue
                if failures:
                    log.info("glossary updates resumed after %d failed polls", failures)
                    failures = 0
                wait = self.poll_interval
                if known is None:
                    known = versions
                    continue
                if snapshots is None:
                    continue
                known = {s.id: s.version for s in snapshots}
                yield snapshots
        finally:
            unsubscribe()

    def _load(
        self,
        tenant: str,
        ids: list[str],
        versions: dict[str, int],
        cache: dict[tuple[str, int], GlossarySnapshot],
    ) -> list[GlossarySnapshot]:
        snapshots: list[GlossarySnapshot] = []
        for glossary_id in ids:
            version = versions.get(glossary_id)
            if version is None:
                continue
            snapshot = cache.get((glossary_id, version))
            if snapshot is None:
                try:
                    snapshot = self.store.get_snapshot(tenant, glossary_id)
                except RasstError as exc:
                    if exc.code is ErrorCode.GLOSSARY_NOT_FOUND:
                        continue  # deleted since the version poll
                    raise
            snapshots.append(snapshot)
        # Only the versions just loaded can be reused next time.
        cache.clear()
        cache.update({s.key: s for s in snapshots})
        return snapshots
