"""LoRA fine-tuning settings, and the reference's recipe as a preset.

The RASST release trained its speech LLMs with ms-swift's Megatron backend
(``code/rasst/slm/train`` and ``manifests/slm_training.cap16_denoise_budget_ttag.json`` in
LeiLiLab/RASST): LoRA rank 32, alpha 32 on all linear layers of the language model
(the audio encoder, vision encoder and their aligners frozen), learning rate 1e-4 with 5 %
warm-up and decay to 1e-5, weight decay 0.01, gradient clipping at 1.0, one epoch,
sequences of at most 3072 tokens, micro-batch 1 and a global batch of 6 (de; 4 for ja/zh),
bf16, MoE auxiliary loss coefficient 1e-3. :data:`PRESETS` ``"rasst"`` is that recipe for
this trainer (transformers + peft). Qwen3-Omni's MoE experts are fused 3-D parameters in
transformers 5, so "all linear layers" means the attention projections plus the experts
through peft's ``target_parameters``; the router stays frozen. peft cannot apply dropout to
parameter-targeted LoRA, so the preset has none (the reference ran ms-swift's default).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

# Attention projections of the thinker's language model (audio/vision towers excluded).
ATTENTION_MODULES: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
# The fused MoE expert weights (3-D parameters), adapted through peft's target_parameters.
EXPERT_PARAMETERS: tuple[str, ...] = ("mlp.experts.gate_up_proj", "mlp.experts.down_proj")
# Never adapted: the encoders are frozen, as in the reference.
FROZEN_TOWERS = r".*\.(?:audio_tower|visual)\..*"


@dataclass(frozen=True, slots=True)
class LoraSpec:
    rank: int = 32
    alpha: int = 32
    # peft cannot apply dropout to parameter-targeted (expert) LoRA; with experts it must be 0.
    dropout: float = 0.0
    modules: tuple[str, ...] = ATTENTION_MODULES
    expert_parameters: tuple[str, ...] = EXPERT_PARAMETERS

    def __post_init__(self) -> None:
        if self.expert_parameters and self.dropout > 0:
            raise ValueError(
                "LoRA dropout cannot be used on the MoE experts (peft's target_parameters); "
                "use dropout 0 or leave the experts out"
            )


@dataclass(frozen=True, slots=True)
class OptimSpec:
    lr: float = 1e-4
    min_lr: float = 1e-5
    warmup_ratio: float = 0.05
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    epochs: float = 1.0
    max_steps: int | None = None  # overrides epochs
    micro_batch: int = 1
    global_batch: int = 6
    max_length: int = 3072
    router_aux_loss: float = 1e-3


PRESETS: dict[str, tuple[LoraSpec, OptimSpec]] = {
    "rasst": (LoraSpec(), OptimSpec()),
}


@dataclass(frozen=True, slots=True)
class TrainParams:
    model: str  # base model: hub id or directory (Qwen/Qwen3-Omni-30B-A3B-Instruct)
    data: Path  # SFT JSONL from `rasst train slm-data`
    out: Path
    lora: LoraSpec = field(default_factory=LoraSpec)
    optim: OptimSpec = field(default_factory=OptimSpec)
    resume: bool = False
    save_every: int = 100  # optimiser steps
    keep_checkpoints: int = 2
    log_every: int = 10
    seed: int = 0
    dtype: str = "auto"  # bf16 on a GPU, fp32 on the CPU
    device: str = "auto"  # "auto": cuda if available; or "cpu", "cuda:1", ...
    device_map: str | None = None  # "auto": shard over every visible GPU (accelerate)
    gradient_checkpointing: bool = False

    def with_overrides(self, **changes: Any) -> TrainParams:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def preset(name: str) -> tuple[LoraSpec, OptimSpec]:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}") from None
