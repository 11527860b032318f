"""Pure parts of the speech front end: LocalAgreement, hotwords, slices, guards."""

from __future__ import annotations

import numpy as np
import pytest

from glossary.model import GlossaryEntry, GlossarySnapshot
from server.asr.agreement import LocalAgreement, agreed_prefix
from server.asr.hotwords import hotwords_for
from server.asr.recognizer import DecodeParams, compression_ratio, context_frames
from server.asr.wer import wer
from server.audio import SLICE_SAMPLES, Slicer, chunk_samples


def test_agreed_prefix_ignores_case_and_punctuation() -> None:
    assert agreed_prefix(["It", "was", "the"], ["it", "was,", "a"]) == 2
    assert agreed_prefix([], ["a"]) == 0


def test_local_agreement_marks_words_two_hypotheses_share() -> None:
    policy = LocalAgreement()
    assert policy.update(["it", "was", "the", "best"]) == 0
    assert policy.update(["it", "was", "the", "best", "of"]) == 4
    # A revision of the tail keeps what was stable; a shorter hypothesis caps it.
    assert policy.update(["it", "was", "the", "best", "off", "times"]) == 4
    assert policy.update(["it", "was"]) == 2
    policy.reset()
    assert policy.stable == 0


def _snapshot(*entries: GlossaryEntry) -> GlossarySnapshot:
    return GlossarySnapshot("gl_1", 1, "t", "test", "en", tuple(entries))


def _entry(source: str, priority: int = 0) -> GlossaryEntry:
    return GlossaryEntry(source, {"de": ("x",)}, priority=priority)


def test_hotwords_are_bounded_and_best_first() -> None:
    snapshot = _snapshot(
        _entry("machine translation"),
        _entry("RoBERTa"),
        _entry("attention"),
        _entry("BLEU score"),
        _entry("keynote speaker", priority=5),
        _entry("roberta"),  # the same term twice: once
    )
    words = hotwords_for([snapshot])
    assert words.split(", ") == [
        "keynote speaker",
        "BLEU score",
        "RoBERTa",
        "machine translation",
        "attention",
    ]
    many = _snapshot(*(_entry(f"term number {i}") for i in range(500)))
    assert len(hotwords_for([many])) <= 240
    assert hotwords_for([]) == ""


def test_the_slicer_cuts_chunks_on_slice_bounds() -> None:
    size = chunk_samples(2)
    slicer = Slicer(size)
    pcm = np.arange(size * 2 + 1000, dtype=np.int64).astype(np.int16)
    slices = slicer.push(pcm[:5000], 0.0) + slicer.push(pcm[5000:], 1.0) + slicer.flush(2.0)
    assert [len(s.pcm) for s in slices] == [SLICE_SAMPLES] * 8 + [1000]
    assert [s.start_sample for s in slices] == [i * SLICE_SAMPLES for i in range(9)]
    chunks = [s.chunk for s in slices if s.chunk is not None]
    assert [c.index for c in chunks] == [0, 1, 2]
    assert [len(c.pcm) for c in chunks] == [size, size, 1000]
    assert chunks[-1].final and slices[-1].final
    assert [s.chunk_index for s in slices] == [0] * 4 + [1] * 4 + [2]
    np.testing.assert_array_equal(np.concatenate([c.pcm for c in chunks]), pcm)
    with pytest.raises(ValueError):
        Slicer(1000)


def test_a_stream_ending_on_a_chunk_bound_still_gets_a_final_slice() -> None:
    slicer = Slicer(chunk_samples(1))
    slices = slicer.push(np.zeros(chunk_samples(1), np.int16), 0.0) + slicer.flush(0.0)
    assert slices[-1].final and len(slices[-1].pcm) == 0 and slices[-1].chunk is None


def test_encoder_window_grows_in_steps_and_stops_at_30_seconds() -> None:
    params = DecodeParams()
    assert context_frames(16000, params) == 700
    assert context_frames(16000 * 5, params) == 700
    assert context_frames(16000 * 6, params) == 1200
    assert context_frames(16000 * 40, params) == 3000


def test_repetition_loops_compress_well() -> None:
    assert compression_ratio("thank you " * 30) > 2.4
    assert compression_ratio("It was the best of times, it was the worst of times.") < 2.4


def test_word_error_rate() -> None:
    assert wer("It was the best of times.", "it was the best of times") == 0.0
    assert wer("a b c d", "a x c") == 0.5
    assert wer("", "") == 0.0
