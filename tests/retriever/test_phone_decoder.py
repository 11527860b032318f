"""Streaming allphone decoding, and retrieval of known phrases from real speech."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from glossary.model import GlossaryEntry, GlossarySnapshot
from retriever.chunk_retriever import ChunkRetriever
from retriever.embedded import PhoneticRescorer, PhoneticSpeechEncoder
from retriever.index import IndexManager, IndexParams
from retriever.phone_decoder import PhoneDecoder
from retriever.phonetic import PhoneticTermEncoder

SPEECH = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "speech"
WAV = SPEECH / "two_cities_16k.wav"

pytestmark = pytest.mark.skipif(not WAV.exists(), reason="shared speech data not present")


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16_000, 1, 2)
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return read_wav(WAV)


def test_streaming_decoding_matches_itself_whatever_the_feed_size(speech: np.ndarray) -> None:
    clip = speech[: 16_000 * 8]
    phones = []
    for step in (1_000, 16_000, len(clip)):
        decoder = PhoneDecoder()
        for s in range(0, len(clip), step):
            decoder.feed(clip[s : s + step])
        decoder.flush()
        assert decoder.samples_fed == len(clip)
        phones.append(decoder.phones(0, len(clip)))
    assert phones[0] == phones[1] == phones[2]
    assert len(phones[0]) > 40  # ~8 s of speech
    starts = [p.start_sample for p in phones[0]]
    assert starts == sorted(starts) and all(p.end_sample > p.start_sample for p in phones[0])


def test_open_utterance_phones_are_visible_before_the_pause(speech: np.ndarray) -> None:
    decoder = PhoneDecoder()
    decoder.feed(speech[: 16_000 * 3])  # mid-sentence
    assert decoder.stable_until() < 16_000 * 3
    assert len(decoder.phones(0, 16_000 * 3)) > 10
    decoder.prune(16_000 * 100)
    assert decoder.phones(0, 16_000 * 3)  # tentative phones are not pruned


def test_silence_produces_no_phones() -> None:
    decoder = PhoneDecoder()
    decoder.feed(np.zeros(16_000 * 2, dtype=np.int16))
    decoder.flush()
    assert decoder.phones(0, 16_000 * 2) == [] and decoder.speech_samples == 0


# Forced-alignment times (seconds) of the phrases in two_cities_16k.wav.
PHRASES = {
    "age of wisdom": (5.37, 6.19),
    "season of light": (13.80, 14.81),
    "spring of hope": (17.90, 18.74),
}
DISTRACTORS = [
    "winter of despair", "epoch of belief", "contrastive learning", "BLEU score",
    "machine translation", "neural network", "speech recognition", "language model",
    "attention mechanism", "named entity", "data augmentation", "knowledge distillation",
]  # fmt: skip


@pytest.mark.parametrize("lm", [1, 2])
def test_known_phrases_are_retrieved_in_the_right_chunks(speech: np.ndarray, lm: int) -> None:
    terms = [*PHRASES, *DISTRACTORS]
    snap = GlossarySnapshot(
        "g", 1, "t", "n", "en", tuple(GlossaryEntry(t, {"de": (t.upper(),)}) for t in terms)
    )
    manager = IndexManager(PhoneticTermEncoder(), IndexParams(use_gpu=False))
    manager.update(snap).result(timeout=60)
    stream = PhoneticSpeechEncoder().open_stream()
    retriever = ChunkRetriever(stream, manager, ["g"], ["de"], rescorer=PhoneticRescorer())
    size = 15_360 * lm
    found: dict[int, list[str]] = {}
    for i, start in enumerate(range(0, len(speech), size)):
        pcm = speech[start : start + size]
        hits = retriever.process(i, start, pcm, final=start + size >= len(speech))
        found[i] = [h.source for h in hits.hits[:3]]
    manager.close()
    for phrase, (_, end) in PHRASES.items():
        chunk = int(end * 16_000) // size
        # The window holding the whole phrase ends in its last chunk or the next one.
        assert phrase in found[chunk] + found[chunk + 1], (phrase, found[chunk], found[chunk + 1])
