"""Building the two towers: base weights by model id (or a config, for tests), LoRA, weights.

``build_models`` is the one place that decides device and dtype (bf16 on a
GPU, fp32 on CPU), applies the LoRA preset, and loads either a checkpoint in
the released layout or adapters written by our trainer.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from retriever.neural.config import NeuralRetrieverConfig
from retriever.neural.errors import ModelLoadError
from retriever.neural.lora import LoraPreset, LoraSpec, preset
from retriever.neural.speech import SpeechTower
from retriever.neural.text import TextTower

log = logging.getLogger(__name__)


@dataclass(slots=True)
class RetrieverModels:
    config: NeuralRetrieverConfig
    lora: LoraPreset
    speech: SpeechTower
    text: TextTower
    tokenizer: Any
    device: torch.device
    dtype: torch.dtype

    def eval(self) -> RetrieverModels:
        self.speech.eval()
        self.text.eval()
        return self

    def train(self) -> RetrieverModels:
        self.speech.train()
        self.text.train()
        return self


def resolve_device(device: str | None) -> tuple[torch.device, torch.dtype]:
    """CUDA when available unless told otherwise; bf16 on GPU, fp32 on CPU."""
    dev = (
        torch.device(device)
        if device
        else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    )
    return dev, (torch.bfloat16 if dev.type == "cuda" else torch.float32)


def apply_lora(model: nn.Module, spec: LoraSpec) -> nn.Module:
    from peft import get_peft_model

    with warnings.catch_warnings():
        # peft 0.21 calls a transformers 5 method that is deprecated in favour of
        # another name; harmless, and the test suite turns warnings into errors.
        warnings.filterwarnings(
            "ignore", message=r".*is_gradient_checkpointing.*", category=FutureWarning
        )
        peft_model: nn.Module = get_peft_model(model, spec.peft_config())  # type: ignore[call-overload]
        return peft_model


def load_audio_base(model_id: str, dtype: torch.dtype) -> Any:
    from transformers.models.qwen3_omni_moe.modeling_qwen3_omni_moe import (
        Qwen3OmniMoeAudioEncoder,
    )

    try:
        model: Any = Qwen3OmniMoeAudioEncoder.from_pretrained(model_id, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"cannot load the audio encoder {model_id!r}: {exc}. Download it first "
            f"(`hf download {model_id}`, then run with HF_HUB_OFFLINE=1) or give a local path."
        ) from exc
    return model


def load_text_base(model_id: str, dtype: torch.dtype) -> tuple[nn.Module, Any]:
    from transformers import AutoTokenizer, XLMRobertaModel

    try:
        model: nn.Module = XLMRobertaModel.from_pretrained(
            model_id, dtype=dtype, add_pooling_layer=False
        )
        tokenizer = AutoTokenizer.from_pretrained(model_id)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"cannot load the text encoder {model_id!r}: {exc}. Download it first "
            f"(`hf download {model_id}`, then run with HF_HUB_OFFLINE=1) or give a local path."
        ) from exc
    return model, tokenizer


SPARSE_HEAD_FILE = "sparse_linear.pt"  # BGE-M3's lexical head, next to its weights


def load_sparse_head(model_id: str, text: TextTower) -> None:
    """BGE-M3's ``sparse_linear.pt`` (Linear(d, 1)) from a local model directory or the hub."""
    from pathlib import Path

    local = Path(model_id) / SPARSE_HEAD_FILE
    try:
        if local.is_file():
            path = local
        else:
            from huggingface_hub import hf_hub_download

            path = Path(hf_hub_download(model_id, SPARSE_HEAD_FILE))
        state = torch.load(path, map_location="cpu", weights_only=True)
        text.sparse_linear.load_state_dict(state)
    except Exception as exc:  # the hub client raises many types; all mean "not usable"
        raise ModelLoadError(
            f"sparse_weight > 0 needs BGE-M3's {SPARSE_HEAD_FILE} from {model_id!r} (or a "
            f"checkpoint with sparse_linear.*): {exc}. Download it (`hf download {model_id} "
            f"{SPARSE_HEAD_FILE}`) or set sparse_weight=0 for dense CLS vectors."
        ) from exc


def build_models(
    config: NeuralRetrieverConfig,
    *,
    audio_config: Any = None,
    text_config: Any = None,
    tokenizer: Any = None,
    lora: LoraPreset | None = None,
    trainable: bool = False,
) -> RetrieverModels:
    """The two towers, with LoRA, on the configured device, weights loaded.

    ``audio_config`` / ``text_config`` (transformers configs) build randomly
    initialised base models instead of loading ``config.audio_model`` /
    ``config.text_model``: tests and benchmarks use them, as does nobody else.
    """
    from retriever.neural import checkpoint

    device, dtype = resolve_device(config.device)
    saved = checkpoint.read_adapter_meta(config.adapters) if config.adapters is not None else None
    if saved is not None:
        checkpoint.check_compatible(saved.config, config, config.adapters)
        lora = lora or saved.lora
    lora = lora or preset(config.lora_preset)

    if audio_config is not None:
        from transformers.models.qwen3_omni_moe.modeling_qwen3_omni_moe import (
            Qwen3OmniMoeAudioEncoder,
        )

        audio_base: Any = Qwen3OmniMoeAudioEncoder(audio_config)
    else:
        audio_base = load_audio_base(config.audio_model, dtype)
    if text_config is not None:
        from transformers import XLMRobertaModel

        text_base: Any = XLMRobertaModel(text_config, add_pooling_layer=False)
        if tokenizer is None:
            raise ValueError("a text_config needs a tokenizer")
    else:
        text_base, loaded_tokenizer = load_text_base(config.text_model, dtype)
        tokenizer = tokenizer or loaded_tokenizer

    audio_cfg: Any = audio_base.config
    text_dim = int(text_base.config.hidden_size)
    if text_dim != config.target_dim:
        raise ModelLoadError(
            f"target_dim {config.target_dim} does not match the text encoder's width {text_dim}"
        )
    if trainable and hasattr(audio_base, "conv2d1"):
        # PEFT's gradient checkpointing hook looks for the input embeddings.
        audio_base.get_input_embeddings = lambda: audio_base.conv2d1

    if saved is not None and config.adapters is not None:
        audio_enc, text_enc = checkpoint.attach_adapters(
            config.adapters, audio_base, text_base, trainable=trainable
        )
    else:
        audio_enc, text_enc = apply_lora(audio_base, lora.audio), apply_lora(text_base, lora.text)

    speech = SpeechTower(
        audio_enc,
        audio_dim=int(audio_cfg.output_dim),
        target_dim=config.target_dim,
        n_window=int(audio_cfg.n_window),
        pooling=config.pooling,
        maxsim_windows=config.maxsim_windows,
        maxsim_stride=config.maxsim_stride,
        temperature=config.temperature,
    )
    text = TextTower(text_enc, config.sparse_weight, text_dim)
    loaded_text_keys: frozenset[str] = frozenset()
    if saved is not None and config.adapters is not None:
        checkpoint.load_heads(config.adapters, speech)
    elif config.checkpoint is not None:
        loaded_text_keys = checkpoint.load_released(
            config.checkpoint, speech, text, trust_pickle=config.trust_checkpoint_pickle
        )
    if config.sparse_weight > 0 and "sparse_linear.weight" not in loaded_text_keys:
        # The release trained dense and took BGE-M3's own sparse head at serving.
        load_sparse_head(config.text_model, text)
    speech.to(device=device, dtype=dtype)
    text.to(device=device, dtype=dtype)
    # The temperature stays float32 (bf16 would round log(1/0.07) noticeably).
    speech.logit_scale = speech.logit_scale.float()
    models = RetrieverModels(config, lora, speech, text, tokenizer, device, dtype)
    if not trainable:
        for p in list(speech.parameters()) + list(text.parameters()):
            p.requires_grad_(False)
        models.eval()
    return models


def trainable_parameters(models: RetrieverModels) -> list[nn.Parameter]:
    """LoRA weights and the speech heads (projector, pooler); base weights stay frozen."""
    params: list[nn.Parameter] = []
    for name, p in list(models.speech.named_parameters()) + list(models.text.named_parameters()):
        train = "lora_" in name or name.startswith(("projector.", "pooler."))
        p.requires_grad_(train)
        if train:
            params.append(p)
    return params
