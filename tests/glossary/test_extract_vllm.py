"""The LLM step of glossary drafts against the real CPU vLLM serving the tiny random Qwen3-Omni.

The model's words are meaningless: assert on the format only. vLLM must accept
the request (``response_format`` ``json_schema`` with an ``enum``, ``minItems``,
``maxItems`` and ``maxLength``); its constrained answer is either JSON that
validates against the batch or the retry-then-fallback path, never an
exception or a 4xx.
"""

from __future__ import annotations

import time

import pytest

from glossary.extract import (
    DraftRequest,
    ExtractionLimits,
    TermCandidate,
    TermFilterParams,
    UploadedDocument,
    draft_glossary,
    filter_and_translate,
)
from tests.support.vllm_server import VllmServer
from tests.translator.realvllm import RecordingTransport

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(300)]

CANDIDATES = [
    TermCandidate("lexical borrowing", "what lexical borrowing is"),
    TermCandidate("BERT", "multilingual BERT and BETO"),
    TermCandidate("CRF", "a conditional random field (CRF) tagger", "conditional random field"),
    TermCandidate("test set", "results on the test set"),
]


def _params(server: VllmServer) -> TermFilterParams:
    # Short answers and two tries: the random model fills its budget with JSON whitespace.
    return TermFilterParams(
        url=server.url,
        model=server.name,
        batch_size=4,
        attempts=2,
        read_timeout=60.0,
        total_timeout=90.0,
        max_translation_chars=24,
        tokens_per_term=16,
        tokens_per_translation=16,
    )


async def test_constrained_json_from_vllm_validates_or_falls_back(vllm: VllmServer) -> None:  # noqa: F811
    transport = RecordingTransport()
    started = time.monotonic()
    outcome = await filter_and_translate(
        CANDIDATES, ["de", "zh"], _params(vllm), transport=transport
    )
    assert time.monotonic() - started < 60
    # vLLM accepted every request: the schema and the response_format shape are valid there.
    assert outcome.http_errors == 0, outcome.failures
    assert outcome.requests == len(transport.bodies) >= 1
    for body in transport.bodies:
        assert body["response_format"]["type"] == "json_schema"
        assert body["response_format"]["json_schema"]["schema"]["properties"]["terms"]
    terms = {c.term for c in CANDIDATES}
    if outcome.failed_batches == 0:
        assert outcome.verdicts and set(outcome.verdicts) <= terms
        for verdict in outcome.verdicts.values():
            assert set(verdict.translations) <= {"de", "zh"}
            assert all(0 < len(t) <= 24 for t in verdict.translations.values())
    else:
        assert outcome.failed_batches == outcome.batches == 1
        assert outcome.requests == 2 and outcome.invalid_answers == 2
        assert all("answer" in reason for reason in outcome.failures)


async def test_a_draft_through_vllm_keeps_its_entries(vllm: VllmServer) -> None:  # noqa: F811
    text = (
        b"Lexical borrowing in Spanish news. We annotate lexical borrowing with a BIO scheme and "
        b"train a conditional random field (CRF). The CRF beats multilingual BERT on the test "
        b"set. Lexical borrowing detection needs a CRF and BERT embeddings."
    )
    draft = await draft_glossary(
        DraftRequest(
            uploads=(UploadedDocument("talk.txt", text),),
            languages=("de",),
            max_terms=4,
            use_llm=True,
            llm=_params(vllm),
        ),
        ExtractionLimits(),
    )
    llm = draft.llm
    assert llm.used and llm.model == vllm.name and 0 < llm.candidates <= 8
    assert llm.kept + llm.dropped + llm.unchecked == llm.candidates
    if llm.failed_batches == llm.batches:
        # The statistical draft, whole and untranslated.
        assert [w.code for w in draft.warnings] == ["llm_unavailable"]
        assert len(draft.entries) == 4
        assert all(e.targets == {"de": []} and e.evidence.llm == "unchecked" for e in draft.entries)
    elif llm.failed_batches:
        assert [w.code for w in draft.warnings] == ["llm_unavailable"]
    else:
        assert draft.warnings == []
        assert all(e.evidence.llm == "kept" for e in draft.entries)
