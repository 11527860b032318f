"""A throw-away PostgreSQL server for tests: initdb + pg_ctl in a temporary folder.

PostgreSQL refuses to run as root, so as root the cluster runs as the
``postgres`` OS user (Debian's ``postgresql`` package creates it). Without the
binaries the fixture skips locally but fails under CI=true, so a CI run can
never pass by silently leaving PostgreSQL out.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest


def find_postgres_bin() -> Path | None:
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1].parent
    found = shutil.which("pg_ctl")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class PostgresServer:
    port: int
    # How to stop and start this cluster again (fault tests); None: not ours to control.
    pg_ctl: tuple[str, ...] | None = None
    start_args: tuple[str, ...] = ()

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server (``immediate``: like a crash, no checkpoint); the cluster stays."""
        assert self.pg_ctl is not None, "this server cannot be stopped"
        subprocess.run(
            [*self.pg_ctl, "-m", mode, "-w", "stop"], check=True, capture_output=True, timeout=60
        )

    def start(self) -> None:
        """Start it again on the same port, with the same data."""
        assert self.pg_ctl is not None, "this server cannot be started"
        subprocess.run(
            [*self.pg_ctl, *self.start_args, "-w", "-t", "60", "start"],
            check=True,
            capture_output=True,
            timeout=90,
        )

    def running(self) -> bool:
        if self.pg_ctl is None:
            return True
        return subprocess.run([*self.pg_ctl, "status"], capture_output=True).returncode == 0

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A fresh, empty database; returns its SQLAlchemy URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:16]
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    bin_dir = find_postgres_bin()
    if bin_dir is None:
        message = (
            "PostgreSQL binaries not found (apt-get install -y postgresql); "
            "the postgres-marked tests need a real server"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    as_root = os.geteuid() == 0
    runner = ["runuser", "-u", "postgres", "--"] if as_root else []
    base = Path(tempfile.mkdtemp(prefix="rasst-pg-"))
    data, sockets, logfile = base / "data", base / "sock", base / "server.log"
    sockets.mkdir()
    if as_root:
        shutil.chown(base, "postgres")
        shutil.chown(sockets, "postgres")
    port = _free_port()
    try:
        subprocess.run(
            [
                *runner,
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        # fsync off: the durability tests run on SQLite; here we test SQL, not disks.
        options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            [
                *runner,
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(logfile),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ],
            check=True,
            capture_output=True,
            timeout=90,
        )
        yield PostgresServer(
            port,
            (*runner, str(bin_dir / "pg_ctl"), "-D", str(data)),
            ("-l", str(logfile), "-o", options),
        )
    except subprocess.CalledProcessError as exc:
        log = logfile.read_text(errors="replace") if logfile.exists() else ""
        pytest.fail(f"PostgreSQL did not start: {exc.stderr!r}\n{log}", pytrace=False)
    finally:
        subprocess.run(
            [*runner, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
            check=False,
        )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server
