"""The phone-trigram index of large phonetic glossaries, the batched n-gram vectors, index state."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from kernel.frames import RecognizedWord
from retriever import gram_index
from retriever.aggregate import AggregationParams
from retriever.gram_index import PhoneGramIndex, build_gram_index
from retriever.index import IndexManager, IndexParams
from retriever.phonetic import PhoneticTermEncoder, ngram_vector, phone_ids
from retriever.pronounce import cmu_dictionary, pronunciations
from retriever.word_evidence import (
    TextMatchers,
    WordEvidenceRetriever,
    WordRetrievalParams,
    word_phones,
)

from .helpers import snapshot

TERMS = ["annotated corpus", "BLEU score", "language model", "lexical borrowing", "NLP"]


def distractors(n: int, seed: int = 0) -> list[str]:
    words = sorted(w for w in cmu_dictionary() if w.isalpha() and len(w) > 3)
    rng = random.Random(seed)
    return list(dict.fromkeys(" ".join(rng.sample(words, 2)) for _ in range(n)))


def test_batched_ngram_vectors_equal_the_one_at_a_time_ones() -> None:
    terms = [*TERMS, "2022", "x", "mBART-50", *distractors(300)]
    encoder = PhoneticTermEncoder()
    batched = encoder.encode_terms(terms)
    rows = [ngram_vector(v, encoder.params) for t in terms for v in pronunciations(t) or ((),)]
    single = np.stack(rows)
    norms = np.linalg.norm(single, axis=1, keepdims=True)
    single = np.divide(single, norms, out=np.zeros_like(single), where=norms > 0)
    assert batched.vectors.shape == single.shape
    assert float(np.abs(batched.vectors - single).max()) < 1e-6


def test_a_whole_term_heard_in_the_window_ranks_first_among_thousands() -> None:
    snap = snapshot([*TERMS, *distractors(5_000)])
    index = build_gram_index(snap, "phonetic")
    window = ["so", "we", "will", "cover", "what", "lexical", "borrowing", "is", "and", "why"]
    query = phone_ids([p for w in window for p in word_phones(w)])
    found = index.search_phones([query], 10)
    top = [snap.entries[int(t)].source for t in found.term_ids[0] if t >= 0]
    print("top 10:", top)
    assert top[0] == "lexical borrowing"
    assert found.scores[0, 0] >= 1.0  # all its trigrams heard


def test_new_version_reuses_unchanged_terms_and_the_cache_round_trips(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    terms = [*TERMS, *distractors(2_000, seed=1)]
    first = build_gram_index(snapshot(terms), "phonetic")
    pronounced: list[str] = []
    real = pronunciations

    def counting(term: str) -> tuple[tuple[str, ...], ...]:
        pronounced.append(term)
        return real(term)

    monkeypatch.setattr("retriever.pronounce.pronunciations", counting)
    second = build_gram_index(
        snapshot([*terms, "speech translation"], version=2), "phonetic", first
    )
    assert pronounced == ["speech translation"]
    assert second.n_terms == first.n_terms + 1
    second.save(tmp_path / "idx")
    loaded = PhoneGramIndex.load_grams(tmp_path / "idx", second.snapshot, "phonetic")
    assert loaded is not None and loaded.nbytes == second.nbytes
    q = phone_ids([p for w in ["the", "language", "model"] for p in word_phones(w)])
    assert (loaded.search_phones([q], 5).term_ids == second.search_phones([q], 5).term_ids).all()
    # A cache entry for other terms is not taken.
    assert PhoneGramIndex.load_grams(tmp_path / "idx", first.snapshot, "phonetic") is None
    assert loaded.kind == gram_index.KIND


def test_manager_reports_state_and_retrieval_uses_the_trigram_index() -> None:
    manager = IndexManager(PhoneticTermEncoder(), IndexParams(gram_min_terms=1_000))
    snap = snapshot([*TERMS, *distractors(3_000, seed=2)])
    assert manager.state("g") is None
    manager.announce("g", 1)
    announced = manager.state("g")
    assert announced is not None and (announced.state, announced.searchable) == ("building", False)
    manager.update(snap).result()
    state = manager.state("g")
    assert state is not None
    assert (state.state, state.progress, state.kind, state.searchable) == (
        "ready",
        1.0,
        "phone-trigram",
        True,
    )
    retriever = WordEvidenceRetriever(
        manager, TextMatchers(), ["g"], ["de"], WordRetrievalParams(AggregationParams(tau=0.8))
    )
    # The words as heard; the trigram index (or the exact matcher) must find the term.
    heard = [
        RecognizedWord(w, round(s * 16_000), round(e * 16_000))
        for w, s, e in [("the", 0.1, 0.2), ("lexical", 0.2, 0.7), ("borrowings", 0.7, 1.3)]
    ]
    hits = retriever.process(0, 0, 30_720, heard, [], final=True)
    assert "lexical borrowing" in [h.source for h in hits.hits]
    manager.close()
