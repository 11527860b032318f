"""The phonetic encoder: n-gram vectors for candidates, alignment for re-scoring."""

from __future__ import annotations

import numpy as np
import pytest

from retriever.phonetic import (
    PhoneticTermEncoder,
    phone_ids,
    rescore,
    rescore_batch,
    rescore_terms,
)
from retriever.pronounce import pronunciations

WINDOW = [
    "SIL",
    "AH",
    "B",
    "AH",
    "Z",
    "IY",
    "EY",
    "JH",
    "UW",
    "F",
    "W",
    "Z",
    "AH",
    "M",
    "SIL",
    "OW",
    "S",
    "IY",
    "EY",
    "JH",
    "AH",
    "F",
    "AO",
]  # real decoder output


def test_exact_term_inside_a_longer_window_scores_high() -> None:
    term = ["EY", "JH", "AH", "V", "W", "IH", "Z", "D", "AH", "M"]
    window = ["K", "AE", *term, "T", "UW"]
    assert rescore(window, term) == pytest.approx(1 - 1.5 / 11.5, abs=1e-5)
    assert rescore(term, term) == rescore(window, term)  # surrounding phones are free


def test_near_misses_beat_unrelated_terms() -> None:
    wisdom = pronunciations("age of wisdom")[0]
    assert rescore(WINDOW, wisdom) > rescore(WINDOW, pronunciations("contrastive learning")[0])
    assert rescore(WINDOW, wisdom) > rescore(WINDOW, pronunciations("machine translation")[0])


def test_similar_phones_cost_less_than_different_ones() -> None:
    term = ["P", "AE", "T"]
    assert rescore(["B", "AE", "T"], term) > rescore(["S", "AE", "T"], term)
    assert rescore(["P", "EH", "T"], term) > rescore(["P", "UW", "T"], term)


def test_scores_are_in_unit_range_and_empty_inputs_are_zero() -> None:
    assert rescore([], ["AH"]) == 0.0 and rescore(["AH"], []) == 0.0
    rng = np.random.default_rng(0)
    query = rng.integers(0, 39, 30)
    terms = [rng.integers(0, 39, n) for n in (1, 3, 8, 20)]
    scores = rescore_batch(query, terms)
    assert scores.shape == (4,) and np.all((scores >= 0) & (scores <= 1))


def test_batch_matches_single_scoring_and_variants_take_the_max() -> None:
    query = phone_ids(WINDOW)
    terms = [phone_ids(v) for v in pronunciations("spring of hope")]
    batch = rescore_batch(query, terms)
    singles = [rescore(WINDOW, v) for v in pronunciations("spring of hope")]
    assert batch.tolist() == pytest.approx(singles)
    best = rescore_terms(query, [terms, [terms[0]]])
    assert best.tolist() == pytest.approx([max(singles), singles[0]])


def test_term_vectors_are_unit_norm_with_one_row_per_variant() -> None:
    enc = PhoneticTermEncoder()
    vectors = enc.encode_terms(["BLEU", "age of wisdom"])
    assert vectors.vectors.shape == (len(pronunciations("BLEU")) + 1, enc.dim)
    assert vectors.owners.tolist()[-1] == 1
    assert np.allclose(np.linalg.norm(vectors.vectors, axis=1), 1.0, atol=1e-5)
    assert enc.encoder_id == "phonetic-ngram-v1-d512"


def test_window_vector_is_closer_to_the_term_it_contains() -> None:
    enc = PhoneticTermEncoder()
    window = enc.encode_phone_sequences([WINDOW])[0]
    terms = enc.encode_terms(["age of wisdom", "speech recognition", "neural network"]).vectors
    scores = terms @ window
    assert int(np.argmax(scores)) == 0
