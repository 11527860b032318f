from __future__ import annotations

from pathlib import Path

from evaluation.glossaries import (
    cmudict_words,
    make_distractors,
    normalise_term,
    write_distractor_files,
)


def test_distractors_are_deterministic_distinct_and_exclude_gold() -> None:
    words = cmudict_words()
    assert len(words) > 100_000 and "corpus" in words
    first = make_distractors(1000, ["Corpus", "machine translation"], seed=3)
    assert first == make_distractors(1000, ["Corpus", "machine translation"], seed=3)
    assert first != make_distractors(1000, ["Corpus"], seed=4)
    assert len(first) == len(set(first)) == 1000
    assert "corpus" not in first
    assert sum(1 for t in first if " " in t) == 500  # half word pairs
    assert make_distractors(0, []) == []


def test_normalise_term() -> None:
    assert normalise_term("  BLEU   Score ") == "bleu score"


def test_distractor_files_use_the_long_layout(tmp_path: Path) -> None:
    paths = write_distractor_files(tmp_path, ["alpha", "beta gamma", "delta"], ["de"], per_file=2)
    assert len(paths) == 2
    lines = paths[0].read_text(encoding="utf-8").splitlines()
    assert lines[0] == "lang\ten\ttgt"
    assert lines[1].startswith("de\talpha\t")
    assert len(paths[1].read_text().splitlines()) == 2
