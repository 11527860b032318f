"""Exporting a trained adapter: for vLLM's ``--lora-modules``, or merged into the weights.

**Adapter** (:func:`export_adapter`): peft's ``adapter_config.json`` and
``adapter_model.safetensors`` with module names in the checkpoint's layout
(``thinker.model.layers.N…``, as the released Qwen3-Omni weights name them; transformers 5
calls the same modules ``thinker.model.language_model.layers.N…`` in memory). peft reads
this layout back (it converts on load), and vLLM maps it onto its own modules. Serve with
``vllm serve BASE --enable-lora --max-lora-rank 32 --lora-modules rasst-de=ADAPTER``
and ask for model ``rasst-de``.

**Merged** (:func:`export_merged`): base + adapter folded into one full checkpoint
(``Qwen3OmniMoeForConditionalGeneration`` without the talker, which vLLM does not serve),
with the tokenizer, chat template and processor files copied from the base, so vLLM
serves it like the base model: ``vllm serve MERGED``. No LoRA overhead at inference, one
model per language.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

# Files a served model needs besides its weights (copied from the base when present).
_SIDE_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.json",
    "merges.txt",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.json",
    "chat_template.jinja",
    "preprocessor_config.json",
    "processor_config.json",
    "video_preprocessor_config.json",
    "generation_config.json",
)
_IN_MEMORY = ".thinker.model.language_model."
_ON_DISK = ".thinker.model."


def _base_files(model: str) -> Path | None:
    """A local folder with the base model's files (a hub id is resolved from the cache)."""
    path = Path(model)
    if path.is_dir():
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model, allow_patterns=list(_SIDE_FILES)))
    except (OSError, ValueError, ImportError):  # offline, or not a hub id: nothing to copy
        return None


def export_adapter(adapter: Path, out: Path, base_model: str | None = None) -> Path:
    """Write ``adapter`` (a peft folder from our trainer) in the checkpoint layout to ``out``."""
    from safetensors.torch import load_file, save_file

    weights = load_file(str(adapter / "adapter_model.safetensors"))
    renamed = {key.replace(_IN_MEMORY, _ON_DISK): value for key, value in weights.items()}
    out.mkdir(parents=True, exist_ok=True)
    save_file(renamed, str(out / "adapter_model.safetensors"), metadata={"format": "pt"})
    config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    config["inference_mode"] = True
    if base_model is not None:
        config["base_model_name_or_path"] = base_model
    (out / "adapter_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return out


def export_merged(
    base_model: str, adapter: Path, out: Path, dtype: torch.dtype = torch.bfloat16
) -> Path:
    """Fold ``adapter`` into ``base_model`` and save a checkpoint vLLM serves as it is."""
    from peft import PeftModel

    from training.lora_train import load_base_model, peft_quietly

    model = load_base_model(base_model, dtype)
    with peft_quietly():
        merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out)
    base = _base_files(base_model)
    if base is not None:
        for name in _SIDE_FILES:
            source = base / name
            if source.is_file() and not (out / name).exists():
                shutil.copy2(source, out / name)
    return out
