"""Whisper log-mel features (128 bins, 16 kHz, 10 ms hop) for the Qwen3-Omni audio encoder.

The feature extractor is built from its parameters rather than
``from_pretrained`` (which needs the hub, and the Qwen processor fails offline).
It is always called with ``padding=False``: by default it pads every input to
30 s, which would multiply the encoder's work by 15 for a 1.92 s window.

Whisper's normalisation clamps each input at (its own maximum − 8) in log
space, so a window's features depend on the whole window: features are
computed per window, never sliced out of a longer stream's features.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

SAMPLE_RATE = 16_000
N_MELS = 128
HOP_LENGTH = 160
N_FFT = 400


def n_mel_frames(n_samples: int) -> int:
    """Mel frames Whisper's extractor yields for ``n_samples`` (the STFT's last frame is dropped)."""
    return n_samples // HOP_LENGTH


def build_feature_extractor() -> Any:
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(
        feature_size=N_MELS,
        sampling_rate=SAMPLE_RATE,
        hop_length=HOP_LENGTH,
        chunk_length=30,
        n_fft=N_FFT,
    )


class LogMelFrontend:
    """Float waveforms → ``(128, T)`` log-mel tensors; inputs of equal length in one call."""

    def __init__(self, device: str = "cpu") -> None:
        self._extractor = build_feature_extractor()
        # The extractor's torch path runs the STFT on this device (a GPU when serving).
        self._device = device

    def __call__(self, waveforms: Sequence[np.ndarray]) -> list[torch.Tensor]:
        """One ``(128, len // 160)`` float32 tensor per waveform (float32 in [-1, 1])."""
        out: list[torch.Tensor | None] = [None] * len(waveforms)
        by_length: dict[int, list[int]] = {}
        for i, wave in enumerate(waveforms):
            if wave.ndim != 1 or len(wave) < N_FFT:
                raise ValueError(f"waveform {i} must be 1-D with at least {N_FFT} samples")
            by_length.setdefault(len(wave), []).append(i)
        # The extractor rejects a list of unequal lengths when padding is off,
        # so equal lengths (the common case: full 1.92 s windows) share a call.
        for positions in by_length.values():
            feats = self._extractor(
                [np.asarray(waveforms[i], dtype=np.float32) for i in positions],
                sampling_rate=SAMPLE_RATE,
                padding=False,
                return_tensors="pt",
                device=self._device,
            )["input_features"]
            for row, i in enumerate(positions):
                out[i] = feats[row]
        return [t for t in out if t is not None]


def pcm16_to_float(pcm: np.ndarray) -> np.ndarray:
    return (np.asarray(pcm, dtype=np.float32) / 32768.0).astype(np.float32, copy=False)
