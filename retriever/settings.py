"""The term retriever's settings: scoring thresholds, and the encoder the service runs."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings

from kernel.settings import RASST_ENV, Preset, apply_preset

# The retriever's part of RASST_PRESET=paper: the neural dual encoder with the released
# checkpoint, encode-once spans, dense+sparse terms (its defaults), τ 0.78, top-10.
PAPER_RETRIEVER: dict[str, object] = {
    "retriever_encoder": "neural",
    "neural_windowing": "span",
    "neural_tau": 0.78,
    "retrieval_top_k": 10,
}


class RetrieverSettings(BaseSettings):
    model_config = RASST_ENV

    # "paper": the release's serving behaviour for fields not set explicitly.
    preset: Preset = "default"

    # Minimum term score τ (calibrated on ACL 60/60 dev, docs/benchmarks.md).
    retrieval_tau: float = Field(default=0.85, ge=0.0, le=1.0)
    # K1 = K2: terms kept per window and per chunk.
    retrieval_top_k: int = Field(default=10, ge=1, le=100)
    # FAISS candidates per window re-scored by phone alignment (embedded retriever).
    retrieval_candidates: int = Field(default=100, ge=1, le=2000)
    # Which encoder the retriever *service* (``rasst retriever serve``) runs; the
    # gateway's embedded retriever is always phonetic and ignores the neural_* fields.
    # "neural": the paper's dual encoder (docs/neural-retriever.md), a GPU component.
    retriever_encoder: Literal["phonetic", "neural"] = "phonetic"
    # "maxsim": the released checkpoint's multi-scale pooling; "attention": the paper's.
    neural_pooling: Literal["maxsim", "attention"] = "maxsim"
    # Base weights: hub ids or local directories. With neural_adapters, the models
    # the adapters were trained on are used unless these are set explicitly.
    neural_audio_model: str = "Atotti/Qwen3-Omni-AudioTransformer"
    neural_text_model: str = "BAAI/bge-m3"
    # A released-layout .pt (local path or hf://<repo>/<file>); neither this nor
    # neural_adapters: the released checkpoint from the hub.
    neural_checkpoint: str | None = None
    # A directory written by our trainer (python -m retriever.train fit --out ...).
    neural_adapters: Path | None = None
    # "auto": CUDA when available, else CPU; or a torch device ("cuda:1", "cpu").
    neural_device: str = "auto"
    # Cross-session micro-batching of window encodes (one forward pass per batch).
    neural_batch_window_ms: float = Field(default=5.0, ge=0)
    neural_max_batch: int = Field(default=64, ge=1)
    # Minimum term score with the neural encoder (the release's threshold); it
    # replaces the gateway's retrieval_tau, which is calibrated for phonetic scores.
    neural_tau: float = Field(default=0.78, ge=-1.0, le=1.0)
    # "span" (the release): each chunk encodes [chunk start − 1.92 s, chunk end]
    # once and scores the MaxSim sub-windows reaching into the chunk; "windows":
    # independent 1.92 s windows at a 0.48 s stride. Attention pooling always
    # uses windows.
    neural_windowing: Literal["span", "windows"] = "span"
    # Term vectors normalize((1 − s)·CLS + s·sparse) with BGE-M3's sparse head;
    # unset: 0.7 with the released checkpoint (its index builder), else the adapters' own.
    neural_sparse_weight: float | None = Field(default=None, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _apply_retriever_preset(self) -> RetrieverSettings:
        if self.preset == "paper":
            apply_preset(self, PAPER_RETRIEVER)
        return self
