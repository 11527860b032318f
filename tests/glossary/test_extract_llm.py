"""The LLM step of glossary drafts against a scripted OpenAI-compatible server on loopback.

Validation of answers, retries on invalid JSON and server errors, giving up
with a warning, and the draft endpoint with an LLM configured. The real CPU
vLLM is in test_extract_vllm.py.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from glossary.extract import TermCandidate, TermFilterParams, filter_and_translate
from tests.glossary.app_for_tests import create_test_app
from tests.glossary.canned_llm import MODEL, Canned, CannedLlm, canned_llm, judge_all
from tests.glossary.conftest import make_settings, serve

CANDIDATES = [
    TermCandidate("lexical borrowing", "what lexical borrowing is, the task"),
    TermCandidate("BERT", "multilingual BERT and BETO", None),
    TermCandidate("LLM", "a large language model (LLM) reads", "large language model"),
    TermCandidate("animal print", "trends like animal print this season"),
    TermCandidate("F1 score", "an F1 score of 85"),
]
GERMAN = {"lexical borrowing": "lexikalische Entlehnung", "BERT": "BERT", "LLM": "LLM"}


def params(server: CannedLlm, **overrides: Any) -> TermFilterParams:
    defaults = TermFilterParams(
        url=f"{server.url}/v1",
        batch_size=2,
        backoff_seconds=0.01,
        read_timeout=2.0,
        total_timeout=20.0,
    )
    return dataclasses.replace(defaults, **overrides)


def verdict_answer(*judgements: tuple[str, bool, dict[str, str]]) -> Canned:
    return Canned(
        json.dumps(
            {"terms": [{"term": t, "keep": k, "translations": tr} for t, k, tr in judgements]}
        )
    )


async def test_batches_schema_and_verdicts() -> None:
    script = judge_all(
        keep=lambda term: term != "animal print",
        translate=lambda term, lang: GERMAN.get(term, "") if lang == "de" else f"{term} ({lang})",
    )
    with canned_llm(script) as server:
        outcome = await filter_and_translate(CANDIDATES, ["de", "zh"], params(server))
    assert server.model_lookups == 1 and outcome.model == MODEL
    assert outcome.batches == 3 and len(server.bodies) == 3 and outcome.failed_batches == 0
    assert outcome.verdicts["animal print"].keep is False
    assert outcome.verdicts["lexical borrowing"].keep is True
    assert outcome.verdicts["lexical borrowing"].translations == {
        "de": "lexikalische Entlehnung",
        "zh": "lexical borrowing (zh)",
    }
    # Batches go out concurrently: find the first batch by its terms, not by arrival.
    def terms_of(body: dict) -> list[str]:
        schema = body["response_format"]["json_schema"]["schema"]
        return list(schema["properties"]["terms"]["items"]["properties"]["term"]["enum"])

    first = next(b for b in server.bodies if terms_of(b) == ["lexical borrowing", "BERT"])
    second = next(b for b in server.bodies if "LLM" in terms_of(b))
    assert first["model"] == MODEL and first["temperature"] == 0.0
    assert first["max_tokens"] < 400
    schema = first["response_format"]["json_schema"]["schema"]
    assert first["response_format"]["type"] == "json_schema"
    items = schema["properties"]["terms"]
    assert items["minItems"] == items["maxItems"] == 2
    assert items["items"]["properties"]["term"]["enum"] == ["lexical borrowing", "BERT"]
    assert items["items"]["properties"]["translations"]["required"] == ["de", "zh"]
    prompt = first["messages"][1]["content"]
    assert "de (German), zh (Chinese)" in prompt and "what lexical borrowing is" in prompt
    assert '"LLM" (acronym of "large language model")' in second["messages"][1]["content"]


async def test_invalid_json_is_retried_with_the_error_shown() -> None:
    good = verdict_answer(
        ("lexical borrowing", True, {"de": "Entlehnung"}), ("BERT", True, {"de": "BERT"})
    )
    script = [
        Canned('{"terms": [{"term": "lexical borrowing", "keep": tr'),  # cut off
        Canned('{"terms": [{"term": "BERT", "keep": "yes"}]}'),  # wrong type
        good,
    ]
    with canned_llm(script) as server:
        outcome = await filter_and_translate(CANDIDATES[:2], ["de"], params(server, model="m"))
    assert server.model_lookups == 0
    assert outcome.requests == 3 and outcome.invalid_answers == 2 and outcome.failed_batches == 0
    assert outcome.verdicts["lexical borrowing"].translations == {"de": "Entlehnung"}
    retry = server.bodies[1]
    assert retry["temperature"] == 0.3
    assert [m["role"] for m in retry["messages"]] == ["system", "user", "assistant", "user"]
    assert retry["messages"][2]["content"].startswith('{"terms"')
    assert "not valid JSON" in retry["messages"][3]["content"]


async def test_answers_are_checked_against_the_batch() -> None:
    answer = verdict_answer(
        ("lexical borrowing", True, {"de": "  lexikalische\n Entlehnung ", "fr": "emprunt"}),
        ("not a candidate", True, {"de": "erfunden"}),
        ("BERT", True, {"de": "x" * 500}),
        ("BERT", False, {}),  # a second judgement of the same term is ignored
    )
    with canned_llm([answer]) as server:
        outcome = await filter_and_translate(
            CANDIDATES[:2], ["de"], params(server, model="m", max_translation_chars=100)
        )
    assert set(outcome.verdicts) == {"lexical borrowing", "BERT"}
    assert outcome.verdicts["lexical borrowing"].translations == {"de": "lexikalische Entlehnung"}
    assert outcome.verdicts["BERT"].keep is True and outcome.verdicts["BERT"].translations == {}


async def test_gives_up_after_the_attempts_and_reports_why() -> None:
    with canned_llm([Canned("not json at all")]) as server:
        outcome = await filter_and_translate(CANDIDATES, ["de"], params(server, attempts=2))
    assert outcome.batches == outcome.failed_batches == 3
    assert outcome.requests == 6 and outcome.invalid_answers == 6 and outcome.verdicts == {}
    assert outcome.failures == ["the LLM's answer was not valid JSON for the schema"]

    cut = Canned('{"terms": [', finish_reason="length")
    with canned_llm([cut]) as server:
        outcome = await filter_and_translate(CANDIDATES[:1], [], params(server, attempts=1))
    assert outcome.failures == ["the LLM's answer was cut off for the schema"]


async def test_server_errors_are_retried_client_errors_stop_everything() -> None:
    good = verdict_answer(("lexical borrowing", True, {}), ("BERT", True, {}))
    with canned_llm([Canned(status=503), Canned(status=429), good]) as server:
        outcome = await filter_and_translate(CANDIDATES[:2], [], params(server, model="m"))
    assert outcome.failed_batches == 0 and outcome.http_errors == 2 and len(outcome.verdicts) == 2

    with canned_llm([Canned(status=400)]) as server:
        outcome = await filter_and_translate(
            CANDIDATES, ["de"], params(server, model="m", concurrency=1)
        )
    # The first refusal is final and the other batches are not even sent.
    assert len(server.bodies) == 1 and outcome.failed_batches == 3
    assert outcome.failures == ["the LLM refused the request (400)"]


async def test_timeouts_are_bounded() -> None:
    # Each answer would take 3 s; unbounded, either call below would take 6 s or more.
    with canned_llm([Canned("{}", delay=3.0)]) as server:
        started = time.monotonic()
        outcome = await filter_and_translate(
            CANDIDATES[:2], [], params(server, model="m", read_timeout=0.2, attempts=2)
        )
        assert time.monotonic() - started < 4.0
        assert outcome.requests == 2
        assert outcome.failures == ["the LLM timed out (ReadTimeout)"]

        started = time.monotonic()
        outcome = await filter_and_translate(
            CANDIDATES, [], params(server, model="m", read_timeout=30.0, total_timeout=0.5)
        )
        assert time.monotonic() - started < 4.0
        assert outcome.failed_batches == 3 and "took over" in outcome.failures[0]

    unreachable = TermFilterParams(url="http://127.0.0.1:9", connect_timeout=0.5, attempts=1)
    outcome = await filter_and_translate(CANDIDATES[:1], [], unreachable)
    assert outcome.failed_batches == 1 and "models" in outcome.failures[0]


# -- through the endpoint ------------------------------------------------------------------------


@pytest.fixture
def text() -> bytes:
    return (
        b"Contrastive learning for speech translation. We apply contrastive learning to a "
        b"speech encoder. The speech encoder and a text decoder share the embedding space. "
        b"Speech encoder features feed the text decoder. Animal print was trendy. Animal print."
    )


@pytest.fixture
async def llm_client(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, CannedLlm]]:
    script = judge_all(
        keep=lambda term: "animal" not in term.lower(),
        translate=lambda term, lang: f"{term}@{lang}",
    )
    with canned_llm(script) as server:
        settings = make_settings(
            f"sqlite:///{tmp_path / 'g.db'}", tmp_path, llm_url=server.url, llm_model=MODEL
        )
        async with serve(create_test_app(settings)) as client:
            yield client, server


async def test_the_draft_is_filtered_and_translated_when_an_llm_is_configured(
    llm_client: tuple[httpx.AsyncClient, CannedLlm], text: bytes
) -> None:
    client, server = llm_client
    response = await client.post(
        "/v1/glossaries/extract",
        files={"file": ("talk.txt", text)},
        data={"langs": "de", "max_terms": "3", "save": "true"},
    )
    assert response.status_code == 201, response.text
    draft = response.json()
    llm = draft["llm"]
    assert llm["used"] and llm["model"] == MODEL and llm["failed_batches"] == 0
    assert llm["candidates"] == llm["kept"] + llm["dropped"] and llm["dropped"] >= 1
    assert len(draft["entries"]) == 3
    for entry in draft["entries"]:
        assert "animal" not in entry["source"].lower()
        assert entry["targets"] == {"de": [f"{entry['source']}@de"]}
        assert entry["evidence"]["llm"] == "kept"
    stored = (await client.get(f"/v1/glossaries/{draft['glossary_id']}")).json()
    assert stored["target_languages"] == ["de"]
    assert stored["entries"][0]["targets"]["de"] == [f"{stored['entries'][0]['source']}@de"]

    bodies = len(server.bodies)
    off = await client.post(
        "/v1/glossaries/extract", files={"file": ("talk.txt", text)}, data={"use_llm": "false"}
    )
    assert off.json()["llm"]["used"] is False and len(server.bodies) == bodies
    assert {e["evidence"]["llm"] for e in off.json()["entries"]} == {"off"}


async def test_a_failing_llm_leaves_the_statistical_draft_and_a_warning(
    tmp_path: Path, text: bytes
) -> None:
    with canned_llm([Canned(status=500)]) as server:
        settings = make_settings(f"sqlite:///{tmp_path / 'g.db'}", tmp_path, llm_url=server.url)
        async with serve(create_test_app(settings)) as client:
            response = await client.post(
                "/v1/glossaries/extract",
                files={"file": ("talk.txt", text)},
                data={"langs": "de,zh", "max_terms": "4"},
            )
    assert response.status_code == 200, response.text
    draft = response.json()
    assert [w["code"] for w in draft["warnings"]] == ["llm_unavailable"]
    assert "statistical draft" in draft["warnings"][0]["message"]
    assert draft["llm"]["failed_batches"] == draft["llm"]["batches"] == 1
    assert len(draft["entries"]) == 4
    assert all(e["targets"] == {"de": [], "zh": []} for e in draft["entries"])
    assert {e["evidence"]["llm"] for e in draft["entries"]} == {"unchecked"}
    assert len(server.bodies) == 3  # one batch, three tries
