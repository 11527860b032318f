from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError

from glossary.auth import authenticate
from glossary.model import GlossaryEntry
from glossary.store import GlossaryChange, GlossaryStore
from glossary.tables import glossaries, glossary_entries
from glossary.validation import GlossaryLimits
from kernel.errors import ErrorCode, RasstError

ENTRIES = [
    GlossaryEntry("BLEU score", {"de": ("BLEU-Wert",)}, "metric", 1),
    GlossaryEntry("GPU", {"de": ("Grafikprozessor",), "zh": ("图形处理器",)}),
]


def _rows(store: GlossaryStore) -> tuple[int, int]:
    with store.engine.connect() as conn:
        return (
            conn.execute(select(func.count()).select_from(glossaries)).scalar_one(),
            conn.execute(select(func.count()).select_from(glossary_entries)).scalar_one(),
        )


def test_create_read_replace_patch_delete(store: GlossaryStore) -> None:
    info = store.create_glossary("default", "acl", "en", ENTRIES)
    assert (info.version, info.entry_count, info.target_languages) == (1, 2, ("de", "zh"))
    snapshot = store.get_snapshot("default", info.id)
    assert snapshot.entries == tuple(ENTRIES)
    assert store.current_versions("default", [info.id, "gl_missing"]) == {info.id: 1}

    replaced = store.replace_glossary(
        "default", info.id, name="acl2", source_language="en", entries=ENTRIES[:1]
    )
    assert (replaced.version, replaced.entry_count, replaced.name) == (2, 1, "acl2")

    patched = store.patch_glossary(
        "default",
        info.id,
        add=[GlossaryEntry("BLEU score", {"ja": ("BLEUスコア",)}), GlossaryEntry("LoRA", {})],
        remove=["missing term"],
    )
    assert (patched.added, patched.updated, patched.removed) == (1, 1, 0)
    assert patched.not_found == ("missing term",)
    assert patched.info.version == 3
    _, entries = store.get_entries("default", info.id, offset=1, limit=5)
    assert [e.source for e in entries] == ["LoRA"]

    with pytest.raises(RasstError) as error:
        store.delete_glossary("default", info.id, expected_version=2)
    assert error.value.code is ErrorCode.PRECONDITION_FAILED
    store.delete_glossary("default", info.id, expected_version=3)
    assert _rows(store) == (0, 0)
    assert store.current_versions("default", [info.id]) == {}
    assert store.integrity_problems() == []


def test_other_tenants_glossaries_are_not_found(store: GlossaryStore) -> None:
    other = store.create_tenant("other").id
    info = store.create_glossary(other, "theirs", "en", ENTRIES)
    for call in (
        lambda: store.get_snapshot("default", info.id),
        lambda: store.get_info("default", info.id),
        lambda: store.replace_glossary(
            "default", info.id, name="x", source_language="en", entries=ENTRIES
        ),
        lambda: store.patch_glossary("default", info.id, remove=["GPU"]),
        lambda: store.delete_glossary("default", info.id),
    ):
        with pytest.raises(RasstError) as error:
            call()
        assert error.value.code is ErrorCode.GLOSSARY_NOT_FOUND
    assert store.list_glossaries("default") == ([], 0)
    assert store.current_versions("default", [info.id]) == {}
    assert store.get_snapshot(other, info.id).version == 1


def test_failed_write_leaves_nothing_behind(store: GlossaryStore) -> None:
    # Two entries with the same source break the unique constraint half-way through the insert.
    duplicate = [*ENTRIES, GlossaryEntry("GPU", {"ja": ("GPU",)})]
    with pytest.raises(Exception, match="(?i)unique|duplicate"):
        store.create_glossary("default", "broken", "en", duplicate)
    assert _rows(store) == (0, 0)
    info = store.create_glossary("default", "ok", "en", ENTRIES)
    with pytest.raises(Exception, match="(?i)unique|duplicate"):
        store.replace_glossary(
            "default", info.id, name="x", source_language="en", entries=duplicate
        )
    assert store.get_snapshot("default", info.id).entries == tuple(ENTRIES)
    assert store.get_info("default", info.id).version == 1
    assert store.integrity_problems() == []


def test_glossaries_per_tenant_limit(database_url: str) -> None:
    store = GlossaryStore.from_url(database_url, limits=GlossaryLimits(max_glossaries_per_tenant=2))
    store.create_schema()
    store.create_glossary("default", "a", "en", ENTRIES)
    store.create_glossary("default", "b", "en", ENTRIES)
    with pytest.raises(RasstError) as error:
        store.create_glossary("default", "c", "en", ENTRIES)
    assert error.value.code is ErrorCode.LIMIT_EXCEEDED
    assert store.list_glossaries("default")[1] == 2
    store.close()


def test_api_keys_are_hashed_and_revocable(store: GlossaryStore) -> None:
    tenant = store.create_tenant("acme").id
    record, key = store.create_api_key(tenant)
    assert authenticate(store, key, auth_enabled=True) == tenant
    assert authenticate(store, None, auth_enabled=False) == "default"
    with store.engine.connect() as conn:
        dump = str(conn.exec_driver_sql("SELECT * FROM api_keys").fetchall())
    assert key not in dump and key[12:] not in dump
    store.revoke_api_key(tenant, record.id)
    for bad in (key, None, "", "rasst_guess"):
        with pytest.raises(RasstError) as error:
            authenticate(store, bad, auth_enabled=True)
        assert error.value.code is ErrorCode.UNAUTHORIZED


def test_committed_changes_are_announced(store: GlossaryStore) -> None:
    seen: list[GlossaryChange] = []
    unsubscribe = store.subscribe(seen.append)
    info = store.create_glossary("default", "a", "en", ENTRIES)
    store.patch_glossary("default", info.id, remove=["GPU"])
    with pytest.raises(RasstError):
        store.patch_glossary("default", info.id, remove=["GPU"], expected_version=1)
    store.delete_glossary("default", info.id)
    unsubscribe()
    store.create_glossary("default", "b", "en", ENTRIES)
    assert [(c.glossary_id, c.version) for c in seen] == [(info.id, 1), (info.id, 2), (info.id, 0)]


def test_large_glossary_round_trips(store: GlossaryStore) -> None:
    entries = [GlossaryEntry(f"term {i}", {"de": (f"Begriff {i}",)}) for i in range(20_000)]
    info = store.create_glossary("default", "big", "en", entries)
    assert store.get_snapshot("default", info.id).entries == tuple(entries)


def test_unreachable_database_is_store_unavailable_not_a_crash() -> None:
    # Nothing listens on this port: the PostgreSQL server is down.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = GlossaryStore.from_url(f"postgresql://postgres@127.0.0.1:{port}/rasst")
    try:
        for call in (
            lambda: store.list_glossaries("default"),
            lambda: store.current_versions("default", ["gl_x"]),
            lambda: store.create_glossary("default", "a", "en", []),
        ):
            with pytest.raises(RasstError) as raised:
                call()
            assert raised.value.code is ErrorCode.STORE_UNAVAILABLE
            assert raised.value.http_status == 503
    finally:
        store.close()


def test_sqlite_programming_errors_are_not_reported_as_unavailable(tmp_path: Path) -> None:
    store = GlossaryStore.from_url(f"sqlite:///{tmp_path / 'no-schema.db'}")
    try:
        # No create_schema(): "no such table" is a bug, not an outage.
        with pytest.raises(OperationalError):
            store.list_glossaries("default")
    finally:
        store.close()


def test_sqlite_locked_past_the_busy_timeout_is_store_unavailable(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'locked.db'}"
    store = GlossaryStore.from_url(url)
    store.create_schema()
    holder = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")

        @event.listens_for(store.engine, "connect")
        def _short_wait(dbapi_connection: object, _record: object) -> None:
            dbapi_connection.execute("PRAGMA busy_timeout=100")  # type: ignore[attr-defined]

        store.engine.dispose()
        with pytest.raises(RasstError) as raised:
            store.create_glossary("default", "a", "en", [])
        assert raised.value.code is ErrorCode.STORE_UNAVAILABLE
    finally:
        holder.close()
        store.close()
