"""Reading recordings as the pipeline sees them: 16 kHz mono int16."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from server.frames import PIPELINE_RATE


def load_pcm(path: Path) -> np.ndarray:
    """A 16-bit PCM WAV as 16 kHz mono int16 (channels averaged, resampled with soxr HQ)."""
    with wave.open(str(path), "rb") as wav:
        rate, channels, width = wav.getframerate(), wav.getnchannels(), wav.getsampwidth()
        data = wav.readframes(wav.getnframes())
    if width != 2:
        raise ValueError(f"{path}: only 16-bit PCM WAV is supported (sample width {width})")
    samples = np.frombuffer(data, dtype="<i2")
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1).round().astype(np.int16)
    if rate != PIPELINE_RATE:
        import soxr

        samples = soxr.resample(samples, rate, PIPELINE_RATE, quality="HQ").astype(np.int16)
    return np.ascontiguousarray(samples, dtype=np.int16)
