"""The text tier's terminology check and its one-shot repair request."""

from __future__ import annotations

from server.translator.terms_check import (
    contains_term,
    expected_terms,
    repair_messages,
    terms_missed,
)

TERMS = [("contrastive learning", "对比学习"), ("BLEU", "BLEU-Wert"), ("GPU", "GPU")]


def test_a_term_matches_whole_words_ignoring_case_and_punctuation() -> None:
    assert contains_term("We use Contrastive-Learning here.", "contrastive learning")
    assert contains_term("the BLEU, please", "bleu")
    assert not contains_term("BLEUs are high", "BLEU"), "word edges"
    assert not contains_term("anything", "")


def test_unspaced_scripts_match_as_substrings() -> None:
    assert contains_term("我们使用对比学习方法", "对比学习")
    assert contains_term("我们使用 对比 学习", "对比学习"), "spaces in the output do not hide it"
    assert not contains_term("我们使用学习方法", "对比学习")


def test_only_terms_said_in_the_segment_are_expected() -> None:
    source = "contrastive learning improves the BLEU score"
    assert expected_terms(source, TERMS) == TERMS[:2]


def test_missed_terms_are_the_expected_ones_without_their_rendering() -> None:
    source = "contrastive learning improves the BLEU score"
    assert terms_missed(source, "对比学习提高了BLEU分数", TERMS) == ("BLEU",)
    assert terms_missed(source, "对比学习提高了 BLEU-Wert", TERMS) == ()
    assert terms_missed("no terms here", "", TERMS) == ()


def test_the_repair_request_names_the_missing_renderings_after_the_draft() -> None:
    conversation = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    messages = repair_messages(conversation, "draft", ("BLEU",), TERMS)
    assert messages[:2] == conversation
    assert messages[2] == {"role": "assistant", "content": "draft"}
    assert messages[3]["role"] == "user"
    assert "BLEU=BLEU-Wert" in messages[3]["content"]
    assert "对比学习" not in messages[3]["content"], "only the missed terms"
