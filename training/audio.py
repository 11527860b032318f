"""Reading recordings as the pipeline sees them: 16 kHz mono int16."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kernel.frames import PIPELINE_RATE
from server.client import read_wav


def load_pcm(path: Path) -> np.ndarray:
    """A 16-bit PCM WAV as 16 kHz mono int16 (the client's reader, then soxr HQ to 16 kHz)."""
    rate, samples = read_wav(path)
    if rate != PIPELINE_RATE:
        import soxr

        samples = soxr.resample(samples, rate, PIPELINE_RATE, quality="HQ").astype(np.int16)
    return np.ascontiguousarray(samples, dtype=np.int16)
