"""Word-level retrieval: exact matches, phone-alignment near misses, windows at chunk boundaries."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kernel.frames import RecognizedWord
from retriever.aggregate import AggregationParams
from retriever.index import IndexManager, IndexParams
from retriever.phonetic import PhoneticTermEncoder
from retriever.word_evidence import (
    TextMatcher,
    TextMatchers,
    WordEvidenceRetriever,
    WordRetrievalParams,
)

from .helpers import snapshot

TERMS = ["annotated corpus", "BLEU score", "language model", "pre-trained models"]
CHUNK = 30_720  # lm = 2


def words(*items: tuple[str, float, float]) -> list[RecognizedWord]:
    return [RecognizedWord(w, round(s * 16_000), round(e * 16_000)) for w, s, e in items]


@pytest.fixture(scope="module")
def manager() -> Iterator[IndexManager]:
    m = IndexManager(PhoneticTermEncoder(), IndexParams())
    m.update(snapshot(TERMS)).result()
    yield m
    m.close()


def retriever(manager: IndexManager, tau: float = 0.0) -> WordEvidenceRetriever:
    params = WordRetrievalParams(AggregationParams(tau=tau))
    return WordEvidenceRetriever(manager, TextMatchers(), ["g"], ["de"], params)


def test_text_matcher_ignores_spacing_hyphens_and_plural() -> None:
    matcher = TextMatcher(snapshot(TERMS))
    found = matcher.find(["the", "pretrained", "model", "and", "a", "bleu", "scores"])
    assert {(TERMS[t], a, b) for t, a, b in found} == {
        ("pre-trained models", 1, 3),
        ("BLEU score", 5, 7),
    }


def test_exact_match_scores_one_with_the_words_span(manager: IndexManager) -> None:
    hits = retriever(manager).process(
        0, 0, CHUNK, words(("a", 0.2, 0.3), ("language", 0.3, 0.8), ("model", 0.8, 1.2)), []
    )
    best = hits.hits[0]
    assert (best.source, best.score) == ("language model", 1.0)
    assert (best.start_sample, best.end_sample) == (round(0.3 * 16_000), round(1.2 * 16_000))
    assert best.targets == {"de": "language model-de"}


def test_near_miss_is_found_by_phone_alignment(manager: IndexManager) -> None:
    # The recogniser heard "annotated purpose": no exact match, close phones.
    hits = retriever(manager).process(
        0, 0, CHUNK, [], words(("annotated", 0.2, 0.8), ("purpose", 0.8, 1.3))
    )
    top = {h.source: h.score for h in hits.hits}
    assert "annotated corpus" in top
    assert 0.5 < top["annotated corpus"] < 1.0
    assert max(top, key=lambda k: top[k]) == "annotated corpus"


def test_term_straddling_a_chunk_boundary_is_found_in_the_next_chunk(
    manager: IndexManager,
) -> None:
    r = retriever(manager, tau=0.9)
    # "BLEU" ends chunk 0 (still partial there), "score" starts chunk 1.
    first = r.process(0, 0, CHUNK, [], words(("bleu", 1.6, 1.9)))
    assert "BLEU score" not in {h.source for h in first.hits}
    second = r.process(1, CHUNK, 2 * CHUNK, words(("bleu", 1.6, 1.9), ("score", 1.95, 2.4)), [])
    assert "BLEU score" in {h.source for h in second.hits}


def test_words_older_than_the_look_back_are_not_reported_again(manager: IndexManager) -> None:
    r = retriever(manager, tau=0.9)
    said = words(("language", 0.3, 0.8), ("model", 0.8, 1.2))
    assert r.process(0, 0, CHUNK, said, []).hits
    # Chunk 2 starts at 3.84 s: its windows begin after 1.92 s, the term is gone.
    r.process(1, CHUNK, 2 * CHUNK, [], [])
    assert not r.process(2, 2 * CHUNK, 3 * CHUNK, [], []).hits


def test_silence_and_unknown_glossaries_find_nothing(manager: IndexManager) -> None:
    assert not retriever(manager).process(0, 0, CHUNK, [], []).hits
    other = WordEvidenceRetriever(manager, TextMatchers(), ["missing"], ["de"])
    assert not other.process(0, 0, CHUNK, words(("language", 0.3, 0.8)), []).hits


def test_whisper_words_match_with_punctuation_case_and_spelling_variants() -> None:
    terms = ["RoBERTa", "data set", "BLEU score", "GPT-3"]
    m = IndexManager(PhoneticTermEncoder(), IndexParams())
    m.update(snapshot(terms)).result()
    try:
        said = words(
            ("We", 0.1, 0.2),
            ("fine-tune", 0.2, 0.5),
            ("Roberta,", 0.5, 0.9),
            ("GPT-3", 0.9, 1.2),
            ("on", 1.2, 1.3),
            ("the", 1.3, 1.4),
            ("dataset.", 1.4, 1.8),
        )
        hits = retriever(m, tau=0.8).process(0, 0, CHUNK, said, [])
        found = {h.source: h.score for h in hits.hits}
        assert found.get("RoBERTa") == 1.0 and found.get("data set") == 1.0
        assert found.get("GPT-3") == 1.0
    finally:
        m.close()


def test_a_term_is_reported_once_per_occurrence(manager: IndexManager) -> None:
    """The look-back sees the end of the previous chunk again: no repeat. Said again
    later: reported again."""
    r = retriever(manager, tau=0.8)
    said = words(("the", 1.5, 1.6), ("language", 1.6, 1.8), ("model", 1.8, 1.9))
    first = r.process(0, 0, CHUNK, said, [])
    assert [h.source for h in first.hits] == ["language model"]
    second = r.process(1, CHUNK, 2 * CHUNK, [], [])
    assert second.hits == ()
    again = words(("language", 4.2, 4.5), ("model", 4.5, 4.9))
    third = r.process(2, 2 * CHUNK, 3 * CHUNK, again, [])
    assert [h.source for h in third.hits] == ["language model"]


def test_revisable_words_then_final_words_of_one_occurrence_report_it_once(
    manager: IndexManager,
) -> None:
    r = retriever(manager, tau=0.8)
    partial = words(("annotated", 0.5, 1.0), ("corpus", 1.0, 1.5))
    assert [h.source for h in r.process(0, 0, CHUNK, [], partial).hits] == ["annotated corpus"]
    final = words(("annotated", 0.52, 1.0), ("corpus,", 1.0, 1.48))
    assert r.process(1, CHUNK, 2 * CHUNK, final, []).hits == ()


def test_final_words_arriving_late_are_still_searched(manager: IndexManager) -> None:
    """A long utterance's final words arrive when it ends, chunks after they were said."""
    r = retriever(manager, tau=0.8)
    for index in range(4):
        assert r.process(index, index * CHUNK, (index + 1) * CHUNK, [], []).hits == ()
    late = words(("a", 0.3, 0.5), ("BLEU", 0.5, 0.9), ("score", 0.9, 1.3), ("of", 7.5, 7.7))
    hits = r.process(4, 4 * CHUNK, 5 * CHUNK, late, [])
    assert [(h.source, h.start_sample) for h in hits.hits] == [("BLEU score", 8_000)]


def test_singular_and_plural_entries_report_the_form_that_was_said() -> None:
    matcher = TextMatcher(snapshot(["model", "models", "dataset"]))
    found = matcher.find(["two", "models", "and", "one", "model", "on", "datasets"])
    assert {(matcher.snapshot.entries[t].source, a) for t, a, _ in found} == {
        ("models", 1),
        ("model", 4),
        ("dataset", 6),  # only the singular is in the glossary: it matches the plural
    }
