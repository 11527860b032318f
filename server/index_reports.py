"""Never silent while a glossary is indexed: warnings with progress, then glossary.updated.

A 100k-term glossary used to leave its first sessions with ``terms: []`` for a minute and
nothing said why. Now:

* an upload starts its index build at once (:func:`build_on_upload`), not when the first
  session asks for it;
* a session whose glossary is not searchable yet gets a ``glossary_indexing`` warning with
  the build's progress every few seconds, and a ``glossary.updated`` (``searchable: true``)
  the moment it is (:func:`report_indexing`);
* REST (``GET /v1/glossaries``) and ``/readyz`` show each index's state
  (:func:`index_status_fn`, :func:`index_summary`).

Only the embedded retriever builds indexes in this process; with a remote retriever
service these report nothing (``index: null``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from glossary.index_status import IndexStatus, IndexStatusFn
from glossary.model import GlossarySnapshot
from glossary.store import GlossaryChange, GlossaryStore
from kernel.errors import ErrorCode, RasstError
from kernel.frames import StageWarning
from retriever.index import IndexManager, IndexState
from server.protocol import GlossarySearchable, GlossaryUpdated

log = logging.getLogger(__name__)

StateFn = Callable[[str], IndexState | None]


def index_manager(retriever: object) -> IndexManager | None:
    indexes = getattr(retriever, "indexes", None)
    return indexes if isinstance(indexes, IndexManager) else None


def index_status_fn(retriever: object) -> IndexStatusFn:
    manager = index_manager(retriever)

    def status(glossary_id: str) -> IndexStatus | None:
        if manager is None:
            return None
        state = manager.state(glossary_id)
        if state is None:
            return IndexStatus(state="not_loaded")
        return IndexStatus(
            state=state.state,  # type: ignore[arg-type]
            version=state.version,
            searchable_version=state.searchable_version,
            progress=state.progress,
            kind=state.kind,
        )

    return status


def index_summary(retriever: object) -> dict[str, Any] | None:
    """For ``/readyz``: how many indexes are ready, and every one still building."""
    manager = index_manager(retriever)
    if manager is None:
        return None
    states = manager.states()
    return {
        "ready": sum(s.state == "ready" for s in states),
        "building": [
            {"id": s.glossary_id, "version": s.version, "progress": s.progress, "terms": s.n_terms}
            for s in states
            if s.state == "building"
        ],
        "failed": [s.glossary_id for s in states if s.state == "failed"],
    }


def build_on_upload(store: GlossaryStore, retriever: object) -> Callable[[], None]:
    """Start indexing every glossary written through ``store`` at once; returns unsubscribe."""
    manager = index_manager(retriever)
    if manager is None:
        return lambda: None

    def load_and_build(change: GlossaryChange) -> None:
        try:
            snapshot = store.get_snapshot(change.tenant, change.glossary_id)
        except RasstError as exc:
            if exc.code is not ErrorCode.GLOSSARY_NOT_FOUND:
                log.warning("could not load glossary %s to index it: %s", change.glossary_id, exc)
            manager.withdraw(change.glossary_id, change.version)
            return
        if snapshot.version == change.version:  # else a newer change follows with its own
            manager.update(snapshot)

    def on_change(change: GlossaryChange) -> None:
        # Runs on the writer's thread: loading a big snapshot is not its job.
        if change.version == 0:
            manager.drop(change.glossary_id)
            return
        manager.announce(change.glossary_id, change.version)
        threading.Thread(
            target=load_and_build, args=(change,), name="index-on-upload", daemon=True
        ).start()

    return store.subscribe(on_change)


def in_use(glossaries: Sequence[GlossarySnapshot], state_of: StateFn) -> list[GlossarySearchable]:
    out = []
    for g in glossaries:
        state = state_of(g.id)
        out.append(
            GlossarySearchable(
                id=g.id,
                version=g.version,
                entries=len(g.entries),
                searchable=state is not None and state.searchable,
            )
        )
    return out


async def report_indexing(
    retriever: object,
    glossaries: Callable[[], Sequence[GlossarySnapshot]],
    warn: Callable[[StageWarning], None],
    emit: Callable[[GlossaryUpdated], None],
    *,
    poll_seconds: float = 0.5,
    warn_every_seconds: float = 5.0,
) -> None:
    """Warn while any of the session's glossaries is not searchable; returns once all are."""
    manager = index_manager(retriever)
    if manager is None:
        return
    last_warned: dict[str, float] = {}
    while True:
        current = list(glossaries())
        now = time.monotonic()
        waiting = 0
        for g in current:
            state = manager.state(g.id)
            if state is not None and state.searchable:
                continue
            if state is not None and state.state == "failed" and g.id in last_warned:
                continue  # said once; nothing will change until a new version
            waiting += 1
            if now - last_warned.get(g.id, -1e9) < warn_every_seconds:
                continue
            last_warned[g.id] = now
            progress = state.progress if state is not None else 0.0
            failed = state is not None and state.state == "failed"
            warn(
                StageWarning(
                    ErrorCode.GLOSSARY_INDEXING,
                    f"glossary {g.id} ({len(g.entries)} terms) "
                    + (
                        "could not be indexed; its terms are not retrieved"
                        if failed
                        else f"is being indexed ({progress:.0%}); "
                        "its terms start when a glossary.updated says it is searchable"
                    ),
                    glossary_id=g.id,
                    progress=progress,
                )
            )
        if not waiting:
            if last_warned:
                emit(GlossaryUpdated(glossaries=in_use(current, manager.state)))
            return
        await asyncio.sleep(poll_seconds)
