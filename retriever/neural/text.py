"""Text tower: BGE-M3 (XLM-RoBERTa) dense CLS embedding, L2-normalised.

The attribute name ``encoder`` follows the released checkpoint's
``text_model_state_dict`` (``encoder.*``, the PEFT-wrapped model).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class TextTower(nn.Module):
    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        return F.normalize(out.last_hidden_state[:, 0, :].float(), dim=-1)


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
