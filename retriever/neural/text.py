"""Text tower: BGE-M3 (XLM-RoBERTa) CLS embedding, optionally mixed with its sparse head.

The attribute names ``encoder`` and ``sparse_linear`` follow the released
checkpoint's ``text_model_state_dict`` (``encoder.*``, the PEFT-wrapped model).

Dense + sparse (the release's index builder, ``sparse_weight`` 0.7): BGE-M3's
lexical head ``sparse_linear`` (Linear(d, 1)) gives each token a weight
``relu(w·h_t + b)``; the padding-masked weights, normalised to sum 1, average
the token states into a "sparse" vector, and the term vector is
``normalize((1 − s)·CLS + s·sparse)``. The mix happens on the unnormalised
vectors before the final L2, exactly as the release computes it, so a term's
score is the cosine with that one vector.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class TextTower(nn.Module):
    def __init__(self, encoder: nn.Module, sparse_weight: float = 0.0, hidden: int = 0) -> None:
        super().__init__()
        if not 0.0 <= sparse_weight <= 1.0:
            raise ValueError("sparse_weight must be in [0, 1]")
        self.encoder = encoder
        self.sparse_weight = sparse_weight
        if sparse_weight > 0.0:
            if hidden <= 0:
                raise ValueError("the sparse head needs the encoder's hidden size")
            self.sparse_linear = nn.Linear(hidden, 1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        hidden = out.last_hidden_state
        pooled = hidden[:, 0, :].float()
        if self.sparse_weight > 0.0:
            weights = torch.relu(self.sparse_linear(hidden)).squeeze(-1).float()
            weights = weights * attention_mask.float()
            weights = weights / weights.sum(dim=-1, keepdim=True).clamp(min=1e-9)
            sparse = torch.einsum("bt,btd->bd", weights, hidden.float())
            pooled = (1.0 - self.sparse_weight) * pooled + self.sparse_weight * sparse
        return F.normalize(pooled, dim=-1)


def tokenize(
    tokenizer: Any, terms: Sequence[str], max_tokens: int, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    batch = tokenizer(
        list(terms),
        padding=True,
        truncation=True,
        max_length=max_tokens,
        return_tensors="pt",
    )
    return batch["input_ids"].to(device), batch["attention_mask"].to(device)


def encode_terms(
    text: TextTower,
    tokenizer: Any,
    terms: Sequence[str],
    max_tokens: int,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """``(len(terms), d)`` unit vectors, no gradient; terms sorted by length per batch.

    Sorting by length keeps padding (wasted work) small when a glossary mixes
    one-word and ten-word terms.
    """
    order = sorted(range(len(terms)), key=lambda i: len(terms[i]))
    out: list[torch.Tensor | None] = [None] * len(terms)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            ids, mask = tokenize(tokenizer, [terms[i] for i in idx], max_tokens, device)
            vecs = text(ids, mask).cpu()
            for row, i in enumerate(idx):
                out[i] = vecs[row]
    if not terms:
        return torch.zeros(0, 0)
    return torch.stack([v for v in out if v is not None])
