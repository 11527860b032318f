"""Choosing the retriever service's encoder from settings (no torch needed here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from retriever.encoder_factory import EncoderParams, build_encoders
from retriever.engine import EngineParams, RequestBatcher, RetrievalEngine
from retriever.phonetic import PhoneticTermEncoder
from retriever.word_evidence import WordEvidenceRetriever
from server.settings import Settings

from .test_service import SNAP, query

REPO = Path(__file__).resolve().parents[2]


def test_defaults_are_the_phonetic_encoder() -> None:
    params = EncoderParams.from_settings(Settings())
    assert params.kind == "phonetic"
    assert (params.pooling, params.max_batch, params.tau) == ("maxsim", 64, 0.78)
    assert params.batch_window_seconds == pytest.approx(0.005)


async def test_phonetic_setting_builds_the_phonetic_engine() -> None:
    encoders = build_encoders(EncoderParams.from_settings(Settings(retriever_encoder="phonetic")))
    assert encoders.kind == "phonetic" and encoders.speech is None and encoders.tau is None
    assert isinstance(encoders.terms, PhoneticTermEncoder) and encoders.stats() == {}
    engine = RetrievalEngine(EngineParams(), encoders)
    engine.add_glossary(SNAP)
    batcher = RequestBatcher(engine, window_seconds=0.01, max_batch=4)
    assert not encoders.concurrent  # one worker-thread hop per batch, as before
    batcher.start()
    try:
        hits, _ = await batcher.submit(query("p"), 30_720)
        session = engine._sessions["p"]  # noqa: SLF001
    finally:
        await batcher.aclose()
        engine.close()
    assert isinstance(session.retriever, WordEvidenceRetriever)
    assert hits.hits[0].source == "language model"  # type: ignore[union-attr]


def test_phonetic_choice_never_imports_the_neural_stack() -> None:
    code = (
        "import sys\n"
        "from retriever.encoder_factory import EncoderParams, build_encoders\n"
        "from retriever.service import create_service_app\n"
        "build_encoders(EncoderParams()).close()\n"
        "bad = [m for m in ('torch', 'transformers', 'retriever.neural.encoder') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=120)


def test_neural_settings_map_to_a_model_configuration(tmp_path: Path) -> None:
    settings = Settings(
        retriever_encoder="neural",
        neural_pooling="attention",
        neural_checkpoint=str(tmp_path / "hn1024.pt"),
        neural_device="cpu",
        neural_batch_window_ms=20,
        neural_max_batch=8,
        neural_tau=0.5,
    )
    params = EncoderParams.from_settings(settings)
    config = params.neural_config()
    assert (config.pooling, config.device, config.checkpoint) == (
        "attention",
        "cpu",
        str(tmp_path / "hn1024.pt"),
    )
    assert config.audio_model == "Atotti/Qwen3-Omni-AudioTransformer"
    assert config.text_model == "BAAI/bge-m3"
    assert (params.batch_window_seconds, params.max_batch, params.tau) == (0.02, 8, 0.5)
    # Neither a checkpoint nor adapters: the released checkpoint from the hub.
    released = EncoderParams(kind="neural").neural_config()
    assert released.checkpoint == "hf://gavinlaw/rasst-retriever-hn1024/hn1024.pt"
    assert released.device is None  # "auto"
    # The release's serving: dense+sparse terms 0.3/0.7, encode-once spans.
    assert released.sparse_weight == 0.7 and EncoderParams(kind="neural").windowing == "span"
    dense = EncoderParams.from_settings(
        Settings(retriever_encoder="neural", neural_sparse_weight=0.0, neural_windowing="windows")
    )
    assert dense.neural_config().sparse_weight == 0.0 and dense.windowing == "windows"
    with pytest.raises(ValueError, match="not both"):
        EncoderParams(kind="neural", checkpoint="x.pt", adapters=tmp_path)


def test_env_selects_the_encoder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RASST_RETRIEVER_ENCODER", "neural")
    monkeypatch.setenv("RASST_NEURAL_ADAPTERS", str(tmp_path))
    params = EncoderParams.from_settings(Settings())
    assert params.kind == "neural" and params.adapters == tmp_path
    # With adapters and no explicit models, the adapters' own base models are kept.
    assert params.audio_model is None and params.text_model is None
    monkeypatch.setenv("RASST_NEURAL_TEXT_MODEL", "/models/bge-m3")
    assert EncoderParams.from_settings(Settings()).text_model == "/models/bge-m3"
    monkeypatch.setenv("RASST_RETRIEVER_ENCODER", "onnx")
    with pytest.raises(ValueError):
        Settings()
