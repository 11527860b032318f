"""`slm-data` with the embedded retriever replayed over real (synthesised) speech."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from evaluation.synth import FliteEngine, _read_wav, trim_silence
from tests.training.support import write_wav
from training.builder import BuildParams, build_dataset
from training.corpus import CorpusRecord, CorpusSegment, CorpusTerm, write_corpus
from training.patterns import PatternMix
from training.retrieval import OfflineRetrievalParams

pytestmark = pytest.mark.skipif(shutil.which("flite") is None, reason="needs flite")

REPO = Path(__file__).resolve().parents[2]
# Cache of the offline retrieval (index files), kept between runs like the tiny vLLM model.
LM_CACHE = Path(os.environ.get("RASST_TEST_CACHE", REPO / ".cache")) / "training-retrieval"
TEXT = "we evaluate the translation with the bleu score on a new corpus"
GLOSSARY = "en\tde\nBLEU\tBLEU\ncorpus\tKorpus\ntransformer\tTransformer\ndecoder\tDecoder\n"


def test_term_maps_hold_what_the_retriever_returned_for_the_audio(tmp_path: Path) -> None:
    FliteEngine("slt").synthesise(TEXT, tmp_path / "speech.wav")
    speech = trim_silence(_read_wav(tmp_path / "speech.wav"))
    silence = np.zeros(16_000, dtype=np.int16)
    pcm = np.concatenate([silence, speech, silence, silence, silence, silence])
    write_wav(tmp_path / "talk.wav", pcm)
    end = 1.0 + len(speech) / 16_000
    record = CorpusRecord(
        id="talk",
        audio=Path("talk.wav"),
        target_lang="de",
        segments=(
            CorpusSegment(
                start=1.0,
                end=end,
                source=TEXT,
                translation="Wir bewerten die Übersetzung mit dem BLEU-Wert auf einem neuen Korpus.",
                terms=(
                    CorpusTerm(source="BLEU", target="BLEU"),
                    CorpusTerm(source="corpus", target="Korpus"),
                ),
            ),
        ),
    )
    write_corpus(tmp_path / "corpus.jsonl", [record])
    (tmp_path / "glossary.tsv").write_text(GLOSSARY, encoding="utf-8")
    result = build_dataset(
        BuildParams(
            corpus=tmp_path / "corpus.jsonl",
            glossary=tmp_path / "glossary.tsv",
            lang="de",
            out=tmp_path / "out",
            lms=(2,),
            mix=PatternMix(1.0, 0.0, 0.0),
            retriever=OfflineRetrievalParams(cache_dir=LM_CACHE),
        )
    )
    stats = result.stats
    assert stats["hard_negatives"]["source"] == "retriever"
    assert stats["retrieval"]["chunks_with_speech"] >= 2
    # The last two chunks are silence (VAD): serving never sends them, nor does the data.
    assert stats["chunks"]["silent_dropped"] == 2
    # Whisper hears the glossary's terms in flite's speech.
    assert stats["gold_terms"]["retriever_recall"] > 0, stats
    turns = [t for line in result.meta.read_text().splitlines() for t in json.loads(line)["turns"]]
    retrieved = [e for t in turns for e in t["term_map"] if e["origin"] == "retriever"]
    assert retrieved and all(isinstance(e["score"], float) for e in retrieved)
    assert {e["source"] for e in retrieved if e["kind"] == "gold"} & {"BLEU", "corpus"}
