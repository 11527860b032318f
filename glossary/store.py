"""Durable, tenant-scoped glossary storage on SQLAlchemy (SQLite in WAL mode, or PostgreSQL).

Every write is one transaction: an upload either stores the whole glossary
and bumps its version, or leaves nothing behind. Every read and write takes
the tenant, and a glossary of another tenant is reported as not found (never
as forbidden, which would confirm that the id exists).

When the database cannot be reached (server down or restarting, connection
killed, pool exhausted, SQLite locked past its busy timeout) a call raises
``RasstError(STORE_UNAVAILABLE)``, which the API answers with 503: the caller
may retry, and nothing was written. Pooled connections are checked before
use (``pool_pre_ping``), so the store recovers by itself once the database
answers again.

Why one module past 400 lines: every glossary write (create, replace, patch, delete) follows one
versioning and locking scheme, kept in one place; tenants and keys (``glossary.tenants``) and
the engine (``glossary.database``) are their own modules.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    delete,
    func,
    insert,
    select,
    text,
    update,
)

from glossary.database import create_store_engine, new_id, now, utc
from glossary.model import GlossaryEntry, GlossarySnapshot
from glossary.settings import GlossarySettings
from glossary.tables import glossaries, glossary_entries
from glossary.tenants import TenantAccounts
from glossary.validation import GlossaryLimits
from kernel.errors import ErrorCode, RasstError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GlossaryInfo:
    id: str
    tenant: str
    name: str
    source_language: str
    version: int
    entry_count: int
    target_languages: tuple[str, ...]
    created_at: datetime
    updated_at: datetime

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


@dataclass(frozen=True, slots=True)
class GlossaryChange:
    tenant: str
    glossary_id: str
    # 0 when the glossary was deleted.
    version: int


@dataclass(frozen=True, slots=True)
class PatchResult:
    info: GlossaryInfo
    added: int
    updated: int
    removed: int
    not_found: tuple[str, ...]


def _source_hash(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()


class GlossaryStore(TenantAccounts):
    """Glossaries, their change notification and integrity checks, over one database.

    Tenants and API keys are the :class:`~glossary.tenants.TenantAccounts` half; the
    engine, transactions and "database unavailable" are :class:`~glossary.database.Database`.
    """

    def __init__(self, engine: Engine, limits: GlossaryLimits | None = None) -> None:
        super().__init__(engine)
        self.limits = limits or GlossaryLimits()
        self._listeners: list[Callable[[GlossaryChange], None]] = []
        self._listeners_lock = threading.Lock()

    # -- construction -------------------------------------------------------------

    @classmethod
    def from_url(cls, url: str, *, limits: GlossaryLimits | None = None) -> GlossaryStore:
        return cls(create_store_engine(url), limits)

    @classmethod
    def from_settings(cls, settings: GlossarySettings) -> GlossaryStore:
        """The store for the glossary settings: its database URL and glossary limits."""
        limits = GlossaryLimits(
            max_file_bytes=settings.glossary_max_file_bytes,
            max_entries=settings.glossary_max_entries,
            max_term_chars=settings.glossary_max_term_chars,
            max_glossaries_per_tenant=settings.glossary_max_per_tenant,
        )
        return cls.from_url(settings.database_url, limits=limits)

    # -- change notification -----------------------------------------------------------

    def subscribe(self, listener: Callable[[GlossaryChange], None]) -> Callable[[], None]:
        """Call ``listener`` after every committed change made through this store object.

        Listeners run on the writing thread and must be quick (set an event).
        Changes made by other processes are seen by polling ``current_versions``.
        """
        with self._listeners_lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._listeners_lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def _emit(self, change: GlossaryChange) -> None:
        with self._listeners_lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(change)
            except Exception:
                # The write is committed; a broken listener must not turn it into an error.
                log.exception("glossary change listener failed")

    # -- glossaries: writes --------------------------------------------------------------

    def create_glossary(
        self, tenant: str, name: str, source_language: str, entries: Sequence[GlossaryEntry]
    ) -> GlossaryInfo:
        self._check_entries(entries)
        glossary_id = new_id("gl_")
        created = now()
        with self._write() as conn:
            count = conn.execute(
                select(func.count()).select_from(glossaries).where(glossaries.c.tenant_id == tenant)
            ).scalar_one()
            if count >= self.limits.max_glossaries_per_tenant:
                raise RasstError(
                    ErrorCode.LIMIT_EXCEEDED,
                    f"this tenant already has {count} glossaries "
                    f"(limit {self.limits.max_glossaries_per_tenant}); delete one first",
                )
            conn.execute(
                insert(glossaries).values(
                    id=glossary_id,
                    tenant_id=tenant,
                    name=name,
                    source_language=source_language,
                    version=1,
                    entry_count=len(entries),
                    target_languages=_target_languages(entries),
                    created_at=created,
                    updated_at=created,
                )
            )
            _insert_entries(conn, glossary_id, entries, start=0)
            info = self._info(conn, tenant, glossary_id)
        self._emit(GlossaryChange(tenant, glossary_id, info.version))
        return info

    def replace_glossary(
        self,
        tenant: str,
        glossary_id: str,
        *,
        name: str,
        source_language: str,
        entries: Sequence[GlossaryEntry],
        expected_version: int | None = None,
    ) -> GlossaryInfo:
        self._check_entries(entries)
        with self._write() as conn:
            current = self._locked(conn, tenant, glossary_id, expected_version)
            conn.execute(
                delete(glossary_entries).where(glossary_entries.c.glossary_id == glossary_id)
            )
            _insert_entries(conn, glossary_id, entries, start=0)
            self._bump(
                conn,
                current,
                name=name,
                source_language=source_language,
                entry_count=len(entries),
                target_languages=_target_languages(entries),
            )
            info = self._info(conn, tenant, glossary_id)
        self._emit(GlossaryChange(tenant, glossary_id, info.version))
        return info

    def patch_glossary(
        self,
        tenant: str,
        glossary_id: str,
        *,
        name: str | None = None,
        add: Sequence[GlossaryEntry] = (),
        remove: Iterable[str] = (),
        expected_version: int | None = None,
    ) -> PatchResult:
        """Rename, upsert entries by source term (an existing term is replaced), remove terms."""
        removals = list(dict.fromkeys(remove))
        with self._write() as conn:
            current = self._locked(conn, tenant, glossary_id, expected_version)
            removed = 0
            missing: list[str] = []
            for source in removals:
                result = conn.execute(
                    delete(glossary_entries).where(
                        glossary_entries.c.glossary_id == glossary_id,
                        glossary_entries.c.source_hash == _source_hash(source),
                    )
                )
                if result.rowcount:
                    removed += 1
                else:
                    missing.append(source)
            added = updated = 0
            next_position = (
                conn.execute(
                    select(func.max(glossary_entries.c.position)).where(
                        glossary_entries.c.glossary_id == glossary_id
                    )
                ).scalar()
                or 0
            ) + 1
            for entry in add:
                result = conn.execute(
                    update(glossary_entries)
                    .where(
                        glossary_entries.c.glossary_id == glossary_id,
                        glossary_entries.c.source_hash == _source_hash(entry.source),
                    )
                    .values(**_entry_values(entry))
                )
                if result.rowcount:
                    updated += 1
                else:
                    _insert_entries(conn, glossary_id, [entry], start=next_position)
                    next_position += 1
                    added += 1
            count = conn.execute(
                select(func.count())
                .select_from(glossary_entries)
                .where(glossary_entries.c.glossary_id == glossary_id)
            ).scalar_one()
            if count > self.limits.max_entries:
                raise RasstError(
                    ErrorCode.LIMIT_EXCEEDED,
                    f"the glossary would have {count} entries (limit {self.limits.max_entries})",
                )
            langs = self._languages_of(conn, glossary_id)
            self._bump(
                conn,
                current,
                name=name if name is not None else current.name,
                source_language=current.source_language,
                entry_count=count,
                target_languages=langs,
            )
            info = self._info(conn, tenant, glossary_id)
        self._emit(GlossaryChange(tenant, glossary_id, info.version))
        return PatchResult(info, added, updated, removed, tuple(missing))

    def delete_glossary(
        self, tenant: str, glossary_id: str, *, expected_version: int | None = None
    ) -> None:
        with self._write() as conn:
            self._locked(conn, tenant, glossary_id, expected_version)
            conn.execute(
                delete(glossary_entries).where(glossary_entries.c.glossary_id == glossary_id)
            )
            conn.execute(delete(glossaries).where(glossaries.c.id == glossary_id))
        self._emit(GlossaryChange(tenant, glossary_id, 0))

    # -- glossaries: reads ---------------------------------------------------------------

    def list_glossaries(
        self, tenant: str, *, offset: int = 0, limit: int = 100
    ) -> tuple[list[GlossaryInfo], int]:
        with self._read() as conn:
            total = conn.execute(
                select(func.count()).select_from(glossaries).where(glossaries.c.tenant_id == tenant)
            ).scalar_one()
            rows = conn.execute(
                select(glossaries)
                .where(glossaries.c.tenant_id == tenant)
                .order_by(glossaries.c.created_at, glossaries.c.id)
                .offset(offset)
                .limit(limit)
            )
            return [_to_info(r) for r in rows], int(total)

    def get_info(self, tenant: str, glossary_id: str) -> GlossaryInfo:
        with self._read() as conn:
            return self._info(conn, tenant, glossary_id)

    def get_entries(
        self, tenant: str, glossary_id: str, *, offset: int = 0, limit: int | None = None
    ) -> tuple[GlossaryInfo, list[GlossaryEntry]]:
        with self._read() as conn:
            info = self._info(conn, tenant, glossary_id)
            query = (
                select(glossary_entries)
                .where(glossary_entries.c.glossary_id == glossary_id)
                .order_by(glossary_entries.c.position)
                .offset(offset)
            )
            if limit is not None:
                query = query.limit(limit)
            return info, [_to_entry(r) for r in conn.execute(query)]

    def get_snapshot(self, tenant: str, glossary_id: str) -> GlossarySnapshot:
        """The whole glossary at one version; GLOSSARY_NOT_FOUND also for another tenant's id."""
        info, entries = self.get_entries(tenant, glossary_id)
        return GlossarySnapshot(
            id=info.id,
            version=info.version,
            tenant=info.tenant,
            name=info.name,
            source_language=info.source_language,
            entries=tuple(entries),
        )

    def current_versions(self, tenant: str, ids: Sequence[str]) -> dict[str, int]:
        """Versions of those of ``ids`` that exist for ``tenant``; deleted ones are absent."""
        if not ids:
            return {}
        with self._read() as conn:
            rows = conn.execute(
                select(glossaries.c.id, glossaries.c.version).where(
                    glossaries.c.tenant_id == tenant, glossaries.c.id.in_(list(ids))
                )
            )
            return {r.id: int(r.version) for r in rows}

    def integrity_problems(self) -> list[str]:
        """Database-level and store-level consistency problems; empty when healthy."""
        problems: list[str] = []
        with self._read() as conn:
            if self.engine.dialect.name == "sqlite":
                result = [r[0] for r in conn.execute(text("PRAGMA integrity_check"))]
                if result != ["ok"]:
                    problems.extend(result)
                problems.extend(
                    str(tuple(r)) for r in conn.execute(text("PRAGMA foreign_key_check"))
                )
            counts = conn.execute(
                select(
                    glossaries.c.id,
                    glossaries.c.entry_count,
                    func.count(glossary_entries.c.position),
                )
                .select_from(glossaries.outerjoin(glossary_entries))
                .group_by(glossaries.c.id, glossaries.c.entry_count)
            )
            for gid, expected, actual in counts:
                if expected != actual:
                    problems.append(f"glossary {gid}: {actual} entries stored, {expected} recorded")
        return problems

    # -- helpers -------------------------------------------------------------------------

    def _check_entries(self, entries: Sequence[GlossaryEntry]) -> None:
        if len(entries) > self.limits.max_entries:
            raise RasstError(
                ErrorCode.LIMIT_EXCEEDED,
                f"{len(entries)} entries (limit {self.limits.max_entries} per glossary)",
            )

    def _info(self, conn: Connection, tenant: str, glossary_id: str) -> GlossaryInfo:
        row = conn.execute(
            select(glossaries).where(
                glossaries.c.id == glossary_id, glossaries.c.tenant_id == tenant
            )
        ).first()
        if row is None:
            raise RasstError(ErrorCode.GLOSSARY_NOT_FOUND, f"no glossary {glossary_id!r}")
        return _to_info(row)

    def _locked(
        self, conn: Connection, tenant: str, glossary_id: str, expected_version: int | None
    ) -> GlossaryInfo:
        row = conn.execute(
            select(glossaries)
            .where(glossaries.c.id == glossary_id, glossaries.c.tenant_id == tenant)
            .with_for_update()
        ).first()
        if row is None:
            raise RasstError(ErrorCode.GLOSSARY_NOT_FOUND, f"no glossary {glossary_id!r}")
        info = _to_info(row)
        if expected_version is not None and info.version != expected_version:
            raise RasstError(
                ErrorCode.PRECONDITION_FAILED,
                f"glossary is at version {info.version}, not {expected_version}",
                detail={"version": info.version},
            )
        return info

    def _bump(self, conn: Connection, current: GlossaryInfo, **values: Any) -> None:
        result = conn.execute(
            update(glossaries)
            .where(glossaries.c.id == current.id, glossaries.c.version == current.version)
            .values(version=current.version + 1, updated_at=now(), **values)
        )
        if result.rowcount != 1:
            raise RasstError(ErrorCode.CONFLICT, "the glossary was changed concurrently; retry")

    def _languages_of(self, conn: Connection, glossary_id: str) -> list[str]:
        langs: dict[str, None] = {}
        rows = conn.execute(
            select(glossary_entries.c.targets).where(glossary_entries.c.glossary_id == glossary_id)
        )
        for (targets,) in rows:
            langs.update(dict.fromkeys(targets))
        return list(langs)


def _entry_values(entry: GlossaryEntry) -> dict[str, Any]:
    return {
        "source": entry.source,
        "targets": {lang: list(options) for lang, options in entry.targets.items()},
        "note": entry.note,
        "priority": entry.priority,
    }


def _insert_entries(
    conn: Connection, glossary_id: str, entries: Sequence[GlossaryEntry], *, start: int
) -> None:
    rows = [
        {
            "glossary_id": glossary_id,
            "position": start + i,
            "source_hash": _source_hash(entry.source),
            **_entry_values(entry),
        }
        for i, entry in enumerate(entries)
    ]
    if rows:
        conn.execute(insert(glossary_entries), rows)


def _target_languages(entries: Iterable[GlossaryEntry]) -> list[str]:
    langs: dict[str, None] = {}
    for entry in entries:
        langs.update(dict.fromkeys(entry.targets))
    return list(langs)


def _to_info(row: Any) -> GlossaryInfo:
    return GlossaryInfo(
        id=row.id,
        tenant=row.tenant_id,
        name=row.name,
        source_language=row.source_language,
        version=int(row.version),
        entry_count=int(row.entry_count),
        target_languages=tuple(row.target_languages or ()),
        created_at=utc(row.created_at),
        updated_at=utc(row.updated_at),
    )


def _to_entry(row: Any) -> GlossaryEntry:
    return GlossaryEntry(
        source=row.source,
        targets={lang: tuple(options) for lang, options in (row.targets or {}).items()},
        note=row.note,
        priority=int(row.priority or 0),
    )
