"""LoRA presets for the two towers (plain data; peft is imported only where applied).

* ``release``: the released checkpoint ``gavinlaw/rasst-retriever-hn1024``:
  r = 128, α = 256 on the audio encoder's attention, MLP and output projections
  and on BGE-M3's attention and dense layers.
* ``paper``: the smaller adapters of the RASST training script's defaults
  (audio r = 32, α = 64; text r = 16, α = 32 on query/key/value). The paper
  says "LoRA on both" without listing ranks; these are the release's own
  defaults before the hn1024 run overrode them.
"""

from __future__ import annotations

from dataclasses import dataclass

AUDIO_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2", "proj1", "proj2")
TEXT_TARGETS_FULL = ("query", "key", "value", "dense")
TEXT_TARGETS_ATTENTION = ("query", "key", "value")


@dataclass(frozen=True, slots=True)
class LoraSpec:
    r: int
    alpha: int
    targets: tuple[str, ...]
    dropout: float = 0.05

    def peft_config(self) -> object:
        from peft import LoraConfig

        return LoraConfig(
            r=self.r,
            lora_alpha=self.alpha,
            target_modules=list(self.targets),
            lora_dropout=self.dropout,
            bias="none",
            task_type=None,
        )


@dataclass(frozen=True, slots=True)
class LoraPreset:
    name: str
    audio: LoraSpec
    text: LoraSpec


PRESETS: dict[str, LoraPreset] = {
    "release": LoraPreset(
        "release", LoraSpec(128, 256, AUDIO_TARGETS), LoraSpec(128, 256, TEXT_TARGETS_FULL)
    ),
    "paper": LoraPreset(
        "paper", LoraSpec(32, 64, AUDIO_TARGETS), LoraSpec(16, 32, TEXT_TARGETS_ATTENTION)
    ),
}


def preset(name: str) -> LoraPreset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown LoRA preset {name!r}; known: {', '.join(PRESETS)}") from None
