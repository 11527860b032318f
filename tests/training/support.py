"""Small corpora with synthetic audio for the training tests."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from training.corpus import (
    CorpusChunk,
    CorpusRecord,
    CorpusSegment,
    CorpusTerm,
    CorpusWord,
    write_corpus,
)

RATE = 16_000
GLOSSARY_TSV = (
    "en\tde\n"
    "BLEU\tBLEU\n"
    "language model\tSprachmodell\n"
    "corpus\tKorpus\n"
    "transformer\tTransformer\n"
    "attention\tAufmerksamkeit\n"
    "decoder\tDecoder\n"
    "encoder\tEncoder\n"
    "dataset\tDatensatz\n"
)


def write_wav(path: Path, pcm: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(np.asarray(pcm, dtype="<i2").tobytes())
    return path


def noise_audio(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(-2000, 2000, int(seconds * RATE), dtype=np.int16)


def timed_words(text: str, start: float, end: float) -> tuple[CorpusWord, ...]:
    tokens = text.split()
    step = (end - start) / len(tokens)
    return tuple(
        CorpusWord(start=round(start + i * step, 3), end=round(start + (i + 1) * step, 3), word=t)
        for i, t in enumerate(tokens)
    )


def segment_record(audio: Path, record_id: str = "talk-1") -> CorpusRecord:
    """Two sentences over 9 s of audio (silence before, between and after)."""
    first = "we score the language model with BLEU on the new corpus"
    second = "the transformer uses attention in the decoder"
    return CorpusRecord(
        id=record_id,
        audio=audio,
        target_lang="de",
        segments=(
            CorpusSegment(
                start=1.0,
                end=4.6,
                source=first,
                translation="Wir bewerten das Sprachmodell mit BLEU auf dem neuen Korpus.",
                words=timed_words(first, 1.0, 4.6),
                terms=(
                    CorpusTerm(source="language model", target="Sprachmodell"),
                    CorpusTerm(source="BLEU", target="BLEU", start=3.0, end=3.3),
                    CorpusTerm(source="corpus", target="Korpus"),
                ),
            ),
            CorpusSegment(
                start=5.2,
                end=8.0,
                source=second,
                translation="Der Transformer nutzt Aufmerksamkeit im Decoder.",
                words=timed_words(second, 5.2, 8.0),
                terms=(
                    CorpusTerm(source="transformer", target="Transformer"),
                    CorpusTerm(source="attention", target="Aufmerksamkeit"),
                    CorpusTerm(source="decoder", target="Decoder"),
                ),
            ),
        ),
    )


def chunk_record(audio: Path) -> CorpusRecord:
    """Explicit chunks with a gap between them."""
    return CorpusRecord(
        id="chunks-1",
        audio=audio,
        target_lang="de",
        chunks=(
            CorpusChunk(start=0.5, end=2.0, translation="Wir bewerten", source="we score"),
            CorpusChunk(
                start=2.0,
                end=3.5,
                translation="mit BLEU.",
                source="with BLEU",
                terms=(CorpusTerm(source="BLEU", target="BLEU"),),
            ),
            CorpusChunk(start=4.0, end=5.0, translation="Danke.", source="thanks"),
        ),
    )


def write_synthetic_corpus(folder: Path, copies: int = 1) -> tuple[Path, Path]:
    """A corpus JSONL (relative audio paths) and a glossary TSV in ``folder``."""
    records = []
    for i in range(copies):
        audio = write_wav(folder / f"talk-{i}.wav", noise_audio(9.0, seed=i))
        records.append(segment_record(Path(audio.name), record_id=f"talk-{i}"))
    corpus = folder / "corpus.jsonl"
    write_corpus(corpus, records)
    glossary = folder / "glossary.tsv"
    glossary.write_text(GLOSSARY_TSV, encoding="utf-8")
    return corpus, glossary
