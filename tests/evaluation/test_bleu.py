from __future__ import annotations

import pytest
import sacrebleu

from evaluation.metrics.bleu import bleu_tokenizer, corpus_quality, is_char_level

DE_REFS = ["Das ist ein kleiner Test.", "Wir messen die Qualität der Übersetzung."]
DE_HYPS = ["Das ist ein Test.", "Wir messen die Qualität einer Übersetzung."]


def test_hypothesis_equal_to_reference_gives_100() -> None:
    scores = corpus_quality(DE_REFS, DE_REFS, "de")
    assert scores.bleu == pytest.approx(100.0)
    assert scores.chrf == pytest.approx(100.0)


def test_equals_sacrebleu_itself() -> None:
    scores = corpus_quality(DE_HYPS, DE_REFS, "de")
    assert scores.bleu == pytest.approx(sacrebleu.corpus_bleu(DE_HYPS, [DE_REFS]).score)
    assert scores.chrf == pytest.approx(sacrebleu.corpus_chrf(DE_HYPS, [DE_REFS]).score)
    assert 0 < scores.bleu < 100
    assert "tok:13a" in scores.signature


def test_cjk_tokenizers() -> None:
    assert bleu_tokenizer("zh") == "zh" and bleu_tokenizer("ja") == "ja-mecab"
    assert bleu_tokenizer("de") == "13a"
    assert is_char_level("ja") and not is_char_level("de")
    refs, hyps = ["我们发布了一个语料库。"], ["我们发布语料库。"]
    zh = corpus_quality(hyps, refs, "zh")
    assert zh.bleu == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs], tokenize="zh").score)
    assert zh.bleu > 0  # 13a on raw Chinese would give 0
    ja_refs, ja_hyps = ["私たちはコーパスを公開します。"], ["私たちはコーパスを公開する。"]
    ja = corpus_quality(ja_hyps, ja_refs, "ja")
    assert ja.bleu == pytest.approx(
        sacrebleu.corpus_bleu(ja_hyps, [ja_refs], tokenize="ja-mecab").score
    )


def test_length_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError):
        corpus_quality(["a"], ["a", "b"], "de")
