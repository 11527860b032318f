"""Weights on disk: our adapters and the released layout round-trip; problems name the culprit."""

from __future__ import annotations

from tests.retriever.neural.support import require_neural_stack

require_neural_stack()

import fractions  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from retriever.neural.checkpoint import save_adapters, save_released  # noqa: E402
from retriever.neural.config import NeuralRetrieverConfig  # noqa: E402
from retriever.neural.errors import CheckpointError  # noqa: E402
from retriever.neural.features import LogMelFrontend  # noqa: E402
from retriever.neural.models import RetrieverModels, build_models  # noqa: E402
from retriever.neural.speech import flatten_features  # noqa: E402
from retriever.neural.text import encode_terms  # noqa: E402
from tests.retriever.neural.support import tiny_build_kwargs, tiny_config, tone  # noqa: E402

TERMS = ["contrastive learning", "bleu score", "speech model"]


@pytest.fixture(scope="module")
def kwargs() -> dict[str, Any]:
    return tiny_build_kwargs(TERMS)


def build(config: NeuralRetrieverConfig, kwargs: dict[str, Any]) -> RetrieverModels:
    """Seeded, so that every build has the same random *base* weights (the "pretrained" part)."""
    torch.manual_seed(1234)
    return build_models(config, **kwargs)


def _perturbed(
    config: NeuralRetrieverConfig, kwargs: dict[str, Any], seed: int = 0
) -> RetrieverModels:
    """A model whose LoRA and heads differ from a fresh one (LoRA B starts at zero)."""
    models = build(config, kwargs)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in (models.speech, models.text):
            for name, p in module.named_parameters():
                if "lora_" in name or name.startswith(("projector.", "pooler.")):
                    p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return models


def _outputs(models: RetrieverModels) -> tuple[torch.Tensor, torch.Tensor]:
    mels = LogMelFrontend()([tone(300, 1.92), tone(900, 1.2, seed=1)])
    features, lens = flatten_features(mels)
    with torch.inference_mode():
        speech = models.speech(features, lens).vectors
    text = encode_terms(models.text, models.tokenizer, TERMS, 64)
    return speech, text


@pytest.mark.parametrize("pooling", ["maxsim", "attention"])
def test_our_adapters_round_trip(tmp_path: Path, kwargs: dict[str, Any], pooling: str) -> None:
    trained = _perturbed(tiny_config(pooling=pooling), kwargs)
    save_adapters(tmp_path / "run", trained, {"step": 7})
    config = NeuralRetrieverConfig.from_adapters(tmp_path / "run", device="cpu")
    assert config.pooling == pooling and config.adapters == tmp_path / "run"
    loaded = build(config, kwargs)
    for a, b in zip(_outputs(trained), _outputs(loaded), strict=True):
        torch.testing.assert_close(a, b)
    fresh = build(tiny_config(pooling=pooling), kwargs)
    assert not torch.allclose(_outputs(fresh)[0], _outputs(trained)[0])
    # The encoder id names the weights: a retrained adapter never reuses a cached index.
    assert config.encoder_id() != tiny_config(pooling=pooling).encoder_id()


def test_released_layout_round_trip(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    trained = _perturbed(tiny_config(lora_preset="release"), kwargs, seed=3)
    save_released(tmp_path / "hn.pt", trained, {"optimizer_state_dict": {}, "epoch": 2})
    loaded = build(tiny_config(lora_preset="release", checkpoint=str(tmp_path / "hn.pt")), kwargs)
    for a, b in zip(_outputs(trained), _outputs(loaded), strict=True):
        torch.testing.assert_close(a, b)


def test_hand_made_file_in_the_released_layout_loads(
    tmp_path: Path, kwargs: dict[str, Any]
) -> None:
    """Written the way the release's trainer writes it: DDP prefixes, LoRA only, trainer state."""
    source = _perturbed(tiny_config(lora_preset="release"), kwargs, seed=4)
    speech = {
        f"module.{k}": v
        for k, v in source.speech.state_dict().items()
        if "lora_" in k or k.startswith("projector.") or k == "logit_scale"
    }
    text = {f"module.{k}": v for k, v in source.text.state_dict().items() if "lora_" in k}
    assert any(
        k.startswith(
            "module.audio_encoder.base_model.model.layers.0.self_attn.q_proj.lora_A.default"
        )
        for k in speech
    )
    assert any(
        k.startswith(
            "module.encoder.base_model.model.encoder.layer.0.attention.self.query.lora_A.default"
        )
        for k in text
    )
    torch.save(
        {
            "model_state_dict": speech,
            "text_model_state_dict": text,
            "epoch": 3,
            "global_step": 1200,
        },
        tmp_path / "hn1024.pt",
    )
    loaded = build(
        tiny_config(lora_preset="release", checkpoint=str(tmp_path / "hn1024.pt")), kwargs
    )
    # The file holds no base weights (they come from the base model): compare what it holds.
    for k, v in speech.items():
        torch.testing.assert_close(loaded.speech.state_dict()[k.removeprefix("module.")], v)
    for k, v in text.items():
        torch.testing.assert_close(loaded.text.state_dict()[k.removeprefix("module.")], v)


def test_missing_lora_key_is_named(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    models = build(tiny_config(lora_preset="release"), kwargs)
    state = models.speech.state_dict()
    victim = next(k for k in state if "lora_B" in k)
    del state[victim]
    torch.save(
        {"model_state_dict": state, "text_model_state_dict": models.text.state_dict()},
        tmp_path / "x.pt",
    )
    with pytest.raises(CheckpointError, match=f"lacks '{victim}'"):
        build(tiny_config(lora_preset="release", checkpoint=str(tmp_path / "x.pt")), kwargs)


def test_missing_section_wrong_preset_and_missing_file(
    tmp_path: Path, kwargs: dict[str, Any]
) -> None:
    models = build(tiny_config(lora_preset="release"), kwargs)
    torch.save({"model_state_dict": models.speech.state_dict()}, tmp_path / "no_text.pt")
    with pytest.raises(CheckpointError, match="lacks 'text_model_state_dict'"):
        build(tiny_config(lora_preset="release", checkpoint=str(tmp_path / "no_text.pt")), kwargs)
    save_released(tmp_path / "release.pt", models)
    with pytest.raises(CheckpointError, match="has shape"):  # r = 128 file, r = 32 model
        build(tiny_config(lora_preset="paper", checkpoint=str(tmp_path / "release.pt")), kwargs)
    with pytest.raises(CheckpointError, match="pooler"):  # maxsim file, attention model
        build(
            tiny_config(
                lora_preset="release", pooling="attention", checkpoint=str(tmp_path / "release.pt")
            ),
            kwargs,
        )
    with pytest.raises(CheckpointError, match="does not exist"):
        build(tiny_config(checkpoint=str(tmp_path / "nope.pt")), kwargs)
    with pytest.raises(CheckpointError, match="other than tensors"):
        torch.save(
            {"model_state_dict": {}, "note": fractions.Fraction(1, 3)}, tmp_path / "pickled.pt"
        )
        build(tiny_config(checkpoint=str(tmp_path / "pickled.pt")), kwargs)


def test_incomplete_adapter_directory_names_the_missing_file(
    tmp_path: Path, kwargs: dict[str, Any]
) -> None:
    models = build(tiny_config(), kwargs)
    save_adapters(tmp_path / "run", models)
    (tmp_path / "run" / "text_lora" / "adapter_model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="lacks text_lora/adapter_model.safetensors"):
        build(tiny_config(adapters=tmp_path / "run"), kwargs)
    meta = json.loads((tmp_path / "run" / "retriever.json").read_text())
    assert meta["config"]["pooling"] == "maxsim" and meta["lora"]["name"] == "paper"
    with pytest.raises(CheckpointError, match="pooling='maxsim'"):
        save_adapters(tmp_path / "run2", models)
        build(tiny_config(adapters=tmp_path / "run2", pooling="attention"), kwargs)
