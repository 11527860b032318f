"""Pure helpers of the speech front end benchmarks (bench/asr_common.py)."""

from __future__ import annotations

import random

import pytest

from bench.asr_common import (
    CaptionTranscript,
    _edit_ops,
    appearance_latencies,
    edit_ops,
    first_appearances,
    normalise,
    word_errors,
)


def test_normalise_lowercases_strips_punctuation_keeps_numbers_and_apostrophes() -> None:
    assert normalise("It was the best of times, it was the WORST of times.") == (
        ["it", "was", "the", "best", "of", "times", "it", "was", "the", "worst", "of", "times"]
    )
    assert normalise("“Don’t” state-of-the-art 60/60 in 2022!") == [
        "don't", "state", "of", "the", "art", "60", "60", "in", "2022",
    ]  # fmt: skip
    assert normalise("'quoted' words_here ... ") == ["quoted", "words", "here"]
    assert normalise("") == []


def test_word_errors_counts_substitutions_deletions_insertions() -> None:
    counts = word_errors("the cat sat on the mat", "the cat sat on a mat today")
    assert (counts.substitutions, counts.deletions, counts.insertions) == (1, 0, 1)
    assert counts.ref_words == 6
    assert counts.wer == pytest.approx(2 / 6)
    assert word_errors("a b c", "").wer == 1.0
    assert word_errors("", "").wer == 0.0
    assert word_errors("Hello, world!", "hello world").wer == 0.0
    assert (word_errors("a b", "a b") + word_errors("c", "d")).wer == pytest.approx(1 / 3)


def test_python_edit_script_matches_rapidfuzz_cost() -> None:
    rng = random.Random(1)
    vocab = ["a", "b", "c", "d", "e"]
    for _ in range(200):
        ref = [rng.choice(vocab) for _ in range(rng.randint(0, 12))]
        hyp = [rng.choice(vocab) for _ in range(rng.randint(0, 12))]
        ours = sum(op != "equal" for op, _, _ in _edit_ops(ref, hyp))
        theirs = sum(op != "equal" for op, _, _ in edit_ops(ref, hyp))
        assert ours == theirs
        # The script rebuilds hyp from ref.
        rebuilt = [
            hyp[j] if op in ("equal", "sub", "ins") else None for op, _, j in _edit_ops(ref, hyp)
        ]
        assert [w for w in rebuilt if w is not None] == hyp


def test_first_appearance_is_the_first_snapshot_that_matches_each_word() -> None:
    ref = ["it", "was", "the", "best", "of", "times"]
    snapshots = [
        (1.0, "it was"),
        (1.5, "it was"),  # unchanged: no effect
        (2.0, "it was the vest"),  # "best" wrong at first
        (3.0, "It was the best of"),
        (4.0, "it was the best of times."),
        (5.0, "it was the best"),  # a later revision does not move shown words
    ]
    assert first_appearances(ref, snapshots) == [1.0, 1.0, 2.0, 3.0, 3.0, 4.0]
    assert first_appearances(ref, [(1.0, "was")]) == [None, 1.0, None, None, None, None]


def test_appearance_latencies_skip_words_never_shown() -> None:
    latencies, missed = appearance_latencies([0.5, 1.0, 2.0], [1.5, None, 2.25])
    assert latencies == pytest.approx([1.0, 0.25])
    assert missed == 1


def test_caption_transcript_replaces_partials_per_utterance() -> None:
    t = CaptionTranscript()
    assert t.update({"type": "caption", "utterance": 0, "text": "it was", "final": False})
    assert not t.update({"type": "caption", "utterance": 0, "text": "it was", "final": False})
    assert t.update({"type": "caption", "utterance": 0, "text": "it was the best", "final": True})
    assert t.update({"type": "caption", "utterance": 1, "text": "of times", "final": False})
    assert not t.update({"type": "chunk.done", "chunk": 3})
    assert t.text == "it was the best of times"
    assert t.final_text == "it was the best"
