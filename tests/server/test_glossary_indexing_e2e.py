"""A session whose glossary is still being indexed is told so, then gets its terms.

Real gateway, real WebSocket, real read speech (``two_cities_16k.wav``). The glossary
holds the recording's phrases plus ~90k made-up out-of-vocabulary terms, so its index
(letter-to-sound for every word) takes seconds to build; the session does not wait for
it (``RASST_INDEX_WAIT_SECONDS=0``). It must get ``glossary_indexing`` warnings with
progress, then a ``glossary.updated`` saying the glossary is searchable, then terms; REST
and ``/readyz`` must show the index state.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.client import RasstStream, StreamOptions, read_wav, send_paced
from tests.server.test_retrieval_e2e import PHRASES
from tests.support.live_server import TWO_CITIES, LiveServer, start_server

RATE, SPEECH = read_wav(TWO_CITIES)


def made_up_terms(n: int, seed: int = 21) -> list[str]:
    rng = random.Random(seed)

    def word() -> str:
        return "".join(rng.choice("bdfgklmnprstvz") + rng.choice("aeiou") for _ in range(4))

    return list(dict.fromkeys(" ".join(word() for _ in range(2)) for _ in range(n)))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data_dir: Path = tmp_path_factory.mktemp("indexing")
    # No hotwords: ranking every entry for Whisper's prompt made the session start slower
    # than a quiet machine's build, and the session then had nothing to be told (seen once).
    live = start_server(
        data_dir, env={"RASST_INDEX_WAIT_SECONDS": "0", "RASST_ASR_HOTWORDS": "false"}
    )
    try:
        yield live
    finally:
        live.stop()


def test_session_is_told_while_its_glossary_indexes_then_gets_terms(server: LiveServer) -> None:
    rows = [f"{en},{de}" for en, de in PHRASES.items()]
    rows += [f"{t},{t}" for t in made_up_terms(90_000)]
    response = httpx.post(
        f"{server.http_url}/v1/glossaries",
        files={"file": ("big.csv", "en,de\n" + "\n".join(rows) + "\n", "text/csv")},
        data={"name": "big"},
        timeout=60,
    )
    assert response.status_code == 201, response.text
    glossary_id = response.json()["id"]
    # The upload started the build; nothing has searched it yet.
    detail = httpx.get(f"{server.http_url}/v1/glossaries/{glossary_id}?limit=1", timeout=10)
    index = detail.json()["index"]
    print("index right after upload:", index)
    assert index["state"] == "building" and index["searchable_version"] is None
    ready = httpx.get(f"{server.http_url}/readyz", timeout=10).json()
    assert [b["id"] for b in ready["glossary_indexes"]["building"]] == [glossary_id]

    options = StreamOptions(target_languages=["de"], glossary_ids=[glossary_id], lm=2)
    events: list[dict[str, Any]] = []

    async def run() -> None:
        async with asyncio.timeout(180), RasstStream(server.ws_url, options) as session:
            sender = asyncio.create_task(send_paced(session, SPEECH, RATE, speed=1.0))
            async for event in session.events():
                events.append(event)
            await sender

    asyncio.run(run())
    kinds = [e["type"] for e in events]
    warnings = [e for e in events if e["type"] == "warning" and e["code"] == "glossary_indexing"]
    updates = [e for e in events if e["type"] == "glossary.updated"]
    print("warnings:", [(kinds.index("warning"), w["progress"]) for w in warnings[:5]])
    assert warnings, kinds
    assert all(w["glossary_id"] == glossary_id and 0.0 <= w["progress"] <= 1.0 for w in warnings)
    assert updates and updates[0]["glossaries"][0]["searchable"] is True
    first_update = events.index(updates[0])
    # Never both: no warning after the glossary was announced searchable.
    assert all(events.index(w) < first_update for w in warnings)
    found = {
        h["source"].lower()
        for e in events[first_update:]
        if e["type"] == "terms"
        for h in e["terms"]
    }
    print("terms after searchable:", sorted(found))
    assert found & set(PHRASES), found
    final = httpx.get(f"{server.http_url}/v1/glossaries", timeout=10).json()["items"]
    assert final[0]["index"]["state"] == "ready"
    assert final[0]["index"]["kind"] == "phone-trigram"
