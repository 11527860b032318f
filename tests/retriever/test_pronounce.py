"""Pronunciations: dictionary words, out-of-vocabulary words, acronyms, plurals."""

from __future__ import annotations

from pathlib import Path

import pytest

from retriever.pronounce import (
    LETTER_NAMES,
    cmu_dictionary,
    letter_to_sound,
    number_words,
    pronunciations,
    tokens,
)


def test_dictionary_words_come_from_the_wheel_dictionary() -> None:
    assert ("W", "IH", "Z", "D", "AH", "M") in cmu_dictionary()["wisdom"]
    assert pronunciations("wisdom")[0] == ("W", "IH", "Z", "D", "AH", "M")


def test_multi_word_terms_concatenate() -> None:
    assert pronunciations("age of wisdom")[0] == (
        "EY",
        "JH",
        "AH",
        "V",
        "W",
        "IH",
        "Z",
        "D",
        "AH",
        "M",
    )


@pytest.mark.parametrize(
    ("term", "spelled"),
    [("BLEU", "B IY EH L IY Y UW"), ("BERT", "B IY IY AA R T IY"), ("NLP", "EH N EH L P IY")],
)
def test_acronyms_get_a_spelled_letters_variant(term: str, spelled: str) -> None:
    assert tuple(spelled.split()) in pronunciations(term)


def test_read_as_word_acronyms_keep_the_word_reading_first() -> None:
    assert pronunciations("BLEU")[0] == ("B", "L", "UW")
    assert pronunciations("BERT")[0] == ("B", "ER", "T")
    assert len(pronunciations("NLP")) == 1  # no vowel: letters only


def test_out_of_vocabulary_words_get_letter_to_sound() -> None:
    word = "glorptastic"
    assert word not in cmu_dictionary()
    phones = pronunciations(word)[0]
    assert phones[:3] == ("G", "L", "AO") or phones[0] == "G"
    assert 7 <= len(phones) <= 12


def test_letter_to_sound_is_close_on_known_words() -> None:
    model = letter_to_sound()
    assert model.predict("station")[-3:] == ("SH", "AH", "N")
    assert model.predict("making")[-2:] == ("IH", "NG")


def test_compounds_split_into_dictionary_words() -> None:
    assert "backtranslation" not in cmu_dictionary()
    assert pronunciations("backtranslation")[0] == (
        "B",
        "AE",
        "K",
        "T",
        "R",
        "AE",
        "N",
        "Z",
        "L",
        "EY",
        "SH",
        "AH",
        "N",
    )


def test_plurals_get_a_singular_variant_and_hyphens_split() -> None:
    variants = pronunciations("language models")
    assert ("L", "AE", "NG", "G", "W", "AH", "JH", "M", "AA", "D", "AH", "L") in variants
    assert pronunciations("pre-trained")[0][:3] == ("P", "R", "IY")
    assert "corp" not in " ".join(" ".join(v) for v in pronunciations("corpus"))


def test_tokens_and_numbers() -> None:
    assert tokens("wav2vec 2.0") == ["wav", "2", "vec", "2", "0"]
    assert tokens("XLM-R") == ["XLM", "R"]
    assert number_words(2023) == ["twenty", "twenty", "three"]
    assert number_words(300) == ["three", "hundred"]
    assert pronunciations("GPT-3")[0][-3:] == ("TH", "R", "IY")
    assert pronunciations("") == () and pronunciations("—") == ()


def test_letter_names_cover_the_alphabet() -> None:
    assert sorted(LETTER_NAMES) == [chr(c) for c in range(ord("a"), ord("z") + 1)]


def test_letter_to_sound_cache_round_trips_and_rejects_damage(tmp_path: Path) -> None:
    from retriever import pronounce

    model = pronounce.LetterToSound(
        {(0, 0, "a"): ("AE",), (0, 0, "b"): ("B",), (1, 1, "bab"): ("EY",)}
    )
    path = tmp_path / "l2s.json"
    model.save(path)
    loaded = pronounce.LetterToSound.load(path)
    assert loaded is not None
    assert loaded.predict("bab") == model.predict("bab") == ("B", "EY", "B")
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, nothing left behind
    for damage in ("{not json", '{"version": 999, "table": []}', '{"version": 1}', ""):
        path.write_text(damage)
        assert pronounce.LetterToSound.load(path) is None
    assert pronounce.LetterToSound.load(tmp_path / "missing.json") is None


def test_letter_to_sound_loads_from_the_disk_cache_instead_of_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from retriever import pronounce

    monkeypatch.setenv("RASST_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(pronounce, "_l2s", None)
    cached = pronounce.LetterToSound({(0, 0, "q"): ("K", "W")})
    cached.save(pronounce.letter_to_sound_cache_path())
    assert pronounce.letter_to_sound_cached()

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("trained although a cache exists")

    monkeypatch.setattr(pronounce.LetterToSound, "train", no_training)
    assert pronounce.letter_to_sound().predict("qq") == ("K", "W", "K", "W")
