"""A tenant's term memory: its glossaries grouped as slices with a domain label.

Stored in ``term_memory_slices`` next to the glossaries (a glossary is in at most one
slice; deleting the glossary removes it). A session started with ``"term_memory": "auto"``
searches every slice: base slices always report, domain slices only once the router
(:mod:`retriever.term_router`) switched them on from what was said.

REST: ``GET /v1/term-memory``, ``PUT /v1/term-memory/slices/{glossary_id}``
(``{"domain": "nlp", "base": false}``), ``DELETE /v1/term-memory/slices/{glossary_id}``.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, Field
from sqlalchemy import delete, insert, select, update

from glossary.router import StoreDep, TenantDep
from glossary.store import GlossaryStore
from glossary.tables import glossaries, term_memory_slices


@dataclass(frozen=True, slots=True)
class SliceRecord:
    glossary_id: str
    domain: str
    base: bool
    name: str
    entry_count: int
    version: int


def list_slices(store: GlossaryStore, tenant: str) -> list[SliceRecord]:
    with store._read() as conn:
        rows = conn.execute(
            select(
                term_memory_slices.c.glossary_id,
                term_memory_slices.c.domain,
                term_memory_slices.c.base,
                glossaries.c.name,
                glossaries.c.entry_count,
                glossaries.c.version,
            )
            .join(glossaries, glossaries.c.id == term_memory_slices.c.glossary_id)
            .where(term_memory_slices.c.tenant_id == tenant)
            .order_by(term_memory_slices.c.domain, term_memory_slices.c.glossary_id)
        )
        return [SliceRecord(r[0], r[1], bool(r[2]), r[3], int(r[4]), int(r[5])) for r in rows]


def put_slice(store: GlossaryStore, tenant: str, glossary_id: str, domain: str, base: bool) -> None:
    """Add the glossary to the tenant's term memory, or change its label."""
    with store._write() as conn:
        store._info(conn, tenant, glossary_id)  # GLOSSARY_NOT_FOUND for another tenant's id
        found = conn.execute(
            select(term_memory_slices.c.glossary_id).where(
                term_memory_slices.c.glossary_id == glossary_id
            )
        ).first()
        values = {"domain": domain, "base": base}
        if found is None:
            conn.execute(
                insert(term_memory_slices).values(
                    glossary_id=glossary_id, tenant_id=tenant, **values
                )
            )
        else:
            conn.execute(
                update(term_memory_slices)
                .where(term_memory_slices.c.glossary_id == glossary_id)
                .values(**values)
            )


def remove_slice(store: GlossaryStore, tenant: str, glossary_id: str) -> None:
    with store._write() as conn:
        conn.execute(
            delete(term_memory_slices).where(
                term_memory_slices.c.glossary_id == glossary_id,
                term_memory_slices.c.tenant_id == tenant,
            )
        )


# -- REST -----------------------------------------------------------------------------------

router = APIRouter(prefix="/v1")


class SliceIn(BaseModel):
    domain: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    base: bool = Field(default=False, description="Always on in automatic sessions.")


class SliceOut(BaseModel):
    glossary_id: str
    domain: str
    base: bool
    name: str
    entry_count: int
    version: int


class TermMemoryOut(BaseModel):
    slices: list[SliceOut]


@router.get("/term-memory", tags=["term memory"], response_model=TermMemoryOut)
def get_term_memory(store: StoreDep, tenant: TenantDep) -> TermMemoryOut:
    return TermMemoryOut(
        slices=[
            SliceOut(
                glossary_id=s.glossary_id,
                domain=s.domain,
                base=s.base,
                name=s.name,
                entry_count=s.entry_count,
                version=s.version,
            )
            for s in list_slices(store, tenant)
        ]
    )


@router.put(
    "/term-memory/slices/{glossary_id}",
    tags=["term memory"],
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
)
def put_term_memory_slice(
    glossary_id: str, body: SliceIn, store: StoreDep, tenant: TenantDep
) -> None:
    put_slice(store, tenant, glossary_id, body.domain, body.base)


@router.delete(
    "/term-memory/slices/{glossary_id}",
    tags=["term memory"],
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
)
def delete_term_memory_slice(glossary_id: str, store: StoreDep, tenant: TenantDep) -> None:
    remove_slice(store, tenant, glossary_id)
