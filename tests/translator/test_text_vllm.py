"""The text tier against a real vLLM serving a tiny random Qwen3 text model on the CPU.

The model's words are meaningless: assert on protocol, request bodies, counts
and cache figures, never on the translation's words.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from kernel.frames import (
    AudioChunk,
    ChunkAnalysis,
    RecognizedWord,
    StageWarning,
    TranslationCommit,
    TranslationDelta,
    samples_for,
)
from server.translator import FaultParams, HistoryParams, TranslatorParams, TrimPolicy
from server.translator.params import TextParams
from server.translator.text_service import TextTranslatorService
from tests.support.vllm_server import VllmServer
from tests.translator.fakes import hits
from tests.translator.realvllm import RecordingTransport, metric, no_terms, session_context

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(900)]

CHUNK = samples_for(0.96)
TERMS = (
    ("contrastive learning", {"zh": "对比学习", "de": "kontrastives Lernen"}, 0.91),
    ("BLEU score", {"zh": "BLEU值", "de": "BLEU-Wert"}, 0.84),
)
SENTENCES = (
    "we train the encoder with contrastive learning.",
    "the BLEU score improves on every test set.",
    "retrieval keeps the glossary terms in the prompt.",
    "latency stays below two seconds per chunk.",
)


def _service(
    server: VllmServer, **overrides: object
) -> tuple[TextTranslatorService, RecordingTransport]:
    transport = RecordingTransport()
    params = TranslatorParams(url=server.url, model=server.name, **overrides)  # type: ignore[arg-type]
    return TextTranslatorService(params, transport=transport), transport


def _chunk(index: int) -> AudioChunk:
    # The text tier never reads the audio; a chunk only places the words in time.
    import numpy as np

    return AudioChunk(index, index * CHUNK, np.zeros(CHUNK, dtype="<i2"), time.monotonic())


def _committed(index: int, sentence: str) -> ChunkAnalysis:
    """A chunk whose utterance ended in it: ``sentence`` as committed words."""
    tokens = sentence.split()
    step = CHUNK // len(tokens)
    start = index * CHUNK
    words = tuple(
        RecognizedWord(w, start + i * step, start + (i + 1) * step - 1)
        for i, w in enumerate(tokens)
    )
    return ChunkAnalysis(index, speech_samples=CHUNK, words=words)


async def _translate(session, index: int, sentence: str | None, with_terms: bool = True):  # type: ignore[no-untyped-def]
    analysis = (
        _committed(index, sentence)
        if sentence is not None
        else ChunkAnalysis(index, speech_samples=0)
    )
    terms = hits(index, *TERMS) if with_terms else no_terms(index)
    return [e async for e in session.translate(_chunk(index), terms, analysis)]


async def test_segments_stream_deltas_and_commit_with_the_term_check(vllm_text: VllmServer) -> None:
    service, transport = _service(vllm_text, text=TextParams(repair=True))
    assert await service.check_ready()
    warnings: list[StageWarning] = []
    session = await service.open_session(session_context("zh", "de"), warnings.append)
    try:
        for index, sentence in enumerate(SENTENCES[:2]):
            events = await _translate(session, index, sentence)
            commits = [e for e in events if isinstance(e, TranslationCommit)]
            assert sorted(c.lang for c in commits) == ["de", "zh"]
            for commit in commits:
                assert commit.extra["source"] == sentence
                assert commit.extra["policy"] == "utterance_end"
                assert "error" not in commit.extra, commit.extra
                deltas = [
                    e for e in events if isinstance(e, TranslationDelta) and e.lang == commit.lang
                ]
                if not commit.extra.get("draft"):
                    assert "".join(d.delta for d in deltas) == commit.text
                # An immediate end-of-text (the random model's choice, seen once) has no
                # first token to time.
                if commit.raw:
                    assert commit.time_to_first_token is not None
                assert 0 < int(commit.extra["completion_tokens"]) <= 4 * len(sentence.split())  # type: ignore[call-overload]
                # The random model renders no term: every term said is missed.
                said = [s for s, _, _ in TERMS if s in sentence]
                assert set(commit.terms_missed) | set(commit.terms_used) >= set(said)
                # A missed term asks for one repair (counted in the requests below). Whether it
                # returned text is the random model's choice: an immediate end-of-text leaves
                # the first draft (seen once in CI), so only that it was asked is asserted.
                assert "repair" in commit.extra, "a missed term asks for one repair"
        # A chunk with no new words costs no request and still commits (empty).
        before = len(transport.bodies)
        events = await _translate(session, 2, None)
        assert [(e.lang, e.text) for e in events] == [("zh", ""), ("de", "")]
        assert len(transport.bodies) == before
    finally:
        await session.aclose()
        await service.aclose()
    assert warnings == []

    turns = [b for b in transport.bodies if "glossary renderings" not in str(b["messages"][-1])]
    repairs = [b for b in transport.bodies if "glossary renderings" in str(b["messages"][-1])]
    assert len(turns) == 4 and len(repairs) == 4  # 2 segments × 2 languages, each repaired once
    for body in turns:
        user = body["messages"][-1]
        assert user["role"] == "user" and isinstance(user["content"], str)
        assert "\n\nterm_map:\ncontrastive learning=" in user["content"]
        assert "对比学习" in user["content"] or "kontrastives Lernen" in user["content"]
        # vLLM detected from /v1/models: its own fields are sent.
        assert body["cache_salt"] and body["top_k"] == 20
        assert body["chat_template_kwargs"] == {"enable_thinking": False}
        assert body["stream_options"] == {"include_usage": True}
    for body in repairs:
        assert body["messages"][-2]["role"] == "assistant"
        assert "=" in body["messages"][-1]["content"]


async def test_history_is_trimmed_a_block_at_a_time_and_the_prefix_cache_hits(
    vllm_text: VllmServer,
) -> None:
    history = HistoryParams(policy=TrimPolicy.BLOCK, max_chunks=6, block=3)
    service, transport = _service(vllm_text, history=history, text=TextParams(repair=False))
    session = await service.open_session(session_context("de"), [].append)
    cached: list[int] = []
    try:
        for index in range(12):
            events = await _translate(session, index, SENTENCES[index % 4])
            (commit,) = [e for e in events if isinstance(e, TranslationCommit)]
            assert "error" not in commit.extra, commit.extra
            cached.append(int(commit.extra["cached_tokens"] or 0))  # type: ignore[call-overload]
    finally:
        await session.aclose()
        await service.aclose()
    past_pairs = [(len(b["messages"]) - 2) // 2 for b in transport.bodies]
    # Grows to the limit of 6, then drops a block of 3 at once: 6 → 4 (trim) → 5 → 6 → 4 …
    assert past_pairs == [0, 1, 2, 3, 4, 5, 6, 4, 5, 6, 4, 5]
    assert cached[0] == 0
    # Every turn after the first extends the previous prompt: whole KV blocks hit.
    assert all(c > 0 for c in cached[2:7]), cached
    assert await metric(vllm_text.url, "vllm:prefix_cache_hits_total") > 0


async def test_cache_salt_keeps_tenants_apart(vllm_text: VllmServer) -> None:
    long_sentence = " ".join(SENTENCES * 3)

    async def cached(tenant: str) -> int:
        service, _ = _service(
            vllm_text, text=TextParams(repair=False, min_tokens=1, tokens_per_word=0)
        )
        session = await service.open_session(session_context("zh", tenant=tenant), [].append)
        try:
            events = await _translate(session, 0, long_sentence, with_terms=False)
        finally:
            await service.aclose()
        (commit,) = [e for e in events if isinstance(e, TranslationCommit)]
        assert "error" not in commit.extra, commit.extra
        return int(commit.extra["cached_tokens"] or 0)  # type: ignore[call-overload]

    alpha, beta = f"alpha-{uuid.uuid4().hex}", f"beta-{uuid.uuid4().hex}"
    assert await cached(alpha) == 0
    assert await cached(alpha) > 0
    assert await cached(beta) == 0


async def test_killed_llm_warns_once_then_translation_resumes(vllm_text: VllmServer) -> None:
    faults = FaultParams(
        connect_timeout=2.0,
        breaker_failures=2,
        breaker_reset_seconds=0.5,
        breaker_reset_max_seconds=2.0,
    )
    service, _ = _service(vllm_text, faults=faults, text=TextParams(repair=False))
    warnings: list[StageWarning] = []
    session = await service.open_session(session_context("zh", "de"), warnings.append)
    counter = iter(range(10_000))

    async def translate_next() -> dict[str, TranslationCommit]:
        index = next(counter)
        events = await _translate(session, index, SENTENCES[index % 4])
        return {e.lang: e for e in events if isinstance(e, TranslationCommit)}

    try:
        for _ in range(2):
            assert all("error" not in c.extra for c in (await translate_next()).values())
        vllm_text.kill()
        for _ in range(4):
            commits = await translate_next()
            assert set(commits) == {"zh", "de"}
            assert all(c.text == "" and "error" in c.extra for c in commits.values())
        assert [w.code for w in warnings] == ["llm_unavailable"]
        restart = asyncio.create_task(asyncio.to_thread(vllm_text.start))
        while not restart.done():
            assert set(await translate_next()) == {"zh", "de"}
            await asyncio.sleep(0.96)
        await restart
        errors: list[object] = []
        for _ in range(30):
            commits = await translate_next()
            if all("error" not in c.extra for c in commits.values()):
                break
            errors.extend(c.extra.get("error") for c in commits.values())
            await asyncio.sleep(0.3)
        else:
            pytest.fail(f"translation did not resume after vLLM came back: {errors[-4:]}")
        assert [w.code for w in warnings] == ["llm_unavailable"], "one warning per outage"
        assert len(session.history("zh")) >= 3, "failed segments stay out of the history"
    finally:
        await session.aclose()
        await service.aclose()
