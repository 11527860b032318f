"""The glossary database goes away mid-session (PostgreSQL): backends killed, server stopped.

A live session keeps its captions and its terms (from the glossary snapshot it
already holds) and its glossary watcher survives the outage; REST calls fail
with 503 ``store_unavailable`` (not 500) while the database is down and
succeed once it is back; a glossary PATCH after recovery still reaches the
session as ``glossary.updated``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from glossary.model import GlossaryEntry
from glossary.store import GlossaryStore
from server.client import RasstStream, StreamOptions, read_wav
from tests.reliability.faults import EventLog, FaultRecord, audio_not_done, record, send_until
from tests.support.live_server import TWO_CITIES, LiveServer, start_server
from tests.support.postgres import PostgresServer, postgres  # noqa: F401  (fixture)
from tests.support.ws import exchange, start_message

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(300)]

PHRASES = {
    "age of wisdom": "Zeitalter der Weisheit",
    "age of foolishness": "Zeitalter der Torheit",
    "epoch of belief": "Epoche des Glaubens",
    "season of light": "Zeit des Lichts",
    "spring of hope": "Frühling der Hoffnung",
    "winter of despair": "Winter der Verzweiflung",
}
CSV = "en,de\n" + "".join(f"{en},{de}\n" for en, de in PHRASES.items())
OUTAGE_SECONDS = 4.0


@pytest.fixture
def pg_gateway(
    postgres: PostgresServer,  # noqa: F811
    tmp_path: Path,
) -> Iterator[tuple[LiveServer, PostgresServer, str]]:
    url = postgres.create_database()
    server = start_server(tmp_path, "--db", url, "--workers", "1", "--max-pace", "8")
    try:
        yield server, postgres, url
    finally:
        server.stop()
        if not postgres.running():
            postgres.start()  # the fixture is shared by the whole test session


def _patch_elsewhere(url: str, gid: str, term: str) -> None:
    """Change the glossary from outside the gateway process (its watcher must poll)."""
    store = GlossaryStore.from_url(url)
    try:
        store.patch_glossary("default", gid, add=[GlossaryEntry(term, {"de": (term,)})])
    finally:
        store.close()


def _terminate_backends(server: PostgresServer, database: str) -> int:
    with psycopg.connect(
        f"host=127.0.0.1 port={server.port} user=postgres dbname=postgres", autocommit=True
    ) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchall()
    return sum(1 for (ok,) in rows if ok)


async def test_database_outage_mid_session_degrades_and_recovers(
    pg_gateway: tuple[LiveServer, PostgresServer, str],
) -> None:
    gateway, pg, url = pg_gateway
    database = str(make_url(url).database)
    rate, samples = read_wav(TWO_CITIES)
    log = EventLog()
    stop = asyncio.Event()
    marks: dict[str, float] = {}
    seen: dict[str, object] = {}

    async with httpx.AsyncClient(base_url=gateway.http_url, timeout=15) as http:
        created = await http.post(
            "/v1/glossaries",
            files={"file": ("terms.csv", CSV, "text/csv")},
            data={"name": "two cities"},
        )
        assert created.status_code == 201, created.text
        gid = created.json()["id"]
        options = StreamOptions(target_languages=["de"], glossary_ids=[gid], lm=2, sample_rate=rate)

        async def patch(term: str) -> httpx.Response:
            return await http.patch(
                f"/v1/glossaries/{gid}", json={"add": [{"source": term, "targets": {"de": term}}]}
            )

        def updated_to(version: int) -> Callable[[], bool]:
            return lambda: any(
                g["version"] == version
                for e in log.of_type("glossary.updated")
                for g in e["glossaries"]
            )

        async with RasstStream(gateway.ws_url, options) as stream:

            async def read() -> None:
                async for event in stream.events():
                    log.add(event)

            async def inject() -> None:
                await log.wait_for(lambda: log.count("chunk.done") >= 2)
                # 1. Every server-side connection of the gateway killed.
                seen["terminated"] = await asyncio.to_thread(_terminate_backends, pg, database)
                after_kill = await http.get(f"/v1/glossaries/{gid}")
                seen["after_kill"] = after_kill.status_code
                assert (await patch("best of times")).status_code == 200
                async with asyncio.timeout(10):
                    await log.wait_for(updated_to(2))

                # 2. The whole server stopped (like a crash), then started again.
                marks["down"] = time.monotonic()
                await asyncio.to_thread(pg.stop)
                seen["chunks_at_down"] = len(log.of_type("chunk.done"))
                during_get = await http.get(f"/v1/glossaries/{gid}")
                during_patch = await patch("worst of times")
                during_list = await http.get("/v1/glossaries")
                seen["during"] = [
                    (r.status_code, r.json()["error"]["code"])
                    for r in (during_get, during_patch, during_list)
                ]
                new_session = await exchange(
                    gateway.ws_url,
                    start_message(glossary_ids=[gid], target_languages=["de"]),
                    within=15,
                )
                seen["new_session"] = (new_session.error_codes(), new_session.close_code)
                await asyncio.sleep(max(0.0, marks["down"] + OUTAGE_SECONDS - time.monotonic()))
                await asyncio.to_thread(pg.start)
                marks["up"] = time.monotonic()
                seen["chunks_at_up"] = log.count("chunk.done")
                for _ in range(300):
                    if (await http.get(f"/v1/glossaries/{gid}")).status_code == 200:
                        break
                    await asyncio.sleep(0.1)
                marks["rest_ok"] = time.monotonic()
                # 3. A change by another process (a second replica, the CLI) must be
                # found by the watcher's polling, which backed off during the outage.
                await asyncio.to_thread(_patch_elsewhere, url, gid, "age of hope")
                marks["patched_elsewhere"] = time.monotonic()
                async with asyncio.timeout(15):
                    await log.wait_for(updated_to(3))
                marks["watcher_ok"] = time.monotonic()
                # 4. A change through the REST API after recovery reaches the session.
                patched = await patch("worst of times")
                assert patched.status_code == 200, patched.text
                marks["patched"] = time.monotonic()
                async with asyncio.timeout(15):
                    await log.wait_for(updated_to(4))
                marks["updated"] = time.monotonic()
                chunks = log.count("chunk.done")
                await log.wait_for(lambda: log.count("chunk.done") >= chunks + 2)
                stop.set()

            async with asyncio.timeout(180), asyncio.TaskGroup() as group:
                group.create_task(send_until(stream, samples, rate, stop, speed=2.0))
                group.create_task(read())
                group.create_task(inject())

        final = (await http.get(f"/v1/glossaries/{gid}")).json()

    events = log.events
    summary = events[-1]
    assert summary["type"] == "session.summary" and summary["reason"] == "completed", summary
    assert not log.of_type("error"), log.of_type("error")
    assert log.warning_codes() == []

    assert seen["terminated"] >= 1, "the gateway held connections to kill"
    assert seen["after_kill"] == 200, "pooled connections are checked before use (pre-ping)"
    assert seen["during"] == [(503, "store_unavailable")] * 3
    assert seen["new_session"] == (["store_unavailable"], 1013)

    # The live session went on through the outage: chunks, captions, terms.
    down, up = marks["down"], marks["up"]
    assert seen["chunks_at_up"] > seen["chunks_at_down"]  # type: ignore[operator]
    assert log.between("caption", down, up)
    done = log.of_type("chunk.done")
    assert [e["chunk"] for e in done] == list(range(len(done)))
    assert any(e["terms"] for e in log.of_type("terms"))
    updates = [g["version"] for e in log.of_type("glossary.updated") for g in e["glossaries"]]
    assert updates == [2, 3, 4]
    # Nothing acknowledged was lost: every acknowledged change is in the database.
    assert final["version"] == 4 and final["entry_count"] == len(PHRASES) + 3

    rest_recovery = marks["rest_ok"] - up
    update_latency = marks["updated"] - marks["patched"]
    watcher_recovery = marks["watcher_ok"] - up
    # The watcher's retry interval is capped (5 s), plus one poll.
    assert marks["watcher_ok"] - marks["patched_elsewhere"] < 5.0 + 1.0 + 2.0
    record(
        FaultRecord(
            fault="Database connections killed",
            injected="pg_terminate_backend() on every gateway backend, mid-session",
            duration_s=0.0,
            client_saw=[],
            recovery_s=0.0,
            glossaries_lost=0,
            audio_not_done_s=audio_not_done(events),
            notes=(
                f"{seen['terminated']} backend(s) killed; next REST call 200 (pool pre-ping); "
                "PATCH reached the session as glossary.updated"
            ),
            test="tests/reliability/test_faults_database.py",
        )
    )
    record(
        FaultRecord(
            fault="Database server down",
            injected="pg_ctl stop -m immediate, mid-session; started again after the outage",
            duration_s=round(up - down, 2),
            client_saw=[
                "503 store_unavailable (REST)",
                "store_unavailable + close 1013 (new session)",
            ],
            recovery_s=round(rest_recovery, 2),
            glossaries_lost=0,
            audio_not_done_s=audio_not_done(events),
            notes=(
                "the live session saw nothing (captions, terms, chunk.done went on); its "
                f"watcher saw another process's change {watcher_recovery:.1f} s after the "
                f"restart, a REST PATCH in {update_latency:.2f} s"
            ),
            test="tests/reliability/test_faults_database.py",
        )
    )
