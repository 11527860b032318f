"""<t>…</t> wraps exact target occurrences only: whole words where words are spaced."""

from __future__ import annotations

import pytest

from server.translator.tags import strip_tags
from training.tagging import occurrences, wrap_first, wrap_terms


@pytest.mark.parametrize(
    ("text", "target", "expected"),
    [
        ("Wir trainieren das Modell.", "Modell", "Wir trainieren das <t>Modell</t>."),
        # Part of a longer word: never tagged; the later whole word is.
        ("Die Modelle und das Modell", "Modell", "Die Modelle und das <t>Modell</t>"),
        ("Sprachmodell", "modell", "Sprachmodell"),
        ("Textkorpus", "Korpus", "Textkorpus"),
        # Punctuation and hyphens are boundaries.
        ("(BLEU-Wert)", "BLEU", "(<t>BLEU</t>-Wert)"),
        ("ein annotierter Korpus.", "annotierter Korpus", "ein <t>annotierter Korpus</t>."),
        ("annotierter Korpus", "annotiert", "annotierter Korpus"),
        # A target ending in a symbol may touch a letter on that side.
        ("C++Code", "C++", "<t>C++</t>Code"),
    ],
)
def test_spaced_languages_tag_whole_words_only(text: str, target: str, expected: str) -> None:
    tagged, done = wrap_first(text, target, "de")
    assert tagged == expected
    assert done == (expected != text)
    assert strip_tags(tagged) == text


@pytest.mark.parametrize(
    ("text", "target", "expected"),
    [
        # No word boundaries: an exact occurrence inside a compound counts.
        ("我们训练语言模型。", "模型", "我们训练语言<t>模型</t>。"),
        ("BLEU分数提高了", "BLEU", "<t>BLEU</t>分数提高了"),
        ("コーパスを作った", "コーパス", "<t>コーパス</t>を作った"),
        ("没有这个词", "模型", "没有这个词"),
    ],
)
def test_cjk_tags_any_exact_occurrence(text: str, target: str, expected: str) -> None:
    lang = "ja" if "コ" in text else "zh"
    tagged, _ = wrap_first(text, target, lang)
    assert tagged == expected
    assert strip_tags(tagged) == text


def test_longer_terms_win_and_tags_never_nest() -> None:
    text, wrapped = wrap_terms("语言模型和模型", ["模型", "语言模型"], "zh")
    assert text == "<t>语言模型</t>和<t>模型</t>"
    assert wrapped == ["语言模型", "模型"]
    text, wrapped = wrap_terms("ein annotierter Korpus", ["Korpus", "annotierter Korpus"], "de")
    assert text == "ein <t>annotierter Korpus</t>"
    assert wrapped == ["annotierter Korpus"]


def test_only_the_first_untagged_occurrence_is_wrapped() -> None:
    once, _ = wrap_first("Modell und Modell", "Modell", "de")
    twice, _ = wrap_first(once, "Modell", "de")
    assert once == "<t>Modell</t> und Modell"
    assert twice == "<t>Modell</t> und <t>Modell</t>"


def test_occurrences_do_not_overlap() -> None:
    assert occurrences("aaaa", "aa", "zh") == [(0, 2), (2, 4)]
    assert occurrences("", "x", "de") == []
    assert occurrences("x", "", "de") == []
