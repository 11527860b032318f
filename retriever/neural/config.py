"""What the neural retriever is made of: model ids, pooling, LoRA preset, weights to load.

Plain data without torch, so settings can be validated (and the encoder chosen)
where the neural stack is not installed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

Pooling = Literal["attention", "maxsim"]

AUDIO_MODEL_ID = "Atotti/Qwen3-Omni-AudioTransformer"
TEXT_MODEL_ID = "BAAI/bge-m3"
RELEASED_CHECKPOINT_REPO = "gavinlaw/rasst-retriever-hn1024"
RELEASED_CHECKPOINT_FILE = "hn1024.pt"

# Multi-scale average pooling of the released checkpoint, in encoder frames
# (12.5 per second, so 0.16 s .. 1.92 s) at a 2-frame stride.
RELEASE_MAXSIM_WINDOWS: tuple[int, ...] = (2, 3, 4, 5, 6, 7, 8, 10, 12, 16, 20, 24)
RELEASE_MAXSIM_STRIDE = 2
# The release's index builder encodes terms with BGE-M3 dense CLS and sparse
# head mixed 0.3 / 0.7 (its SPARSE_WEIGHT), though the retriever trained dense.
RELEASE_SPARSE_WEIGHT = 0.7


@dataclass(frozen=True, slots=True)
class NeuralRetrieverConfig:
    """Everything that determines the vector space (and therefore the index cache key)."""

    audio_model: str = AUDIO_MODEL_ID
    text_model: str = TEXT_MODEL_ID
    # "maxsim": the released checkpoint (frame-wise projection, multi-scale
    # average pooling, a term scores its best sub-window); "attention": the
    # paper (attention pooling over the 1.92 s window, one vector per window).
    pooling: Pooling = "maxsim"
    target_dim: int = 1024
    maxsim_windows: tuple[int, ...] = RELEASE_MAXSIM_WINDOWS
    maxsim_stride: int = RELEASE_MAXSIM_STRIDE
    lora_preset: str = "release"
    temperature: float = 0.07
    max_term_tokens: int = 64
    # BGE-M3 dense + sparse term vectors: normalize((1 − s)·CLS + s·sparse)
    # (retriever.neural.text). 0: dense CLS only (what the release trained
    # with); the release's index builder serves with 0.7.
    sparse_weight: float = 0.0
    # At most one of these: a checkpoint in the released layout (a local .pt
    # file, or "hf://<repo>/<file>"), or a directory written by our trainer.
    checkpoint: str | None = None
    adapters: Path | None = None
    # None: CUDA when available, else CPU. bf16 on GPU, fp32 on CPU.
    device: str | None = None
    # Released checkpoints are pickles; by default only tensors and plain
    # containers are unpickled (torch's weights_only). Set only for files you trust.
    trust_checkpoint_pickle: bool = False

    def __post_init__(self) -> None:
        if self.pooling not in ("attention", "maxsim"):
            raise ValueError(f"pooling must be 'attention' or 'maxsim', not {self.pooling!r}")
        if self.checkpoint is not None and self.adapters is not None:
            raise ValueError("give a released checkpoint or our adapters, not both")
        if not 0.0 <= self.sparse_weight <= 1.0:
            raise ValueError("sparse_weight must be in [0, 1]")
        if self.pooling == "maxsim" and (
            not self.maxsim_windows or min(self.maxsim_windows) < 1 or self.maxsim_stride < 1
        ):
            raise ValueError("maxsim windows and stride must be positive frame counts")

    @classmethod
    def released(cls, checkpoint: str | None = None) -> NeuralRetrieverConfig:
        """The released retriever as the release serves it.

        ``hn1024.pt`` from the hub unless a local path is given; term vectors mix
        BGE-M3's dense CLS and sparse head 0.3 / 0.7 as the release's index
        builder does (``RELEASE_SPARSE_WEIGHT``).
        """
        return cls(
            checkpoint=checkpoint or f"hf://{RELEASED_CHECKPOINT_REPO}/{RELEASED_CHECKPOINT_FILE}",
            sparse_weight=RELEASE_SPARSE_WEIGHT,
        )

    @classmethod
    def from_adapters(cls, directory: Path, device: str | None = None) -> NeuralRetrieverConfig:
        """The configuration our trainer saved next to its adapters, pointing at them."""
        meta_file = Path(directory) / "retriever.json"
        try:
            meta = json.loads(meta_file.read_text())
            saved = cls.from_json(meta["config"])
        except OSError as exc:
            raise FileNotFoundError(f"{meta_file} is missing: not an adapter directory") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{meta_file} is not a valid adapter description: {exc}") from exc
        return replace(saved, adapters=Path(directory), checkpoint=None, device=device)

    def with_(self, **changes: object) -> NeuralRetrieverConfig:
        return replace(self, **changes)  # type: ignore[arg-type]

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["maxsim_windows"] = list(self.maxsim_windows)
        data["adapters"] = str(self.adapters) if self.adapters is not None else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, object]) -> NeuralRetrieverConfig:
        known = set(cls.__dataclass_fields__)
        kwargs = {k: v for k, v in data.items() if k in known}
        if "maxsim_windows" in kwargs:
            kwargs["maxsim_windows"] = tuple(kwargs["maxsim_windows"])  # type: ignore[arg-type]
        if kwargs.get("adapters") is not None:
            kwargs["adapters"] = Path(str(kwargs["adapters"]))
        return cls(**kwargs)  # type: ignore[arg-type]

    def encoder_id(self) -> str:
        """Names the vector space: models, pooling and the identity of the loaded weights.

        Part of the FAISS index cache key, so a retrained adapter or another
        checkpoint never reuses term vectors built by a different model.
        """
        space = {
            "audio": self.audio_model,
            "text": self.text_model,
            "pooling": self.pooling,
            "dim": self.target_dim,
            "windows": list(self.maxsim_windows) if self.pooling == "maxsim" else None,
            "stride": self.maxsim_stride if self.pooling == "maxsim" else None,
            "lora": self.lora_preset,
            "tokens": self.max_term_tokens,
            "weights": _weights_identity(self.checkpoint, self.adapters),
        }
        if self.sparse_weight > 0:  # absent when 0, so dense ids stay what they were
            space["sparse"] = self.sparse_weight
        digest = hashlib.sha256(json.dumps(space, sort_keys=True).encode()).hexdigest()[:16]
        return f"neural-{self.pooling}-{digest}"


def _weights_identity(checkpoint: str | None, adapters: Path | None) -> str | None:
    # A local file is identified by path, size and mtime (hashing gigabytes at
    # start-up would be slow); a hub reference by its name.
    target = checkpoint if checkpoint is not None else (str(adapters) if adapters else None)
    if target is None or target.startswith("hf://"):
        return target
    path = Path(target)
    try:
        stat = path.stat()
    except OSError:
        return target
    if path.is_dir():
        newest = max((p.stat().st_mtime_ns for p in path.rglob("*") if p.is_file()), default=0)
        return f"{path.resolve()}:{newest}"
    return f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


@dataclass(frozen=True, slots=True)
class BatchingParams:
    """Cross-session micro-batching of window encodes (see :mod:`retriever.neural.batcher`)."""

    window_seconds: float = 0.005
    max_batch: int = 64


Windowing = Literal["span", "windows"]


@dataclass(frozen=True, slots=True)
class NeuralServingParams:
    model: NeuralRetrieverConfig = field(default_factory=NeuralRetrieverConfig)
    batching: BatchingParams = field(default_factory=BatchingParams)
    term_batch_size: int = 64
    # "span" (the release, default with maxsim pooling): each chunk encodes
    # [chunk start − lookback, chunk end] once and scores the multi-scale
    # sub-windows of that one encoding, masking those that end before the chunk
    # starts. "windows": independent 1.92 s windows at a 0.48 s stride (the
    # paper's description; always used with attention pooling).
    windowing: Windowing = "span"
    lookback_seconds: float = 1.92

    def __post_init__(self) -> None:
        if self.windowing not in ("span", "windows"):
            raise ValueError(f"windowing must be 'span' or 'windows', not {self.windowing!r}")
        if self.lookback_seconds < 0:
            raise ValueError("lookback_seconds must be ≥ 0")

    @property
    def span_windowing(self) -> bool:
        """Encode-once spans apply to MaxSim pooling only (attention pools one vector)."""
        return self.windowing == "span" and self.model.pooling == "maxsim"
