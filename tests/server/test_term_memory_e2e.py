"""A zero-setup session: the ACL talk's speech routes the term memory to the NLP slice.

Real gateway, real WebSocket, real SQLite. The tenant's term memory holds the shared
glossaries as slices (ACL NLP terms, COVID-19 terms, computer-science terms), a general
base slice and a distractor slice of dictionary phrases; the session asks for
``"term_memory": "auto"`` with no glossary. The audio is the opening of an ACL 60/60 talk
(2022.acl-long.268) synthesised with flite. The router must switch ``nlp`` on (and nothing
else), say so in a ``term_memory.routed`` event, and the terms reported after it must
come from the NLP slice (or the base slice), none from the domains left off; before it, the
cold start reports the evidence leaders, so the talk's first NLP terms are not lost.
"""

from __future__ import annotations

import asyncio
import csv
import json
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.client import RasstStream, StreamOptions, read_wav, send_paced
from tests.support.live_server import LiveServer, start_server

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
TALK = "2022.acl-long.268"


def _csv(rows: list[tuple[str, str]]) -> str:
    return "en,de\n" + "".join(f'"{en}","{de}"\n' for en, de in rows)


def _tsv(name: str, target: str) -> list[tuple[str, str]]:
    with open(DATA / "glossaries" / name, encoding="utf-8") as f:
        return [
            (r["en"], r.get(target) or r["en"])
            for r in csv.DictReader(f, delimiter="\t")
            if r.get("en")
        ]


def _nlp() -> list[tuple[str, str]]:
    with open(DATA / "glossaries" / "rasst_acl_tagged_pairs_observed.tsv", encoding="utf-8") as f:
        pairs = {r["en"]: r["tgt"] for r in csv.DictReader(f, delimiter="\t") if r["lang"] == "de"}
    return list(pairs.items())


def _phrases(n: int, seed: int) -> list[tuple[str, str]]:
    text = (DATA / "speech" / "two_cities_16k.txt").read_text()
    words = sorted({w.lower() for w in text.split() if w.isalpha() and len(w) > 3})
    rng = random.Random(seed)
    out = {" ".join(rng.sample(words, 2)).lower() for _ in range(n)}
    return [(p, p) for p in sorted(out)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(tmp_path_factory.mktemp("term-memory"), "--max-pace", "8")
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="module")
def talk_audio(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with open(DATA / "acl6060" / "dev.en-de.jsonl", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    text = " ".join([r["en"] for r in rows if r["talk_id"] == TALK][:7])
    wav = tmp_path_factory.mktemp("talk") / "talk.wav"
    subprocess.run(["flite", "-voice", "slt", "-t", text, "-o", str(wav)], check=True)
    return wav


def test_auto_session_routes_an_acl_talk_to_the_nlp_slice(
    server: LiveServer, talk_audio: Path
) -> None:
    slices = {
        "nlp": (_nlp(), False),
        "covid": (_tsv("tico19_covid_terms_en_de_zh_ja.tsv", "de"), False),
        "cs": (_tsv("cjk_compsci_terms_en_zh_ja.tsv", "zh"), False),
        "misc": (_phrases(400, seed=1), False),
        "general": (_phrases(200, seed=2), True),
    }
    ids: dict[str, str] = {}
    for domain, (rows, base) in slices.items():
        response = httpx.post(
            f"{server.http_url}/v1/glossaries",
            files={"file": (f"{domain}.csv", _csv(rows), "text/csv")},
            data={"name": domain},
            timeout=30,
        )
        assert response.status_code == 201, response.text
        ids[domain] = response.json()["id"]
        put = httpx.put(
            f"{server.http_url}/v1/term-memory/slices/{ids[domain]}",
            json={"domain": domain, "base": base},
            timeout=10,
        )
        assert put.status_code == 204, put.text
    memory = httpx.get(f"{server.http_url}/v1/term-memory", timeout=10).json()
    assert {s["domain"] for s in memory["slices"]} == set(slices)

    rate, samples = read_wav(talk_audio)
    options = StreamOptions(target_languages=["de"], lm=2, extra={"term_memory": "auto"})
    events: list[dict[str, Any]] = []

    async def run() -> None:
        async with asyncio.timeout(240), RasstStream(server.ws_url, options) as session:
            sender = asyncio.create_task(send_paced(session, samples, rate, speed=3.0))
            async for event in session.events():
                events.append(event)
            await sender

    asyncio.run(run())
    routed = [e for e in events if e["type"] == "term_memory.routed"]
    print("routed:", routed)
    assert routed, [e["type"] for e in events]
    assert routed[0]["switched_on"] == ["nlp"]
    assert all(set(e["active"]) <= {"nlp"} for e in routed)
    assert ids["nlp"] in routed[0]["glossaries"] and ids["covid"] not in routed[0]["glossaries"]
    first = events.index(routed[0])
    sources = {id_: d for d, id_ in ids.items()}
    after = [
        (sources.get(h["glossary_id"]), h["source"])
        for e in events[first:]
        if e["type"] == "terms"
        for h in e["terms"]
    ]
    before = [
        sources.get(h["glossary_id"])
        for e in events[:first]
        if e["type"] == "terms"
        for h in e["terms"]
    ]
    print("terms before routing:", before)
    print("terms after routing:", after)
    # Cold start: before a domain is switched on, the evidence leaders report (the talk's
    # first terms are not lost), so NLP terms come before the routed event too.
    assert "nlp" in before, before
    assert {d for d, _ in after} <= {"nlp", "general"}, after
    assert any(d == "nlp" for d, _ in after), after
