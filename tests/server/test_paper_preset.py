"""RASST_PRESET=paper: the release's serving behaviour, one setting (docs/paper-preset.md)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from server.client import StreamOptions, stream_wav
from server.settings import PAPER_PRESET, Settings
from tests.support.fake_llm import MODEL, FakeLlm
from tests.support.live_server import start_server


def test_paper_preset_sets_the_release_values_and_explicit_settings_win(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    default = Settings()
    paper = Settings(preset="paper")
    for name, value in PAPER_PRESET.items():
        assert getattr(paper, name) == value, name
    # What the preset changes is not the default (a preset that changes nothing is a bug).
    changed = [n for n, v in PAPER_PRESET.items() if getattr(default, n) != v]
    assert set(changed) >= {
        "retriever_encoder",
        "llm_seed",
        "llm_history_policy",
        "llm_history_count_current",
        "llm_prompt_style",
        "llm_min_audio_seconds",
        "translate_silence",
    }
    assert (paper.llm_seed, paper.neural_tau, paper.retrieval_top_k) == (998_244_353, 0.78, 10)
    # Everything outside the table keeps the project's defaults.
    assert paper.retrieval_tau == default.retrieval_tau
    assert paper.llm_request_deadline_seconds == default.llm_request_deadline_seconds
    monkeypatch.setenv("RASST_PRESET", "paper")
    monkeypatch.setenv("RASST_LLM_HISTORY_POLICY", "block")
    env = Settings()
    assert env.preset == "paper" and env.llm_history_policy == "block"  # explicit wins
    assert env.translate_silence is True
    with pytest.raises(ValueError):
        Settings(preset="papers")


def _silence_wav(path: Path, seconds: float) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
        out.writeframes(np.zeros(round(seconds * 16_000), np.int16).tobytes())
    return path


async def test_paper_preset_sends_every_chunk_to_the_llm_even_silent_ones(
    tmp_path: Path,
) -> None:
    """3.4 s of silence at lm = 1: four chunks (the last 0.52 s), four LLM requests."""
    llm = FakeLlm(deltas=2, delta="x ").start()
    server = start_server(
        tmp_path,
        "--llm-url",
        llm.url,
        "--llm-model",
        MODEL,
        "--workers",
        "1",
        env={"RASST_PRESET": "paper"},
    )
    try:
        wav = _silence_wav(tmp_path / "silence.wav", 3.4)
        options = StreamOptions(target_languages=["de"], lm=1)
        events = [e async for e in stream_wav(server.ws_url, wav, options, speed=2.0)]
    finally:
        server.stop()
        llm.close()
    done = [e for e in events if e["type"] == "chunk.done"]
    commits = [e for e in events if e["type"] == "translation.commit"]
    assert len(done) == 4 and all(e["speech_seconds"] == 0 for e in done)
    assert llm.requests == len(done)  # the default skips silent chunks: 0 requests
    assert commits and all(c["text"] for c in commits)
