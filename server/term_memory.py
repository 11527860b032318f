"""Automatic (``"term_memory": "auto"``) sessions: load the tenant's slices, route each chunk.

The retriever searches every slice; :class:`RoutedRetriever` tells it which glossaries may
report (base slices and the domains the router switched on), feeds the router each chunk's
evidence and sends the router's decisions as ``term_memory.routed`` events. Routing needs
the evidence of every slice, which only the embedded retriever exposes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from glossary.model import GlossarySnapshot
from glossary.term_memory import list_slices
from kernel.errors import ErrorCode, RasstError
from kernel.frames import AudioChunk, ChunkAnalysis, TermHits
from retriever.term_router import RouterParams, Slice, TermRouter
from server.glossary_access import StoreGlossaryAccess
from server.protocol import TermMemoryRouted
from server.retrieval import EmbeddedSessionRetriever
from server.stages import SessionRetriever


@dataclass(frozen=True, slots=True)
class TermMemory:
    slices: tuple[Slice, ...]
    snapshots: tuple[GlossarySnapshot, ...]  # the slices' glossaries plus any asked for


async def open_term_memory(
    access: object, tenant: str, also: Sequence[GlossarySnapshot]
) -> TermMemory:
    """The tenant's slices (with ``also``, the session's own glossaries, as base slices)."""
    if not isinstance(access, StoreGlossaryAccess):
        raise RasstError(ErrorCode.BAD_REQUEST, "term_memory needs the glossary store")
    records = await asyncio.to_thread(list_slices, access.store, tenant)
    if not records:
        raise RasstError(
            ErrorCode.GLOSSARY_NOT_FOUND,
            "this tenant has no term memory: add glossaries with PUT /v1/term-memory/slices/{id}",
        )
    loaded = await access.load(tenant, [r.glossary_id for r in records])
    own = [g for g in also if g.id not in {r.glossary_id for r in records}]
    slices = tuple(Slice(r.glossary_id, r.domain, r.base) for r in records) + tuple(
        Slice(g.id, "session", base=True) for g in own
    )
    return TermMemory(slices, tuple(loaded) + tuple(own))


class RoutedRetriever:
    """A session retriever that reports only the routed slices' terms."""

    def __init__(
        self,
        inner: SessionRetriever,
        memory: TermMemory,
        emit: Callable[[TermMemoryRouted], None],
        params: RouterParams | None = None,
    ) -> None:
        core = inner.core if isinstance(inner, EmbeddedSessionRetriever) else None
        if core is None:
            raise RasstError(
                ErrorCode.BAD_REQUEST, "term_memory auto needs the embedded phonetic retriever"
            )
        self._inner = inner
        self._core = core
        self._emit = emit
        self._router = TermRouter(memory.slices, params or RouterParams())
        for snapshot in memory.snapshots:
            self._router.register_terms(snapshot.id, (e.source for e in snapshot.entries))
        core.set_reporting(self._router.reportable_ids())

    async def retrieve(self, chunk: AudioChunk, analysis: ChunkAnalysis) -> TermHits:
        hits = await self._inner.retrieve(chunk, analysis)
        decision = self._router.observe(chunk.index, chunk.end_sample, self._core.evidence)
        # Every chunk: during the cold start the evidence leader may change.
        reportable = self._router.reportable_ids()
        self._core.set_reporting(reportable)
        if decision is not None:
            self._emit(
                TermMemoryRouted(
                    chunk=decision.chunk_index,
                    active=list(decision.active),
                    switched_on=list(decision.switched_on),
                    switched_off=list(decision.switched_off),
                    evidence=decision.evidence,
                    confidence=decision.confidence,
                    glossaries=list(reportable),
                )
            )
        return hits

    def set_glossaries(self, glossaries: Sequence[GlossarySnapshot]) -> None:
        self._inner.set_glossaries(glossaries)

    async def aclose(self) -> None:
        await self._inner.aclose()
