from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import httpx
import pytest

from glossary.store import GlossaryStore
from tests.glossary.live_app import start_glossary_server
from tests.reliability.faults import FaultRecord, record


def _glossary(index: int, size: int) -> bytes:
    rows = "".join(f"term {index}-{i}\tBegriff {index}-{i}\n" for i in range(size))
    return ("en\tde\n" + rows).encode()


@pytest.mark.slow
def test_kill_9_during_uploads_loses_no_acknowledged_glossary(
    database_url: str, tmp_path: Path
) -> None:
    """SIGKILL the gateway three times mid-upload; every 201 answered survives, whole.

    Runs on SQLite (the embedded default: WAL, synchronous=FULL) and on
    PostgreSQL (Kubernetes). The PostgreSQL server itself stays up, so its
    test-only fsync=off does not matter: what is tested is that an upload is
    acknowledged only after its transaction committed, and that a killed
    gateway leaves no half-written glossary behind.
    """
    url = database_url
    acknowledged: dict[str, tuple[str, int]] = {}
    rng = random.Random(7)
    interrupted: list[str] = []
    for cycle in range(3):
        server = start_glossary_server(url, tmp_path)
        stop = threading.Event()
        errors: list[str] = []

        def uploader(
            base: str = server.url,
            cycle: int = cycle,
            stop: threading.Event = stop,
            errors: list[str] = errors,
        ) -> None:
            index = 0
            with httpx.Client(base_url=base, timeout=httpx.Timeout(30, connect=5)) as client:
                while not stop.is_set():
                    index += 1
                    size = rng.randint(500, 4000)
                    name = f"c{cycle}-{index}"
                    try:
                        response = client.post(
                            "/v1/glossaries",
                            files={"file": (f"{name}.tsv", _glossary(index, size))},
                            data={"name": name},
                        )
                    except httpx.HTTPError:
                        interrupted.append(name)  # died mid-request: not acknowledged
                        return
                    if response.status_code != 201:
                        errors.append(response.text)
                        return
                    acknowledged[response.json()["id"]] = (name, size)

        threads = [threading.Thread(target=uploader) for _ in range(2)]
        for thread in threads:
            thread.start()
        time.sleep(1.0 + rng.random() * 1.5)
        server.kill()
        stop.set()
        for thread in threads:
            thread.join(30)
        assert not errors

    assert len(acknowledged) >= 5
    # The kills really did land in the middle of uploads.
    assert interrupted
    server = start_glossary_server(url, tmp_path)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            listing = client.get("/v1/glossaries", params={"limit": 1000}).json()
        stored = {item["id"]: item for item in listing["items"]}
        for gid, (name, size) in acknowledged.items():
            assert gid in stored, f"acknowledged glossary {name} lost"
            assert stored[gid]["entry_count"] == size
    finally:
        server.stop()

    store = GlossaryStore.from_url(url)
    try:
        assert store.integrity_problems() == []
        for gid, (_name, size) in acknowledged.items():
            assert len(store.get_snapshot("default", gid).entries) == size
    finally:
        store.close()
    backend = url.split(":", 1)[0].split("+", 1)[0]
    record(
        FaultRecord(
            fault=f"Gateway SIGKILL during glossary uploads ({backend})",
            injected="kill -9 of the gateway while two clients upload 500-4000-entry glossaries, 3 times",
            duration_s=None,
            client_saw=["connection reset on the upload in flight (never acknowledged)"],
            recovery_s=None,
            glossaries_lost=0,
            notes=(
                f"{len(acknowledged)} acknowledged uploads all present with every entry; "
                f"{len(interrupted)} interrupted uploads left nothing half-written"
            ),
            test="tests/glossary/test_durability.py",
        )
    )
