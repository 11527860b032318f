"""TTS data builder: flite utterances with the term's exact times, in the trainer's JSONL."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from retriever.neural.data import read_jsonl, read_wav
from retriever.neural.data_builder import BuildParams, build_dataset, find_term, load_terms

pytestmark = pytest.mark.skipif(shutil.which("flite") is None, reason="flite is not installed")


def test_find_term_matches_whole_words_case_insensitively() -> None:
    assert find_term("We use BLEU Score here.", "bleu score") == (7, 17)
    assert find_term("tablets", "table") is None


def test_builds_term_bearing_utterances_with_word_times(tmp_path: Path) -> None:
    glossary = tmp_path / "terms.txt"
    glossary.write_text("contrastive learning\n# a comment\nBLEU score\n")
    corpus = ["Our results improve the BLEU score by two points."]
    out = build_dataset(
        load_terms(glossary), BuildParams(out=tmp_path / "data", per_term=2), corpus
    )
    records = read_jsonl(out)
    assert len(records) == 4
    for record in records:
        audio = read_wav(record.audio)
        (term,) = record.terms
        assert term.start is not None and term.end is not None
        assert 0.0 < term.start < term.end <= len(audio) / 16000
        inside = audio[int(term.start * 16000) : int(term.end * 16000)]
        assert np.abs(inside).max() > 0.05  # speech, not a pause
        assert term.end - term.start > 0.25
