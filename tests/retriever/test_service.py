"""The retriever service: batching of concurrent calls, glossary upload on 409, over real HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kernel.frames import RecognizedWord, TermHits
from retriever.engine import EngineParams, RequestBatcher, RetrievalEngine
from retriever.wire import (
    QUERY_HEADER,
    GlossaryRef,
    GlossaryUpload,
    MissingGlossaries,
    RetrieveQuery,
    WordIn,
)
from tests.support.retriever_service import RetrieverProcess, start_retriever

from .helpers import snapshot

SNAP = snapshot(["language model", "annotated corpus"])


def query(session: str, chunk: int = 0, version: int = 1) -> RetrieveQuery:
    said = RecognizedWord("language", 3_000, 9_000), RecognizedWord("model", 9_000, 15_000)
    return RetrieveQuery(
        session_id=session,
        chunk_index=chunk,
        start_sample=chunk * 30_720,
        glossaries=[GlossaryRef(id="g", version=version)],
        target_languages=["de"],
        tau=0.5,
        words=[WordIn.of(w) for w in said],
    )


async def test_concurrent_requests_run_in_shared_batches() -> None:
    engine = RetrievalEngine(EngineParams())
    engine.add_glossary(SNAP)
    batcher = RequestBatcher(engine, window_seconds=0.05, max_batch=8)
    batcher.start()
    try:
        results = await asyncio.gather(*(batcher.submit(query(f"s{i}"), 30_720) for i in range(12)))
    finally:
        await batcher.aclose()
        engine.close()
    assert batcher.requests == 12
    assert batcher.batches < 12 and batcher.max_seen == 8
    for hits, size in results:
        assert isinstance(hits, TermHits)
        assert hits.hits[0].source == "language model"
        assert 1 <= size <= 8


async def test_unknown_glossary_version_is_reported_missing() -> None:
    engine = RetrievalEngine(EngineParams())
    try:
        result = engine.retrieve(query("s", version=2), 30_720)
    finally:
        engine.close()
    assert isinstance(result, MissingGlossaries)
    assert result.missing == [GlossaryRef(id="g", version=2)]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RetrieverProcess]:
    proc = start_retriever(tmp_path_factory.mktemp("retriever") / "service.log")
    yield proc
    proc.stop()


@pytest.mark.slow
async def test_http_retrieve_uploads_missing_glossary_then_answers(
    service: RetrieverProcess,
) -> None:
    q = query("http-session")
    headers = {QUERY_HEADER: q.model_dump_json()}
    body = bytes(2 * 30_720)
    async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:
        first = await client.post("/v1/retrieve", content=body, headers=headers)
        assert first.status_code == 409
        assert first.json() == {"missing": [{"id": "g", "version": 1}]}
        put = await client.put(
            "/v1/glossaries/g/versions/1",
            content=GlossaryUpload.of(SNAP).model_dump_json(),
            headers={"Content-Type": "application/json"},
        )
        assert put.status_code == 204
        answers = await asyncio.gather(
            *(
                client.post(
                    "/v1/retrieve",
                    content=body,
                    headers={QUERY_HEADER: query(f"c{i}").model_dump_json()},
                )
                for i in range(16)
            )
        )
        stats = (await client.get("/v1/stats")).json()
        bad = await client.post("/v1/retrieve", content=b"\0", headers=headers)
        bad_query = await client.post("/v1/retrieve", content=body, headers={QUERY_HEADER: "{"})
        unknown = await client.get("/v1/nothing-here")
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert answer.json()["hits"][0]["source"] == "language model"
    assert stats["max_batch"] > 1
    # Every error in the project's one envelope (kernel.errors), as the gateway answers.
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "validation_failed"
    assert "s16le" in bad.json()["error"]["message"]
    assert bad_query.status_code == 422
    assert bad_query.json()["error"]["message"].startswith("bad X-Rasst-Query")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    assert json.loads(headers[QUERY_HEADER])["session_id"] == "http-session"


def test_service_module_imports_no_fastapi_elsewhere() -> None:
    # Only retriever/service.py may import FastAPI (the design rule for retriever/).
    root = Path(__file__).resolve().parents[2] / "retriever"
    offenders = [
        p.name
        for p in root.glob("*.py")
        if p.name != "service.py" and "fastapi" in p.read_text(encoding="utf-8")
    ]
    assert offenders == []
