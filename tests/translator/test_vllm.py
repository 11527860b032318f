"""The translator against a real vLLM serving a tiny random Qwen3-Omni on the CPU.

The model's words are meaningless: assert on protocol, counts and cache figures.
"""

from __future__ import annotations

import asyncio
import base64
import statistics
import uuid

import pytest

from kernel.frames import AudioChunk, StageWarning, TranslationCommit, TranslationDelta
from server.translator import (
    FaultParams,
    HistoryParams,
    TranslatorParams,
    TrimPolicy,
    VllmTranslatorService,
)
from server.translator.params import DecodingParams
from tests.support.vllm_server import VllmServer
from tests.translator.fakes import hits
from tests.translator.realvllm import (
    RecordingTransport,
    chunks,
    metric,
    no_terms,
    session_context,
    speech,
)

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(900)]

TERMS = (
    ("contrastive learning", {"zh": "对比学习", "de": "kontrastives Lernen"}, 0.91),
    ("BLEU score", {"zh": "BLEU值", "de": "BLEU-Wert"}, 0.84),
)


def _service(
    server: VllmServer, **overrides: object
) -> tuple[VllmTranslatorService, RecordingTransport]:
    transport = RecordingTransport()
    params = TranslatorParams(url=server.url, model=server.name, **overrides)  # type: ignore[arg-type]
    return VllmTranslatorService(params, transport=transport), transport


async def test_deltas_and_a_commit_per_language_for_every_chunk(vllm: VllmServer) -> None:
    service, transport = _service(vllm)
    assert await service.check_ready()
    warnings: list[StageWarning] = []
    session = await service.open_session(session_context("zh", "de"), warnings.append)
    try:
        for chunk in chunks(4):
            terms = hits(chunk.index, *TERMS) if chunk.index % 2 == 0 else no_terms(chunk.index)
            events = [e async for e in session.translate(chunk, terms)]
            commits = [e for e in events if isinstance(e, TranslationCommit)]
            assert sorted(c.lang for c in commits) == ["de", "zh"]
            for commit in commits:
                deltas = [
                    e for e in events if isinstance(e, TranslationDelta) and e.lang == commit.lang
                ]
                assert deltas, "the answer streamed"
                assert "".join(d.delta for d in deltas) == commit.text
                assert commit.time_to_first_token is not None
                assert 0 < int(commit.extra["completion_tokens"]) <= 40  # type: ignore[call-overload]
                assert commit.extra["history_chunks"] == chunk.index
            # Each language's commit is its last event for the chunk.
            assert isinstance(events[-1], TranslationCommit)
    finally:
        await session.aclose()
        await service.aclose()
    assert warnings == []

    # The request bodies: 2 languages × 4 chunks, each with audio, term_map when retrieved.
    assert len(transport.bodies) == 8
    for body in transport.bodies:
        user = body["messages"][-1]
        audio = user["content"][0]
        assert audio["type"] == "input_audio"
        assert base64.b64decode(audio["input_audio"]["data"])[:4] == b"RIFF"
        assert body["max_tokens"] == 40 and body["top_k"] == 20
        n_past = (len(body["messages"]) - 2) // 2
        if n_past % 2 == 0:  # chunks 0 and 2 had terms
            zh = "Chinese" in body["messages"][0]["content"]
            expected = "对比学习" if zh else "kontrastives Lernen"
            assert user["content"][1]["text"].startswith("\n\nterm_map:\ncontrastive learning=")
            assert expected in user["content"][1]["text"]
        else:
            assert len(user["content"]) == 1


async def _run_policy(
    server: VllmServer, policy: TrimPolicy, n_chunks: int
) -> list[dict[str, float]]:
    history = HistoryParams(policy=policy, max_chunks=10, block=5)
    service, _ = _service(server, history=history)
    session = await service.open_session(session_context("zh"), [].append)
    stats = []
    try:
        for chunk in chunks(n_chunks):
            events = [e async for e in session.translate(chunk, hits(chunk.index, *TERMS[:1]))]
            (commit,) = [e for e in events if isinstance(e, TranslationCommit)]
            assert "error" not in commit.extra, commit.extra
            stats.append(
                {
                    "prompt": float(commit.extra["prompt_tokens"]),  # type: ignore[arg-type]
                    "cached": float(commit.extra["cached_tokens"] or 0),  # type: ignore[arg-type]
                    "ttft": float(commit.time_to_first_token or 0.0),
                }
            )
    finally:
        await session.aclose()
        await service.aclose()
    return stats


async def test_cached_tokens_grow_and_block_trimming_beats_step_trimming(vllm: VllmServer) -> None:
    # A fresh tenant per run (cache_salt) so the runs cannot share cache entries.
    block = await _run_policy(vllm, TrimPolicy.BLOCK, 40)
    step = await _run_policy(vllm, TrimPolicy.STEP, 40)

    # Before any trim, every turn extends the previous prompt: cache hits grow.
    early = [s["cached"] for s in block[:10]]
    assert early[0] == 0
    assert early[9] > early[3] > 0
    ratio_block = sum(s["cached"] for s in block) / sum(s["prompt"] for s in block)
    ratio_step = sum(s["cached"] for s in step) / sum(s["prompt"] for s in step)
    # Once full (from chunk 11 on), step trimming misses on almost the whole history.
    steady_step = [s["cached"] / s["prompt"] for s in step[12:]]
    steady_block = [s["cached"] / s["prompt"] for s in block[12:]]
    assert ratio_block > ratio_step + 0.2, (ratio_block, ratio_step)
    assert statistics.mean(steady_block) > 2 * statistics.mean(steady_step)


async def test_cache_salt_keeps_tenants_apart(vllm: VllmServer) -> None:
    # 8 s of audio (about 100 audio tokens) makes the prompt longer than one KV
    # block: only whole blocks are cached.
    first = chunks(1, lm=4)[0]
    pcm = speech()[: 8 * 16_000].copy()
    chunk = AudioChunk(0, 0, pcm, first.received_at)
    alpha, beta = f"alpha-{uuid.uuid4().hex}", f"beta-{uuid.uuid4().hex}"

    async def cached(tenant: str) -> int:
        service, _ = _service(vllm, decoding=DecodingParams(max_tokens_per_lm=1))
        session = await service.open_session(session_context("zh", lm=4, tenant=tenant), [].append)
        try:
            events = [e async for e in session.translate(chunk, no_terms(0))]
        finally:
            await service.aclose()
        (commit,) = [e for e in events if isinstance(e, TranslationCommit)]
        assert "error" not in commit.extra, commit.extra
        return int(commit.extra["cached_tokens"] or 0)  # type: ignore[call-overload]

    assert await cached(alpha) == 0
    assert await cached(alpha) > 0
    assert await cached(beta) == 0


async def test_cancelling_aborts_the_request_in_vllm(vllm: VllmServer) -> None:
    # 2000 tokens would take vLLM many seconds on this CPU.
    service, _ = _service(vllm, decoding=DecodingParams(max_tokens_per_lm=500))
    session = await service.open_session(session_context("zh", lm=4), [].append)
    (chunk,) = chunks(1, lm=4)
    events = session.translate(chunk, no_terms(0))
    try:
        assert isinstance(await anext(events), TranslationDelta)
        await events.aclose()  # type: ignore[attr-defined]
        for _ in range(50):
            if await metric(vllm.url, "vllm:num_requests_running") == 0:
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("vLLM still runs the cancelled request")
        generated = await metric(vllm.url, "vllm:generation_tokens_total")
        await asyncio.sleep(1.0)
        assert await metric(vllm.url, "vllm:generation_tokens_total") == generated
    finally:
        await service.aclose()


async def test_killed_llm_warns_then_translation_resumes_after_restart(vllm: VllmServer) -> None:
    faults = FaultParams(
        connect_timeout=2.0,
        breaker_failures=2,
        breaker_reset_seconds=0.5,
        breaker_reset_max_seconds=2.0,
    )
    service, _ = _service(vllm, faults=faults)
    warnings: list[StageWarning] = []
    session = await service.open_session(session_context("zh", "de"), warnings.append)
    stream = iter(chunks(400))

    async def translate_next() -> dict[str, TranslationCommit]:
        chunk = next(stream)
        events = [e async for e in session.translate(chunk, hits(chunk.index, *TERMS))]
        return {e.lang: e for e in events if isinstance(e, TranslationCommit)}

    try:
        for _ in range(2):
            assert all(c.text for c in (await translate_next()).values())
        vllm.kill()
        for _ in range(4):
            commits = await translate_next()
            assert set(commits) == {"zh", "de"}
            assert all(c.text == "" and "error" in c.extra for c in commits.values())
        assert [w.code for w in warnings] == ["llm_unavailable"]

        # Keep streaming in real time while vLLM restarts, as a live session would.
        restart = asyncio.create_task(asyncio.to_thread(vllm.start))
        while not restart.done():
            commits = await translate_next()
            assert set(commits) == {"zh", "de"}
            await asyncio.sleep(0.96)
        await restart
        # The breaker lets a probe through within its (capped) reset time.
        errors: list[object] = []
        for _ in range(30):
            commits = await translate_next()
            if all(c.text for c in commits.values()):
                break
            errors.extend(c.extra.get("error") for c in commits.values())
            await asyncio.sleep(0.3)
        else:
            pytest.fail(f"translation did not resume after vLLM came back: {errors[-4:]}")
        assert [w.code for w in warnings] == ["llm_unavailable"], "one warning per outage"
    finally:
        await session.aclose()
        await service.aclose()
