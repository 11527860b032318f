"""Speech tower: Qwen3-Omni audio encoder → projection to the text space → pooling.

The audio encoder takes *unbatched* input: the log-mel features of all
windows concatenated along time, ``(128, ΣT)``, with ``feature_lens`` ``(B,)``.
Its attention is block-diagonal per input (``cu_seqlens``), so windows of
different sessions can share one forward pass without seeing each other; the
flat output ``(ΣT', d)`` is split back per input with the encoder's own
``_get_feat_extract_output_lengths``.

Two poolings, both ending in L2-normalised vectors in the text space:

* ``attention`` (the paper): attention pooling over the window's frames, then
  the projection: one vector per window;
* ``maxsim`` (the released checkpoint): the projection frame-wise, then
  average pooling over sub-windows of several sizes at a small stride; a term
  scores its best sub-window (MaxSim).

Attribute names (``audio_encoder``, ``projector``, ``pooler``, ``logit_scale``)
follow the released checkpoint's ``model_state_dict`` so it loads as is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pad_sequence


def output_lengths(feature_lens: torch.Tensor, n_window: int) -> torch.Tensor:
    """Encoder frames per input for ``feature_lens`` mel frames (the encoder's own formula)."""
    from transformers.models.qwen3_omni_moe.modeling_qwen3_omni_moe import (
        _get_feat_extract_output_lengths,
    )

    return _get_feat_extract_output_lengths(feature_lens, n_window)


def split_flat(flat: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat ``(ΣT', d)`` encoder output → padded ``(B, T'max, d)`` and mask ``(B, T'max)``."""
    sizes = [int(n) for n in lengths.tolist()]
    if sum(sizes) != flat.shape[0]:
        raise ValueError(
            f"encoder returned {flat.shape[0]} frames, expected {sum(sizes)} for lengths {sizes}"
        )
    padded = pad_sequence(list(torch.split(flat, sizes, dim=0)), batch_first=True)
    mask = (
        torch.arange(padded.shape[1], device=flat.device)[None, :]
        < lengths.to(flat.device)[:, None]
    )
    return padded, mask


class AttentionPooling(nn.Module):
    """Softmax-weighted mean of the valid frames; a small MLP scores each frame.

    The release's ``AttentivePooling``: ``attention`` = Linear(d, d/2) → tanh →
    Linear(d/2, 1), so a checkpoint's ``pooler.attention.{0,2}.*`` keys load
    as they are. Padding never matters: padded frames get zero weight *and* are
    zeroed before the weighted sum (so even non-finite padding cannot leak in),
    and without positional input the result does not depend on frame order.
    (The release's other pooler, ``transformer``, is not implemented; loading
    such a checkpoint names its ``pooler.query`` key.)
    """

    def __init__(self, dim: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or max(1, dim // 2)
        self.attention = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        keep = mask.unsqueeze(-1)
        frames = frames.masked_fill(~keep, 0.0)
        logits = self.attention(frames).squeeze(-1).float().masked_fill(~mask, float("-inf"))
        weights = torch.softmax(logits, dim=-1)
        # An input without valid frames gets a zero vector, not NaN.
        weights = torch.nan_to_num(weights, nan=0.0).to(frames.dtype)
        return torch.einsum("bt,btd->bd", weights, frames)


def multiscale_pool(
    frames: torch.Tensor, lengths: torch.Tensor, windows: Sequence[int], stride: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Average pooling over sub-windows of every size in ``windows`` (frames) at ``stride``.

    For each size ``w``: sub-windows ``[p·stride, p·stride + w)`` that fit in
    the input's valid frames; an input shorter than (or as long as) ``w`` gets
    one sub-window, its whole length. Which sub-windows exist depends only on
    the input's own length, never on the batch it ran in.

    Returns ``(B, S, d)`` means (float32, not normalised) and a validity mask
    ``(B, S)``; the slot layout is the concatenation over ``windows``.
    """
    b, t, d = frames.shape
    device = frames.device
    lengths = lengths.to(device)
    valid_frames = torch.arange(t, device=device)[None, :] < lengths[:, None]
    x = frames.float().masked_fill(~valid_frames.unsqueeze(-1), 0.0)
    # Prefix sums give every sub-window mean in O(1); float32 keeps them exact enough.
    csum = torch.cat([x.new_zeros(b, 1, d), x.cumsum(dim=1)], dim=1)  # (B, T+1, d)
    means: list[torch.Tensor] = []
    masks: list[torch.Tensor] = []
    for w in windows:
        n = max(1, (t - w) // stride + 1)
        starts = torch.arange(n, device=device) * stride  # (n,)
        whole = (lengths <= w)[:, None]  # (B, 1): the input fits in one sub-window
        s = torch.where(whole, torch.zeros_like(starts)[None, :], starts[None, :])
        e = torch.where(whole, lengths[:, None].expand(b, n), (starts + w)[None, :].expand(b, n))
        e = e.clamp(max=t)
        valid = torch.where(
            whole,
            (torch.arange(n, device=device) == 0)[None, :],
            (starts + w)[None, :] <= lengths[:, None],
        )
        idx_e = e.unsqueeze(-1).expand(b, n, d)
        idx_s = s.unsqueeze(-1).expand(b, n, d)
        sums = torch.gather(csum, 1, idx_e) - torch.gather(csum, 1, idx_s)
        count = (e - s).clamp(min=1).unsqueeze(-1).to(sums.dtype)
        means.append(sums / count)
        masks.append(valid & (lengths > 0)[:, None])
    return torch.cat(means, dim=1), torch.cat(masks, dim=1)


def subwindow_frames(
    length: int, windows: Sequence[int], stride: int
) -> tuple[list[int], list[int]]:
    """Frame ranges ``[start, end)`` of an input's valid sub-windows, in pooling order.

    The order of :func:`multiscale_pool`'s valid slots for an input of ``length``
    frames (and of the release's ``_multiscale_pool``): for each size ``w``, one
    whole-input sub-window when ``length <= w``, else ``[p·stride, p·stride + w)``
    for every ``p`` that fits.
    """
    starts: list[int] = []
    ends: list[int] = []
    if length <= 0:
        return starts, ends
    for w in windows:
        if length <= w:
            starts.append(0)
            ends.append(length)
            continue
        for p in range((length - w) // stride + 1):
            starts.append(p * stride)
            ends.append(p * stride + w)
    return starts, ends


def maxsim_scores(sub: torch.Tensor, valid: torch.Tensor, terms: torch.Tensor) -> torch.Tensor:
    """``(B, N)``: per input, each term's best cosine over the input's valid sub-windows."""
    sims = torch.einsum("bsd,nd->bsn", sub.float(), terms.float())
    sims = sims.masked_fill(~valid.unsqueeze(-1), float("-inf"))
    return sims.max(dim=1).values


@dataclass(frozen=True, slots=True)
class SpeechEmbeddings:
    """One vector per input (``valid`` None) or sub-window vectors with their mask."""

    vectors: torch.Tensor  # (B, d) or (B, S, d), float32, L2-normalised
    valid: torch.Tensor | None = None  # (B, S) for maxsim

    def scores(self, terms: torch.Tensor) -> torch.Tensor:
        """``(B, N)`` cosine (attention) or MaxSim (maxsim) scores against unit term vectors."""
        if self.valid is None:
            return self.vectors.float() @ terms.float().T
        return maxsim_scores(self.vectors, self.valid, terms)


class SpeechTower(nn.Module):
    def __init__(
        self,
        audio_encoder: nn.Module,
        audio_dim: int,
        target_dim: int,
        n_window: int,
        pooling: str = "maxsim",
        maxsim_windows: Sequence[int] = (24,),
        maxsim_stride: int = 2,
        temperature: float = 0.07,
    ) -> None:
        super().__init__()
        if pooling not in ("attention", "maxsim"):
            raise ValueError(f"unknown pooling {pooling!r}")
        self.audio_encoder = audio_encoder
        self.pooling = pooling
        self.n_window = n_window
        self.maxsim_windows = tuple(maxsim_windows)
        self.maxsim_stride = maxsim_stride
        if pooling == "attention":
            self.pooler = AttentionPooling(audio_dim)
        self.projector = nn.Linear(audio_dim, target_dim)
        # A buffer, as in the release (temperature fixed during training).
        self.register_buffer("logit_scale", torch.tensor(math.log(1.0 / temperature)))

    def frames(
        self, features: torch.Tensor, feature_lens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encoder frames ``(B, T', d)``, their mask and lengths, from flat features."""
        if features.ndim != 2 or features.shape[1] != int(feature_lens.sum()):
            raise ValueError("features must be (n_mels, ΣT) with ΣT = feature_lens.sum()")
        flat = self.audio_encoder(features, feature_lens).last_hidden_state
        lengths = output_lengths(feature_lens, self.n_window)
        padded, mask = split_flat(flat, lengths)
        return padded, mask, lengths.to(padded.device)

    def forward(self, features: torch.Tensor, feature_lens: torch.Tensor) -> SpeechEmbeddings:
        hidden, mask, lengths = self.frames(features, feature_lens)
        return self.pool(hidden, mask, lengths)

    def pool(
        self, hidden: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor
    ) -> SpeechEmbeddings:
        if self.pooling == "attention":
            pooled = self.pooler(hidden, mask)
            return SpeechEmbeddings(F.normalize(self.projector(pooled).float(), dim=-1))
        projected = self.projector(hidden)
        sub, valid = multiscale_pool(projected, lengths, self.maxsim_windows, self.maxsim_stride)
        return SpeechEmbeddings(F.normalize(sub, dim=-1), valid)

    def mean_vectors(
        self, hidden: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor
    ) -> torch.Tensor:
        """``(B, d)``: the projected mean over each input's frames (maxsim's single-vector view)."""
        projected = self.projector(hidden).float().masked_fill(~mask.unsqueeze(-1), 0.0)
        mean = projected.sum(dim=1) / lengths.clamp(min=1).unsqueeze(-1).to(projected.dtype)
        return F.normalize(mean, dim=-1)


def flatten_features(mels: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-input ``(128, T_i)`` features → flat ``(128, ΣT)`` and ``feature_lens`` ``(B,)``."""
    if not mels:
        raise ValueError("no inputs")
    lens = torch.tensor([m.shape[-1] for m in mels], dtype=torch.long)
    return torch.cat(list(mels), dim=-1), lens
