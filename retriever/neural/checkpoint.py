"""Weights on disk: the released checkpoint layout and our trainer's adapter directories.

**Released layout** (``gavinlaw/rasst-retriever-hn1024``, file ``hn1024.pt``):
the release trainer's ``torch.save`` dict — ``model_state_dict`` (the full
``state_dict()`` of its ``Qwen3OmniRetriever``: ``audio_encoder.base_model.model.…``
PEFT keys with LoRA under ``lora_A.default`` / ``lora_B.default``,
``projector.weight/bias``, the ``logit_scale`` buffer, and ``pooler.attention.*``
for attentive pooling), ``text_model_state_dict`` (its ``BgeM3TextEncoder``:
``encoder.base_model.model.…``, ``sparse_linear.*`` when trained dense+sparse)
and trainer state (``optimizer_state_dict``, ``scheduler_state_dict``,
``scaler_state_dict``, ``global_step``, ``epoch``, ``args`` = ``vars(args)``,
``best_metric_*``). ``module.`` prefixes (DDP) are stripped. The names are
checked by ``tests/retriever/neural/test_release_conformance.py`` against the
release's module tree rebuilt at tiny dimensions. Loading is strict about what
must be there (every LoRA weight and head of our model) and names a missing key,
an unknown key or a shape mismatch; base weights absent from the file come from
the base model ids. Files are unpickled with ``weights_only=True`` and a small
allowlist of trainer-state globals (:func:`read_checkpoint`);
:func:`read_trainer_state` returns the trainer state.

**Our adapters**: a directory with ``retriever.json`` (the model config and
LoRA preset), ``speech_lora/`` and ``text_lora/`` (peft ``save_pretrained``:
``adapter_config.json`` + ``adapter_model.safetensors``) and ``heads.pt``
(projector, attention pooler, logit scale: tensors only).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from retriever.neural.config import NeuralRetrieverConfig
from retriever.neural.errors import CheckpointError
from retriever.neural.lora import LoraPreset, LoraSpec

if TYPE_CHECKING:
    from retriever.neural.models import RetrieverModels
    from retriever.neural.speech import SpeechTower
    from retriever.neural.text import TextTower

log = logging.getLogger(__name__)

META_FILE = "retriever.json"
SPEECH_DIR = "speech_lora"
TEXT_DIR = "text_lora"
HEADS_FILE = "heads.pt"
_PEFT_FILES = ("adapter_config.json", "adapter_model.safetensors")
_FORMAT = 1


# -- our adapters --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AdapterMeta:
    config: NeuralRetrieverConfig
    lora: LoraPreset
    extra: dict[str, Any]


def _head_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {
        k: v.detach().cpu()
        for k, v in state.items()
        if k.startswith(("projector.", "pooler.")) or k == "logit_scale"
    }


def save_adapters(
    directory: Path, models: RetrieverModels, extra: dict[str, Any] | None = None
) -> None:
    """Write LoRA adapters, heads and config to ``directory`` (replaced atomically)."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-adapters-", dir=directory.parent))
    try:
        config = models.config.with_(checkpoint=None, adapters=None, device=None)
        meta = {
            "format": _FORMAT,
            "config": config.to_json(),
            "lora": {
                "name": models.lora.name,
                "audio": asdict(models.lora.audio),
                "text": asdict(models.lora.text),
            },
            "extra": extra or {},
        }
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2))
        with warnings.catch_warnings():
            # peft warns that it cannot find a hub config for a locally built base model.
            warnings.simplefilter("ignore")
            models.speech.audio_encoder.save_pretrained(str(tmp / SPEECH_DIR))  # type: ignore[operator]
            models.text.encoder.save_pretrained(str(tmp / TEXT_DIR))  # type: ignore[operator]
        torch.save(_head_keys(models.speech.state_dict()), tmp / HEADS_FILE)
        if directory.exists():
            old = directory.with_name(f".old-{directory.name}-{os.getpid()}")
            os.rename(directory, old)
            os.rename(tmp, directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_adapter_meta(directory: Path | None) -> AdapterMeta:
    if directory is None:
        raise CheckpointError("no adapter directory given")
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"adapter directory {directory} does not exist")
    _require_files(
        directory,
        [META_FILE, HEADS_FILE] + [f"{d}/{f}" for d in (SPEECH_DIR, TEXT_DIR) for f in _PEFT_FILES],
    )
    try:
        meta = json.loads((directory / META_FILE).read_text())
        config = NeuralRetrieverConfig.from_json(meta["config"])
        lora_raw = meta["lora"]
        lora = LoraPreset(
            str(lora_raw["name"]),
            _spec(lora_raw["audio"]),
            _spec(lora_raw["text"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(
            f"{directory / META_FILE} is not a valid adapter description: {exc}"
        ) from exc
    return AdapterMeta(config, lora, dict(meta.get("extra", {})))


def _spec(raw: Mapping[str, Any]) -> LoraSpec:
    return LoraSpec(
        int(raw["r"]), int(raw["alpha"]), tuple(raw["targets"]), float(raw.get("dropout", 0.05))
    )


def _require_files(directory: Path, names: list[str]) -> None:
    for name in names:
        if not (directory / name).is_file():
            raise CheckpointError(f"adapter directory {directory} lacks {name}")


def check_compatible(
    saved: NeuralRetrieverConfig, wanted: NeuralRetrieverConfig, directory: Path | None
) -> None:
    """The adapters were trained for these base models, this pooling and dimension."""
    for name in (
        "audio_model",
        "text_model",
        "pooling",
        "target_dim",
        "maxsim_windows",
        "maxsim_stride",
    ):
        a, b = getattr(saved, name), getattr(wanted, name)
        if name.startswith("maxsim") and saved.pooling != "maxsim":
            continue
        if a != b:
            raise CheckpointError(
                f"adapters in {directory} were trained with {name}={a!r}, but the configuration "
                f"says {b!r}; use NeuralRetrieverConfig.from_adapters() to take the saved one"
            )


def attach_adapters(
    directory: Path, audio_base: nn.Module, text_base: nn.Module, *, trainable: bool = False
) -> tuple[nn.Module, nn.Module]:
    from peft import PeftModel

    out: list[nn.Module] = []
    for base, sub in ((audio_base, SPEECH_DIR), (text_base, TEXT_DIR)):
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=FutureWarning)
                out.append(
                    PeftModel.from_pretrained(
                        base, str(Path(directory) / sub), is_trainable=trainable
                    )
                )
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise CheckpointError(
                f"cannot load the adapter {Path(directory) / sub}: {exc}"
            ) from exc
    return out[0], out[1]


def load_heads(directory: Path, speech: SpeechTower) -> None:
    path = Path(directory) / HEADS_FILE
    try:
        heads = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, pickle.UnpicklingError, RuntimeError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from exc
    expected = _head_keys(speech.state_dict())
    _load_exact(speech, heads, expected.keys(), f"{path}")


# -- the released layout -------------------------------------------------------


def save_released(
    path: Path, models: RetrieverModels, trainer_state: dict[str, Any] | None = None
) -> None:
    """A checkpoint in the released layout (what ``load_released`` reads)."""
    data: dict[str, Any] = {
        "model_state_dict": {k: v.detach().cpu() for k, v in models.speech.state_dict().items()},
        "text_model_state_dict": {k: v.detach().cpu() for k, v in models.text.state_dict().items()},
    }
    data.update(trainer_state or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(data, tmp)
    os.replace(tmp, path)


def resolve_checkpoint(source: str) -> Path:
    """A local path, or ``hf://<owner>/<repo>/<file>`` fetched into the hub cache."""
    if source.startswith("hf://"):
        parts = source[len("hf://") :].split("/")
        if len(parts) < 3:
            raise CheckpointError(f"{source!r}: expected hf://<owner>/<repo>/<file>")
        repo, filename = "/".join(parts[:2]), "/".join(parts[2:])
        try:
            from huggingface_hub import hf_hub_download

            return Path(hf_hub_download(repo, filename))
        except Exception as exc:  # the hub client raises many types; all mean "not here"
            raise CheckpointError(
                f"cannot fetch {filename} from {repo}: {exc}. Download it first "
                f"(`hf download {repo} {filename}`) and give the local path."
            ) from exc
    path = Path(source)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {path} does not exist")
    return path


# Globals a release trainer file may hold besides tensors and plain containers
# (``vars(args)`` values, numpy scalars from metrics). Rebuilding them runs no
# code beyond their constructors; anything else is refused and named.
def _trainer_state_allowlist() -> list[Any]:
    import argparse
    import pathlib

    allowed: list[Any] = [
        argparse.Namespace,
        pathlib.Path,
        pathlib.PosixPath,
        pathlib.PurePosixPath,
        pathlib.WindowsPath,
        pathlib.PureWindowsPath,
    ]
    try:
        import numpy as np

        allowed += [np.dtype, np.ndarray, np.float64, np.float32, np.int64, np.int32, np.bool_]
        allowed += [type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32", "bool")]
        for module in ("numpy._core.multiarray", "numpy.core.multiarray"):
            try:
                mod = __import__(module, fromlist=["scalar", "_reconstruct"])
                allowed += [mod.scalar, mod._reconstruct]
            except (ImportError, AttributeError):
                continue
    except ImportError:
        pass
    return allowed


def read_checkpoint(path: Path, *, trust_pickle: bool = False) -> Mapping[str, Any]:
    """A release-layout file as a dict, unpickled safely.

    ``torch.load(weights_only=True)`` with an allowlist of the harmless
    globals a trainer's state holds (``argparse.Namespace``, paths, numpy
    scalars); anything else is refused with its name. ``trust_pickle`` loads
    any pickle (only for files you trust).
    """
    try:
        if trust_pickle:
            data = torch.load(path, map_location="cpu", weights_only=False)
        else:
            with torch.serialization.safe_globals(_trainer_state_allowlist()):
                data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path} holds objects other than tensors and trainer state ({exc}); if you "
            "trust the file, set trust_checkpoint_pickle=True"
        ) from exc
    except (OSError, RuntimeError, EOFError) as exc:
        raise CheckpointError(f"cannot read the checkpoint {path}: {exc}") from exc
    if not isinstance(data, Mapping):
        raise CheckpointError(f"{path} is not a checkpoint dict (got {type(data).__name__})")
    return data


TRAINER_STATE_KEYS = (
    "optimizer_state_dict",
    "scheduler_state_dict",
    "scaler_state_dict",
    "global_step",
    "epoch",
    "args",
    "best_metric_key",
    "best_metric_secondary_key",
    "best_metric_value",
    "best_metric_secondary_value",
)


def read_trainer_state(source: str | Path, *, trust_pickle: bool = False) -> dict[str, Any]:
    """The release trainer's state next to the weights (optimizer, scheduler, args, step...).

    Read with the same safe unpickler as the weights; ``args`` comes back as a
    dict (the trainer saves ``vars(args)``; a ``Namespace`` is converted).
    """
    path = resolve_checkpoint(str(source))
    data = read_checkpoint(path, trust_pickle=trust_pickle)
    state = {k: data[k] for k in TRAINER_STATE_KEYS if k in data}
    args = state.get("args")
    if args is not None and not isinstance(args, Mapping):
        state["args"] = dict(vars(args))
    return state


def load_released(
    source: str, speech: SpeechTower, text: TextTower, *, trust_pickle: bool = False
) -> frozenset[str]:
    """Load a release-layout file into the towers; returns the text keys it held."""
    path = resolve_checkpoint(source)
    data = read_checkpoint(path, trust_pickle=trust_pickle)
    text_keys: frozenset[str] = frozenset()
    for section, module in (("model_state_dict", speech), ("text_model_state_dict", text)):
        if section not in data:
            raise CheckpointError(f"{path} lacks {section!r} (keys: {sorted(data)[:10]})")
        state = _strip_prefix(data[section], "module.")
        own = module.state_dict()
        # What must come from the file: every LoRA weight and the heads. Base
        # weights may be absent (they come from the base model id), and so may
        # BGE-M3's sparse head (the release takes it from the base model).
        required = [k for k in own if "lora_" in k or k.startswith(("projector.", "pooler."))]
        _load_exact(module, state, required, f"{path} [{section}]")
        if module is text:
            text_keys = frozenset(state)
    return text_keys


def _strip_prefix(state: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    return {(k[len(prefix) :] if k.startswith(prefix) else k): v for k, v in state.items()}


def _load_exact(module: nn.Module, state: Mapping[str, Any], required: Any, where: str) -> None:
    own = module.state_dict()
    if any(k.startswith(("pooler.query", "pooler.cross_attn")) for k in state):
        raise CheckpointError(
            f"{where} holds the release's transformer pooler (pooler.query, pooler.cross_attn…), "
            "which this service does not implement; use a maxsim or attentive-pooling checkpoint"
        )
    missing = [k for k in required if k not in state]
    if missing:
        hint = ""
        if any(k.startswith("pooler.") for k in missing):
            hint = " (an attention-pooling model needs pooler.*; is this a maxsim checkpoint?)"
        raise CheckpointError(
            f"{where} lacks {missing[0]!r}"
            + (f" and {len(missing) - 1} more keys" if len(missing) > 1 else "")
            + hint
        )
    unexpected = [k for k in state if k not in own]
    if any(k.startswith("sparse_linear.") for k in unexpected):
        raise CheckpointError(
            f"{where} holds a sparse head (sparse_linear.*): this checkpoint was trained with "
            "dense+sparse term vectors; set sparse_weight to the value it was trained with"
        )
    if unexpected:
        raise CheckpointError(
            f"{where} has keys this model does not: {unexpected[0]!r}"
            + (f" and {len(unexpected) - 1} more" if len(unexpected) > 1 else "")
            + " (another LoRA preset or pooling?)"
        )
    for k, v in state.items():
        if not isinstance(v, torch.Tensor):
            raise CheckpointError(f"{where}: {k!r} is not a tensor")
        if tuple(v.shape) != tuple(own[k].shape):
            raise CheckpointError(
                f"{where}: {k!r} has shape {tuple(v.shape)}, the model expects {tuple(own[k].shape)}"
                " (LoRA rank or model size differs: check the preset and base model)"
            )
    module.load_state_dict(dict(state), strict=False)
