"""The glossary database: the engine, transactions, and "the database is unavailable".

SQLite runs in WAL mode with full fsync and writers that take the lock up front; PostgreSQL
connections are checked before use and time out quickly. When the database cannot be reached
(server down or restarting, connection killed, pool exhausted, SQLite locked past its busy
timeout) a call raises ``RasstError(STORE_UNAVAILABLE)``, which the API answers with 503.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

from kernel.errors import ErrorCode, RasstError

log = logging.getLogger(__name__)

# Seconds to wait for a new PostgreSQL connection (the OS default is minutes).
PG_CONNECT_TIMEOUT = 5


def now() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


def normalise_database_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 here (the driver we ship), not psycopg2."""
    for plain in ("postgres://", "postgresql://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain) :]
    return url


def utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; every time we store is UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def create_store_engine(url: str) -> Engine:
    """PostgreSQL with pre-ping and a connect timeout, or SQLite in WAL mode."""
    url = normalise_database_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        connect_args: dict[str, Any] = {}
        if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
            connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT
        engine = create_engine(url, pool_pre_ping=True, connect_args=connect_args)
        return engine
    database = parsed.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False})
    else:
        engine = create_engine(url, connect_args={"check_same_thread": False}, poolclass=StaticPool)
    _configure_sqlite(engine)
    return engine


class Database:
    """One engine and its transactions; the stores build on it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._available(), self.engine.connect() as conn:
            conn = conn.execution_options(rasst_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._available(), self.engine.connect() as conn:
            if self.engine.dialect.name == "postgresql":
                # Glossary row and entries must come from the same version.
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    @contextmanager
    def _available(self) -> Iterator[None]:
        """Turn "the database cannot be reached" into STORE_UNAVAILABLE (HTTP 503)."""
        try:
            yield
        except (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError) as exc:
            if not _is_unavailable(exc, self.engine.dialect.name):
                raise
            log.warning("glossary database unavailable: %s", _first_line(exc))
            raise RasstError(
                ErrorCode.STORE_UNAVAILABLE,
                "the glossary database is unavailable; retry shortly",
            ) from exc


# SQLite reports programming errors (no such table, syntax) as OperationalError
# too; only these mean "cannot be used right now".
_SQLITE_UNAVAILABLE = ("locked", "busy", "disk i/o", "unable to open", "readonly", "disk is full")


def _is_unavailable(exc: Exception, dialect: str) -> bool:
    if isinstance(exc, sa_exc.TimeoutError):  # no pooled connection within the pool timeout
        return True
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if dialect == "sqlite":
        message = str(getattr(exc, "orig", exc)).lower()
        return any(marker in message for marker in _SQLITE_UNAVAILABLE)
    # PostgreSQL drivers raise OperationalError/InterfaceError for connection
    # faults (refused, reset, terminated, shutting down); bad SQL is ProgrammingError.
    return True


def _first_line(exc: Exception) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's implicit
        # transactions would otherwise start too late and defer the write lock).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a transaction acknowledged to a client survives power loss, not only a crash.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the lock up front so two uploads never deadlock upgrading
        # read locks; readers stay deferred and never wait for writers in WAL mode.
        mode = "BEGIN IMMEDIATE" if conn.get_execution_options().get("rasst_write") else "BEGIN"
        conn.exec_driver_sql(mode)
