"""The release's retriever module tree at tiny dimensions, and its checkpoint writer.

Written from the description of the release's trainer
(``code/rasst/retriever/qwen3_glossary_neg_train.py`` in LeiLiLab/RASST): the
same attribute paths (``audio_encoder`` PEFT-wrapped with ``task_type=None``,
``pooler`` = ``AttentivePooling.attention`` or ``TransformerPooling``,
``projector``, the ``logit_scale`` buffer; the text side ``encoder`` +
optional ``sparse_linear``), the same forward computations, and the same
saved dict: both ``state_dict()`` s in full plus optimizer, scheduler, scaler,
step, epoch, ``vars(args)`` and the best-metric fields, written through a
temporary file and ``os.replace``. Nothing here is imported by the service:
it is the other side of the conformance test.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def _lora(model: nn.Module, r: int, alpha: int, targets: list[str]) -> nn.Module:
    import warnings

    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=r, lora_alpha=alpha, target_modules=targets, lora_dropout=0.0, bias="none", task_type=None
    )
    with warnings.catch_warnings():
        # peft 0.21 calls a deprecated transformers 5 name (as in retriever.neural.models).
        warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.*")
        return get_peft_model(model, config)  # type: ignore[no-any-return]


class ReleaseAttentivePooling(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.attention = nn.Sequential(nn.Linear(dim, dim // 2), nn.Tanh(), nn.Linear(dim // 2, 1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = self.attention(x).masked_fill(~mask.unsqueeze(-1), -1e9)
        return torch.sum(x * F.softmax(scores, dim=1), dim=1)


class ReleaseTransformerPooling(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.cross_attn = nn.MultiheadAttention(dim, 4, batch_first=True)
        self.norm1 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.norm2 = nn.LayerNorm(dim)


class ReleaseRetriever(nn.Module):
    """``Qwen3OmniRetriever`` with ``audio_encoder_type="qwen3_omni"`` and LoRA."""

    def __init__(
        self,
        audio_config: Any,
        target_dim: int,
        lora_rank: int,
        maxsim_windows: list[int],
        maxsim_stride: int = 2,
        use_maxsim: bool = True,
        pooling_type: str = "attentive",
        temperature: float = 0.07,
    ) -> None:
        super().__init__()
        from transformers.models.qwen3_omni_moe.modeling_qwen3_omni_moe import (
            Qwen3OmniMoeAudioEncoder,
        )

        self.use_maxsim = use_maxsim
        self.maxsim_windows = maxsim_windows
        self.maxsim_stride = maxsim_stride
        targets = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2", "proj1", "proj2"]
        self.audio_encoder = _lora(
            Qwen3OmniMoeAudioEncoder(audio_config), lora_rank, 2 * lora_rank, targets
        )
        dim = int(audio_config.output_dim)
        if not use_maxsim:
            self.pooler: nn.Module = (
                ReleaseTransformerPooling(dim)
                if pooling_type == "transformer"
                else ReleaseAttentivePooling(dim)
            )
        self.projector = nn.Linear(dim, target_dim)
        self.register_buffer("logit_scale", torch.tensor(math.log(1.0 / temperature)))

    def _multiscale_pool(self, seq: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t, _ = seq.shape
        x_t = seq.transpose(1, 2)
        m = mask.float().unsqueeze(1)
        out = []
        for w in self.maxsim_windows:
            if w >= t:
                mf = mask.unsqueeze(-1).float()
                out.append((seq * mf).sum(1, keepdim=True) / mf.sum(1, keepdim=True).clamp(1e-9))
            else:
                s = F.avg_pool1d(x_t, w, self.maxsim_stride) * w
                c = (F.avg_pool1d(m, w, self.maxsim_stride) * w).clamp(min=1e-9)
                out.append((s / c).transpose(1, 2))
        return torch.cat(out, dim=1)

    def forward(self, features: torch.Tensor, feature_lens: torch.Tensor) -> torch.Tensor:
        hidden = self.audio_encoder(features, feature_lens).last_hidden_state
        lens = []
        for cur in feature_lens.tolist():
            for _ in range(3):
                cur = (cur + 1) // 2
            lens.append(cur)
        if sum(lens) != hidden.shape[0]:  # the release's fallback: proportional lengths
            ratio = features.shape[1] / hidden.shape[0]
            lens = [max(1, round(x / ratio)) for x in feature_lens.tolist()]
            lens[-1] = hidden.shape[0] - sum(lens[:-1])
        parts = torch.split(hidden, lens, dim=0)
        hidden = nn.utils.rnn.pad_sequence(list(parts), batch_first=True)
        mask = torch.arange(hidden.shape[1])[None, :] < torch.tensor(lens)[:, None]
        if self.use_maxsim:
            projected = self.projector(hidden) * mask.unsqueeze(-1).float()
            return F.normalize(self._multiscale_pool(projected, mask), dim=-1)
        return F.normalize(self.projector(self.pooler(hidden, mask)), dim=-1)


class ReleaseTextEncoder(nn.Module):
    """``BgeM3TextEncoder`` with LoRA, CLS pooling and an optional sparse head."""

    def __init__(self, text_config: Any, lora_rank: int, sparse_weight: float = 0.0) -> None:
        super().__init__()
        from transformers import XLMRobertaModel

        self.encoder = _lora(
            XLMRobertaModel(text_config, add_pooling_layer=False),
            lora_rank,
            2 * lora_rank,
            ["query", "key", "value", "dense"],
        )
        self.sparse_weight = sparse_weight
        if sparse_weight > 0:
            self.sparse_linear = nn.Linear(int(text_config.hidden_size), 1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        pooled = hidden[:, 0, :]
        if self.sparse_weight > 0:
            w = torch.relu(self.sparse_linear(hidden)).squeeze(-1) * attention_mask.float()
            w = w / w.sum(dim=-1, keepdim=True).clamp(min=1e-9)
            sparse = (w.unsqueeze(-1) * hidden).sum(dim=1)
            pooled = (1.0 - self.sparse_weight) * pooled + self.sparse_weight * sparse
        return F.normalize(pooled, p=2, dim=-1)


def perturb(*modules: nn.Module, seed: int = 0) -> None:
    """Move LoRA and heads off their initial values (LoRA B starts at zero)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in modules:
            for name, p in module.named_parameters():
                if "lora_" in name or name.startswith(("projector.", "pooler.", "sparse_linear.")):
                    p.add_(0.05 * torch.randn(p.shape, generator=gen))


def release_args(**changes: Any) -> argparse.Namespace:
    """A slice of the trainer's argparse namespace (types as argparse gives them)."""
    args = argparse.Namespace(
        audio_model_id="Atotti/Qwen3-Omni-AudioTransformer",
        text_model_id="BAAI/bge-m3",
        target_dim=1024,
        use_lora=True,
        lora_rank=128,
        lora_alpha=256,
        lora_target_modules=["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2", "proj1"],
        text_lora_rank=128,
        text_lora_alpha=256,
        temperature=0.07,
        learn_temp=False,
        pooling_type="transformer",
        use_maxsim=True,
        maxsim_windows=[2, 3, 4, 5, 6, 7, 8, 10, 12, 16, 20, 24],
        maxsim_stride=2,
        sparse_weight=0.0,
        text_pooling="cls",
        save_path="/train_outputs/q3rag_hn1024.pt",
        audio_feature_extractor_id=None,
        fixed_audio_seconds=5.76,
    )
    for k, v in changes.items():
        setattr(args, k, v)
    return args


def save_like_release(
    path: Path,
    retriever: ReleaseRetriever,
    text: ReleaseTextEncoder,
    args: argparse.Namespace,
    *,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One optimizer step, then the trainer's checkpoint payload, saved atomically."""
    from transformers import get_cosine_schedule_with_warmup

    params = [p for p in retriever.audio_encoder.parameters() if p.requires_grad]
    params += list(retriever.projector.parameters())
    params += [p for p in text.encoder.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [{"params": params, "lr": 1e-4, "name": "all"}], weight_decay=0.01
    )
    scheduler = get_cosine_schedule_with_warmup(optimizer, 10, 100)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    for p in params:
        p.grad = torch.zeros_like(p)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad()
    payload: dict[str, Any] = {
        "model_state_dict": retriever.state_dict(),
        "text_model_state_dict": text.state_dict(),
        "optimizer_state_dict": optimizer.state_dict(),
        "scheduler_state_dict": scheduler.state_dict(),
        "scaler_state_dict": scaler.state_dict(),
        "global_step": 320,
        "epoch": 1,
        "args": vars(args),
        "best_metric_key": "eval_dev/recall@10_gs10000",
        "best_metric_secondary_key": "eval_acl6060/recall@10",
        "best_metric_value": 0.9921,
        "best_metric_secondary_value": float("-inf"),
    }
    payload.update(extra or {})
    tmp = f"{path}.tmp.{os.getpid()}"
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return payload
