from __future__ import annotations

import pytest

from evaluation.dataset import TermOccurrence
from evaluation.metrics.retrieval import ChunkSpan, score_retrieval

# Four chunks of 2 s.
CHUNKS = [ChunkSpan(i, 2.0 * i, 2.0 * (i + 1)) for i in range(4)]
GLOSSARY = ["BLEU score", "corpus", "transformer", "dataset"]


def occ(term: str, start: float, end: float) -> TermOccurrence:
    return TermOccurrence("t", 1, term, "x", start, end, aligned=True)


def test_hand_computed_recall_and_precision() -> None:
    occurrences = [
        occ("BLEU score", 0.5, 1.2),  # home chunk 0
        occ("corpus", 2.5, 3.0),  # home chunk 1
        occ("transformer", 4.2, 4.9),  # home chunk 2, found only in chunk 3 (late)
        occ("dataset", 6.2, 6.8),  # home chunk 3, never found
    ]
    predictions = {
        0: ["BLEU score", "corpus"],  # corpus: wrong here (spoken in chunk 1) -> false positive
        1: ["Corpus"],  # case differs: still the same term
        3: ["transformer"],
    }
    s = score_retrieval(CHUNKS, predictions, occurrences, GLOSSARY, k=10, slack=0.0)
    assert s.gold_items == 4
    assert s.recall_at_k == pytest.approx(2 / 4)
    assert s.recall_at_k_late_ok == pytest.approx(3 / 4)
    # 4 predictions: BLEU(0) ok, corpus(0) wrong, corpus(1) ok, transformer(3) late-ok only.
    assert s.precision == pytest.approx(2 / 4)
    assert s.precision_late_ok == pytest.approx(3 / 4)
    assert s.missed == {"transformer": 1, "dataset": 1}
    assert s.false_positives == {"corpus": 1}
    assert s.chunks_with_predictions == 3


def test_only_top_k_counts() -> None:
    occurrences = [occ("dataset", 0.2, 0.8)]
    predictions = {0: ["corpus", "transformer", "dataset"]}
    assert score_retrieval(CHUNKS, predictions, occurrences, GLOSSARY, k=2).recall_at_k == 0.0
    assert score_retrieval(CHUNKS, predictions, occurrences, GLOSSARY, k=3).recall_at_k == 1.0


def test_slack_accepts_the_neighbouring_chunk_at_a_boundary() -> None:
    # Ends 0.1 s after the boundary at 2.0: with 0.3 s slack chunk 0 counts as well.
    occurrences = [occ("corpus", 1.5, 2.1)]
    predictions = {0: ["corpus"]}
    assert score_retrieval(CHUNKS, predictions, occurrences, GLOSSARY, slack=0.0).recall_at_k == 0.0
    assert score_retrieval(CHUNKS, predictions, occurrences, GLOSSARY, slack=0.3).recall_at_k == 1.0


def test_repeated_term_in_one_chunk_is_one_item_and_gold_outside_glossary_is_ignored() -> None:
    occurrences = [occ("corpus", 0.1, 0.4), occ("corpus", 1.0, 1.4), occ("parsing", 0.5, 0.9)]
    s = score_retrieval(CHUNKS, {0: ["corpus"]}, occurrences, GLOSSARY)
    assert (s.gold_items, s.gold_occurrences, s.gold_not_in_glossary) == (1, 2, 1)
    assert s.recall_at_k == 1.0 and s.precision == 1.0


def test_no_gold_and_no_predictions_give_none_not_nan() -> None:
    s = score_retrieval(CHUNKS, {}, [], GLOSSARY)
    assert s.recall_at_k is None and s.precision is None
    summary = s.summary()
    assert summary["recall_at_k"] is None and summary["recall_at_k_definition"] == "strict"


def test_scores_of_streams_add_up() -> None:
    a = score_retrieval(CHUNKS, {0: ["corpus"]}, [occ("corpus", 0.1, 0.5)], GLOSSARY)
    b = score_retrieval(CHUNKS, {0: ["dataset"]}, [occ("corpus", 0.1, 0.5)], GLOSSARY)
    total = a + b
    assert total.gold_items == 2 and total.recall_at_k == 0.5 and total.precision == 0.5
    assert total.missed == {"corpus": 1} and total.false_positives == {"dataset": 1}
