"""The speech front end alone, on real speech (no server)."""

from __future__ import annotations

import numpy as np

from server.client import read_wav
from server.speech import FrontEndParams, build_front_end, clean_word
from tests.support.live_server import TWO_CITIES


def _run(pcm: np.ndarray, chunk: int = 30720, **params: object):
    front_end = build_front_end(FrontEndParams(**params))  # type: ignore[arg-type]
    results = []
    for i, start in enumerate(range(0, len(pcm), chunk)):
        results.append(
            front_end.process(i, start, pcm[start : start + chunk], start + chunk >= len(pcm))
        )
    return results


def test_captions_of_real_speech_contain_the_known_words() -> None:
    _, pcm = read_wav(TWO_CITIES)
    results = _run(pcm)
    finals = [c for r in results for c in r.captions if c.final]
    text = " ".join(c.text for c in finals)
    for word in (
        "best",
        "times",
        "worst",
        "wisdom",
        "season",
        "light",
        "spring",
        "hope",
        "despair",
    ):
        assert word in text.split(), word
    # Utterances are in order, do not overlap, and lie inside the audio.
    spans = [(c.start_sample, c.end_sample) for c in finals]
    assert spans == sorted(spans)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:], strict=False))
    assert spans[-1][1] <= len(pcm)
    # Word times fall inside their utterance.
    for caption in finals:
        for word in caption.words:
            assert (
                caption.start_sample
                <= word.start_sample
                < word.end_sample
                <= caption.end_sample + 160
            )


def test_partial_captions_grow_within_an_utterance() -> None:
    _, pcm = read_wav(TWO_CITIES)
    results = _run(pcm[: 16000 * 10], chunk=15360)
    partials = [c.text for r in results for c in r.captions if not c.final]
    assert len(partials) >= 3
    assert partials[-1].startswith("it was the best of times")


def test_silence_is_not_decoded() -> None:
    silence = np.zeros(16000 * 4, np.int16)
    results = _run(silence)
    assert all(r.speech_samples == 0 and not r.captions for r in results)


def test_speech_is_measured_by_the_vad() -> None:
    _, pcm = read_wav(TWO_CITIES)
    results = _run(pcm[: 16000 * 8])
    speech = sum(r.speech_samples for r in results)
    assert 16000 * 3 < speech < 16000 * 8


def test_without_captions_only_voice_activity_is_reported() -> None:
    _, pcm = read_wav(TWO_CITIES)
    results = _run(pcm[: 16000 * 6], captions=False)
    assert sum(r.speech_samples for r in results) > 0
    assert not any(r.captions for r in results)


def test_recogniser_markers_are_not_caption_words() -> None:
    assert clean_word("<sil>") is None
    assert clean_word("[NOISE]") is None
    assert clean_word("was(2)") == "was"
    assert clean_word("wisdom") == "wisdom"
