"""The speech front end alone, on real speech and the real Whisper weights (no server)."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from kernel.frames import ChunkAnalysis
from server.asr.front_end import FrontEndParams, SliceIn, SpeechFrontEnd, default_vad_factory
from server.asr.models import AsrModelParams, load_model
from server.asr.recognizer import WhisperRecognizer
from server.asr.wer import wer
from server.audio import Slicer, chunk_samples
from server.client import read_wav
from tests.support.live_server import TWO_CITIES

REFERENCE = TWO_CITIES.with_suffix(".txt").read_text()


@functools.cache
def _recognizer() -> WhisperRecognizer:
    return WhisperRecognizer(load_model(AsrModelParams()))


@functools.cache
def _two_cities() -> np.ndarray:
    return read_wav(TWO_CITIES)[1]


def _run(
    pcm: np.ndarray, per_call: int = 1, partial: bool = True, lm: int = 2, **params: object
) -> list[ChunkAnalysis]:
    """Feed ``pcm`` as a session does: 0.48 s slices, ``per_call`` slices per worker call."""
    front_end = SpeechFrontEnd(
        FrontEndParams(**params),  # type: ignore[arg-type]
        default_vad_factory(),
        _recognizer(),
    )
    slicer = Slicer(chunk_samples(lm))
    slices = [
        SliceIn(s.chunk_index, s.start_sample, s.pcm, s.final)
        for s in slicer.push(pcm, 0.0) + slicer.flush(0.0)
    ]
    results: list[ChunkAnalysis] = []
    for i in range(0, len(slices), per_call):
        results += front_end.process(slices[i : i + per_call], partial)
    return results


def _finals(results: list[ChunkAnalysis]) -> list[str]:
    return [c.text for r in results for c in r.captions if c.final]


def test_final_captions_of_real_speech_are_accurate_and_well_timed() -> None:
    pcm = _two_cities()
    results = _run(pcm, per_call=8, partial=False)
    finals = [c for r in results for c in r.captions if c.final]
    assert wer(REFERENCE, " ".join(c.text for c in finals)) <= 0.05
    # Utterances are in order, do not overlap, and lie inside the audio.
    spans = [(c.start_sample, c.end_sample) for c in finals]
    assert spans == sorted(spans)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:], strict=False))
    assert spans[-1][1] <= len(pcm)
    # Word times are ordered and fall inside their utterance.
    for caption in finals:
        starts = [w.start_sample for w in caption.words]
        assert starts == sorted(starts)
        for word in caption.words:
            assert caption.start_sample <= word.start_sample <= word.end_sample
            assert word.end_sample <= caption.end_sample + 1600
    # The words the retriever reads are the captions' words.
    assert [w.word for r in results for w in r.words] == [
        w.word for c in finals for w in c.words
    ]


def test_final_captions_do_not_depend_on_pace_or_batching() -> None:
    """One slice per call with revisable decodes (a live speaker), or eight per call
    without them (a session that fell behind): the same final captions."""
    pcm = _two_cities()[: 16000 * 24]
    live = _finals(_run(pcm, per_call=1, partial=True))
    behind = _finals(_run(pcm, per_call=8, partial=False))
    assert live == behind
    assert len(live) >= 4


def test_front_ends_sharing_a_model_do_not_share_state() -> None:
    pcm = _two_cities()[: 16000 * 14]
    first = _finals(_run(pcm, per_call=8, partial=False))
    _run(_two_cities()[16000 * 20 :], per_call=8, partial=False)  # another session
    assert _finals(_run(pcm, per_call=8, partial=False)) == first


def test_revisable_captions_grow_and_mark_stable_words() -> None:
    results = _run(_two_cities()[: 16000 * 9], lm=1)
    first_utterance = [c for r in results for c in r.captions if c.start_sample < 16000]
    partials = [c for c in first_utterance if not c.final]
    assert len(partials) >= 4
    assert partials[-1].text.lower().startswith("it was the best of times")
    # The final caption settles what the revisable ones said.
    final = next(c for c in first_utterance if c.final)
    assert wer(final.text, partials[-1].text) <= 0.2
    assert any(c.stable_words > 0 for c in partials)
    assert all(0 <= c.stable_words <= len(c.words) for c in partials)
    # Revisable words also reach the retriever while the utterance is open.
    assert any(r.partial_words for r in results)


@pytest.mark.parametrize(
    "noise",
    [
        np.zeros(16000 * 6, np.int16),
        (np.random.default_rng(1).normal(0, 3000, 16000 * 6)).astype(np.int16),
        (np.random.default_rng(2).normal(0, 300, 16000 * 6)).astype(np.int16),
        (8000 * np.sin(2 * np.pi * 440 * np.arange(16000 * 4) / 16000)).astype(np.int16),
    ],
    ids=["silence", "loud-white-noise", "quiet-white-noise", "tone"],
)
def test_silence_and_noise_give_no_caption(noise: np.ndarray) -> None:
    results = _run(noise, per_call=4)
    assert not [c for r in results for c in r.captions if c.text]
    assert not [w for r in results for w in r.words]


def test_speech_is_measured_by_the_vad() -> None:
    results = _run(_two_cities()[: 16000 * 8])
    speech = sum(r.speech_samples for r in results)
    assert 16000 * 3 < speech < 16000 * 8


def test_without_captions_only_voice_activity_is_reported() -> None:
    results = _run(_two_cities()[: 16000 * 6], captions=False)
    assert sum(r.speech_samples for r in results) > 0
    assert not any(r.captions for r in results)


def test_a_speaker_who_never_pauses_is_cut_without_losing_words() -> None:
    """Utterances longer than the limit are cut at a quiet frame, not mid-word."""
    results = _run(_two_cities(), per_call=8, partial=False, max_utterance_seconds=4.0)
    finals = [c for r in results for c in r.captions if c.final]
    assert all(c.end_sample - c.start_sample <= 16000 * 4.6 for c in finals)
    assert wer(REFERENCE, " ".join(c.text for c in finals)) <= 0.12
