"""The text tier's per-session stage against a scripted endpoint (one stage, a mock transport).

The real-server behaviour (vLLM: events, cache, outage) is in test_text_vllm.py;
here: the request shape for a non-vLLM server, the repair path, and how terms
retrieved while words wait reach the turn that sends those words.
"""

from __future__ import annotations

import pytest

from kernel.frames import (
    ChunkAnalysis,
    RecognizedWord,
    TranslationCommit,
    TranslationDelta,
    samples_for,
)
from server.translator import TranslatorParams
from server.translator.mode import mode_for_model
from server.translator.params import LlmMode, TextParams
from server.translator.text_policy import TextPolicyParams
from server.translator.text_service import TextTranslatorService
from tests.translator.fakes import Recorder, chunk, context, hits

TERM = ("contrastive learning", {"de": "kontrastives Lernen"}, 0.9)


def said(index: int, text: str, *, final: bool = True) -> ChunkAnalysis:
    start = index * samples_for(0.96)
    tokens = text.split()
    ws = tuple(
        RecognizedWord(w, start + i * 1000, start + i * 1000 + 900) for i, w in enumerate(tokens)
    )
    if final:
        return ChunkAnalysis(index, speech_samples=1, words=ws)
    return ChunkAnalysis(index, speech_samples=1, partial_words=ws)


def service(recorder: Recorder, **text: object) -> TextTranslatorService:
    params = TranslatorParams(url="http://llm.test", text=TextParams(**text))  # type: ignore[arg-type]
    return TextTranslatorService(params, transport=recorder.transport())


async def test_a_server_that_is_not_vllm_gets_no_vllm_fields() -> None:
    recorder = Recorder(default=["Wir ", "nutzen ", "kontrastives Lernen."])
    svc = service(recorder)
    session = await svc.open_session(context("de"), [].append)
    events = [
        e
        async for e in session.translate(
            chunk(0), hits(0, TERM), said(0, "we use contrastive learning.")
        )
    ]
    await svc.aclose()
    (body,) = recorder.bodies
    assert body["model"] == "served-model", "the server's first model"
    assert not {"cache_salt", "top_k", "chat_template_kwargs"} & set(body)
    assert body["messages"][-1] == {
        "role": "user",
        "content": "we use contrastive learning.\n\nterm_map:\ncontrastive learning=kontrastives Lernen",
    }
    (commit,) = [e for e in events if isinstance(e, TranslationCommit)]
    assert commit.text == "Wir nutzen kontrastives Lernen."
    assert commit.terms_used == ("contrastive learning",) and commit.terms_missed == ()
    assert [e.delta for e in events if isinstance(e, TranslationDelta)] == [
        "Wir ",
        "nutzen ",
        "kontrastives Lernen.",
    ]


async def test_a_missed_term_gets_one_repair_and_the_repaired_text_is_committed() -> None:
    recorder = Recorder(
        replies=[["Wir nutzen Kontrastlernen."], ["Wir nutzen kontrastives Lernen."]]
    )
    svc = service(recorder)
    session = await svc.open_session(context("de"), [].append)
    events = [
        e
        async for e in session.translate(
            chunk(0), hits(0, TERM), said(0, "we use contrastive learning.")
        )
    ]
    (commit,) = [e for e in events if isinstance(e, TranslationCommit)]
    assert commit.text == "Wir nutzen kontrastives Lernen."
    assert commit.terms_missed == () and commit.extra["draft"] == "Wir nutzen Kontrastlernen."
    draft, repair = recorder.bodies
    assert repair["messages"][: len(draft["messages"])] == draft["messages"]
    assert repair["messages"][-2] == {"role": "assistant", "content": "Wir nutzen Kontrastlernen."}
    assert "contrastive learning=kontrastives Lernen" in repair["messages"][-1]["content"]
    # The history keeps the repaired answer: the next turn continues from it.
    events = [e async for e in session.translate(chunk(1), hits(1), said(1, "it works."))]
    assert recorder.bodies[-1]["messages"][2] == {
        "role": "assistant",
        "content": "Wir nutzen kontrastives Lernen.",
    }
    await svc.aclose()


async def test_a_repair_that_still_misses_leaves_the_draft_and_reports_the_term() -> None:
    recorder = Recorder(replies=[["Wir nutzen X."], ["Immer noch X."]])
    svc = service(recorder)
    session = await svc.open_session(context("de"), [].append)
    events = [
        e
        async for e in session.translate(
            chunk(0), hits(0, TERM), said(0, "we use contrastive learning.")
        )
    ]
    await svc.aclose()
    (commit,) = [e for e in events if isinstance(e, TranslationCommit)]
    assert commit.text == "Wir nutzen X."
    assert commit.terms_missed == ("contrastive learning",)
    assert commit.extra["repair"] is True and "draft" not in commit.extra


async def test_without_repair_a_miss_is_only_reported() -> None:
    recorder = Recorder(default=["Wir nutzen X."])
    svc = service(recorder, repair=False)
    session = await svc.open_session(context("de"), [].append)
    events = [
        e
        async for e in session.translate(
            chunk(0), hits(0, TERM), said(0, "we use contrastive learning.")
        )
    ]
    await svc.aclose()
    (commit,) = [e for e in events if isinstance(e, TranslationCommit)]
    assert commit.terms_missed == ("contrastive learning",) and len(recorder.bodies) == 1


async def test_terms_retrieved_while_words_wait_reach_the_turn_that_sends_them() -> None:
    recorder = Recorder(default=["ok"])
    svc = service(recorder, policy=TextPolicyParams(max_wait_seconds=10.0), repair=False)
    session = await svc.open_session(context("de"), [].append)
    # Chunk 0: the term is heard, but its words are still revisable (no clause end).
    events = [
        e
        async for e in session.translate(
            chunk(0), hits(0, TERM), said(0, "we use contrastive", final=False)
        )
    ]
    assert [(type(e).__name__, e.text) for e in events] == [("TranslationCommit", "")]
    assert recorder.bodies == [], "nothing due, no request"
    # Chunk 1: the utterance ends; no terms retrieved in this chunk.
    events = [
        e
        async for e in session.translate(chunk(1), hits(1), said(0, "we use contrastive learning."))
    ]
    (body,) = recorder.bodies
    assert "contrastive learning=kontrastives Lernen" in body["messages"][-1]["content"]
    await svc.aclose()


@pytest.mark.parametrize(
    ("model", "mode"),
    [
        ("Qwen/Qwen3-Omni-30B-A3B-Instruct", LlmMode.SPEECH),
        ("rasst-zh", LlmMode.SPEECH),
        ("gavinlaw/rasst-speech-llm-de-cap16-denoise-ttag", LlmMode.SPEECH),
        ("Qwen/Qwen3-8B", LlmMode.TEXT),
        ("qwen3:4b-instruct", LlmMode.TEXT),
        ("tiny-qwen3-text", LlmMode.TEXT),
    ],
)
def test_auto_mode_reads_the_model_family_from_its_name(model: str, mode: LlmMode) -> None:
    assert mode_for_model(model) is mode


def test_the_text_tier_without_captions_is_refused_at_start_up() -> None:
    from pydantic import ValidationError

    from server.settings import Settings

    with pytest.raises(ValidationError, match="needs captions on"):
        Settings(llm_url="http://llm.test", llm_mode="text", captions=False)
    with pytest.raises(ValidationError):
        Settings(llm_mode="subtitles")  # type: ignore[arg-type]
