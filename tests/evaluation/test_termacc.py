from __future__ import annotations

import pytest

from evaluation.dataset import GoldTerm
from evaluation.metrics.termacc import (
    TermAccItem,
    form_aware_occurs,
    strip_tags,
    term_accuracy,
)

SOURCE = "We release an annotated corpus and a new corpus for the NLP task."
REF = "Wir veröffentlichen einen annotierten Korpus und einen neuen Korpus für die NLP-Aufgabe."
CORPUS = GoldTerm("corpus", "Korpus")
TASK = GoldTerm("NLP task", "NLP-Aufgabe")


def acc(hypothesis: str, terms: list[GoldTerm], **kwargs: object) -> tuple[int, int, int]:
    scores = term_accuracy([TermAccItem(SOURCE, REF, hypothesis, terms)], **kwargs)  # type: ignore[arg-type]
    return scores.hits, scores.total, scores.hits_form_aware


def test_exact_translation_is_a_hit() -> None:
    assert acc("ein Korpus für die NLP-Aufgabe", [CORPUS, TASK]) == (2, 2, 2)


def test_repeated_term_in_a_sentence_counts_once() -> None:
    # "corpus" occurs twice in the source and "Korpus" twice in the reference: one check.
    assert acc("Korpus", [CORPUS]) == (1, 1, 1)
    # The same pair listed twice in the gold annotation is still one check.
    assert acc("nichts", [CORPUS, CORPUS]) == (0, 1, 0)


def test_term_tags_are_removed_before_matching() -> None:
    assert strip_tags("ein <t>Korpus</t> und <term>NLP-Aufgabe</term>") == (
        "ein Korpus und NLP-Aufgabe"
    )
    assert acc("ein <t>Kor</t>pus", [CORPUS]) == (1, 1, 1)


def test_target_match_is_case_sensitive_but_form_aware_is_not() -> None:
    assert acc("ein korpus", [CORPUS]) == (0, 1, 1)


def test_english_match_is_case_insensitive_and_whole_word() -> None:
    assert acc("Korpus", [GoldTerm("CORPUS", "Korpus")]) == (1, 1, 1)
    # "task" is not a word of "multitask": the term does not apply to this sentence.
    item = TermAccItem(
        "a multitask model", "ein Aufgabe-Modell", "Aufgabe", [GoldTerm("task", "Aufgabe")]
    )
    assert term_accuracy([item]).total == 0


def test_terms_whose_translation_is_not_in_the_reference_are_skipped() -> None:
    assert acc("Korpus", [GoldTerm("corpus", "Korpora")]) == (0, 0, 0)


def test_glossary_filter() -> None:
    assert acc("Korpus", [CORPUS, TASK], glossary_terms=["Corpus"]) == (1, 1, 1)
    assert term_accuracy([], glossary_terms=[]).term_acc is None


@pytest.mark.parametrize(
    ("target", "hypothesis", "expected"),
    [
        ("annotierter Korpus", "den annotierten Korpus", True),
        ("Datensatz", "neue Datensätze", True),
        ("Modelle", "mit dem Modell", True),
        ("NLP-Aufgabe", "eine NLP Aufgaben", True),
        ("Korpus", "Korpora", False),
        ("Aufgabe", "Klassifikationsaufgabe", False),
    ],
)
def test_form_aware_variant(target: str, hypothesis: str, expected: bool) -> None:
    assert form_aware_occurs(target, hypothesis) is expected


def test_cjk_substring_match() -> None:
    item = TermAccItem("the corpus", "这个语料库很大", "语料库", [GoldTerm("corpus", "语料库")])
    assert term_accuracy([item]).term_acc == 1.0
