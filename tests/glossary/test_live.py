from __future__ import annotations

import asyncio
import time

import pytest

from glossary.live import GlossaryWatcher
from glossary.model import GlossaryEntry, GlossarySnapshot
from glossary.store import GlossaryStore
from kernel.errors import ErrorCode, RasstError

ENTRY = GlossaryEntry("GPU", {"de": ("Grafikprozessor",)})


async def _next(updates: object, seconds: float) -> list[GlossarySnapshot]:
    return await asyncio.wait_for(updates.__anext__(), seconds)  # type: ignore[attr-defined]


async def test_local_write_reaches_the_watcher_at_once(store: GlossaryStore) -> None:
    first = store.create_glossary("default", "a", "en", [ENTRY])
    second = store.create_glossary("default", "b", "en", [ENTRY])
    # A poll interval far longer than the test: only the in-process notification can be in time.
    updates = GlossaryWatcher(store, poll_interval=60).watch(
        "default", [first.id, second.id], since={first.id: 1, second.id: 1}
    )
    pending = asyncio.ensure_future(_next(updates, 5))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await asyncio.to_thread(
        store.patch_glossary, "default", first.id, add=[GlossaryEntry("LoRA", {})]
    )
    snapshots = await pending
    assert time.monotonic() - started < 2
    assert [(s.id, s.version) for s in snapshots] == [(first.id, 2), (second.id, 1)]
    assert [e.source for e in snapshots[0].entries] == ["GPU", "LoRA"]

    await asyncio.to_thread(store.delete_glossary, "default", second.id)
    assert [s.id for s in await _next(updates, 5)] == [first.id]
    await updates.aclose()


async def test_change_from_another_process_is_seen_by_polling(
    store: GlossaryStore, database_url: str
) -> None:
    info = store.create_glossary("default", "a", "en", [ENTRY])
    # A separate store object shares no listeners: like another gateway replica or the CLI.
    elsewhere = GlossaryStore.from_url(database_url)
    try:
        updates = GlossaryWatcher(store, poll_interval=0.2).watch("default", [info.id])
        pending = asyncio.ensure_future(_next(updates, 10))
        await asyncio.sleep(0.5)
        await asyncio.to_thread(
            elsewhere.replace_glossary,
            "default",
            info.id,
            name="a",
            source_language="en",
            entries=[GlossaryEntry("BLEU", {})],
        )
        snapshots = await pending
        assert [(s.version, s.entries[0].source) for s in snapshots] == [(2, "BLEU")]
        await updates.aclose()
    finally:
        elsewhere.close()


async def test_other_tenants_changes_are_not_delivered(store: GlossaryStore) -> None:
    other = store.create_tenant("other").id
    theirs = store.create_glossary(other, "t", "en", [ENTRY])
    updates = GlossaryWatcher(store, poll_interval=0.1).watch("default", [theirs.id])
    pending = asyncio.ensure_future(_next(updates, 1.0))
    await asyncio.to_thread(store.patch_glossary, other, theirs.id, remove=["GPU"])
    done, _ = await asyncio.wait([pending], timeout=0.8)
    assert not done
    pending.cancel()
    await asyncio.gather(pending, return_exceptions=True)
    await updates.aclose()


class _FlakyStore:
    """A store whose database is unavailable for the first ``outage`` polls."""

    def __init__(self, store: GlossaryStore, outage: int) -> None:
        self._store = store
        self.outage = outage
        self.polls = 0

    def subscribe(self, listener: object) -> object:
        return self._store.subscribe(listener)  # type: ignore[arg-type]

    def current_versions(self, tenant: str, ids: list[str]) -> dict[str, int]:
        self.polls += 1
        if self.polls <= self.outage:
            raise RasstError(ErrorCode.STORE_UNAVAILABLE, "down")
        return self._store.current_versions(tenant, ids)

    def get_snapshot(self, tenant: str, glossary_id: str) -> GlossarySnapshot:
        return self._store.get_snapshot(tenant, glossary_id)


async def test_watch_survives_a_database_outage_and_delivers_the_change_made_meanwhile(
    store: GlossaryStore,
) -> None:
    info = store.create_glossary("default", "a", "en", [ENTRY])
    flaky = _FlakyStore(store, outage=4)
    watcher = GlossaryWatcher(flaky, poll_interval=0.05, max_retry_interval=0.2)  # type: ignore[arg-type]
    updates = watcher.watch("default", [info.id], since={info.id: 1})
    pending = asyncio.ensure_future(_next(updates, 10))
    await asyncio.sleep(0.02)
    # Made during the outage (by another process: no notification reaches the watcher).
    GlossaryStore.patch_glossary(store, "default", info.id, add=[GlossaryEntry("LoRA", {})])
    snapshots = await pending
    assert flaky.polls > flaky.outage, "the watcher kept polling through the outage"
    assert [(s.id, s.version) for s in snapshots] == [(info.id, 2)]
    await updates.aclose()


async def test_watch_does_not_hide_other_store_errors(store: GlossaryStore) -> None:
    info = store.create_glossary("default", "a", "en", [ENTRY])

    class Broken(_FlakyStore):
        def current_versions(self, tenant: str, ids: list[str]) -> dict[str, int]:
            raise RasstError(ErrorCode.INTERNAL_ERROR, "a bug")

    watcher = GlossaryWatcher(Broken(store, 0), poll_interval=0.05)  # type: ignore[arg-type]
    updates = watcher.watch("default", [info.id], since={info.id: 1})
    with pytest.raises(RasstError) as raised:
        await _next(updates, 5)
    assert raised.value.code is ErrorCode.INTERNAL_ERROR
