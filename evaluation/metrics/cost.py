"""Cost of a run: retrieval time against chunk duration, gateway computation per chunk, lag."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def distribution(values: Sequence[float]) -> dict[str, float | None]:
    """p50 / p95 / mean / max, or all None for no values (never NaN: JSON has no NaN)."""
    if not values:
        return {"p50": None, "p95": None, "mean": None, "max": None, "n": 0}
    array = np.asarray(values, dtype=float)
    return {
        "p50": round(float(np.percentile(array, 50)), 3),
        "p95": round(float(np.percentile(array, 95)), 3),
        "mean": round(float(array.mean()), 3),
        "max": round(float(array.max()), 3),
        "n": int(array.size),
    }


def cost_summary(
    retrieval_ms: Sequence[float],
    processing_ms: Sequence[float],
    latency_ms: Sequence[float],
    lag_seconds: Sequence[float],
    chunk_seconds: float,
    audio_seconds: float,
    wall_seconds: float,
) -> dict[str, Any]:
    """``overhead_ratio``: median retrieval time per call / chunk duration (the paper's figure)."""
    chunk_ms = chunk_seconds * 1000
    retrieval = distribution(retrieval_ms)
    return {
        "chunk_seconds": chunk_seconds,
        "retrieval_ms": retrieval,
        "overhead_ratio": (
            round(retrieval["p50"] / chunk_ms, 5) if retrieval["p50"] is not None else None
        ),
        "overhead_ratio_mean": (
            round(retrieval["mean"] / chunk_ms, 5) if retrieval["mean"] is not None else None
        ),
        "processing_ms": distribution(processing_ms),
        "processing_ratio": (
            round(float(np.median(processing_ms)) / chunk_ms, 5) if processing_ms else None
        ),
        "latency_ms": distribution(latency_ms),
        "lag_seconds": distribution(lag_seconds),
        "audio_seconds": round(audio_seconds, 3),
        "wall_seconds": round(wall_seconds, 3),
        "speed": round(audio_seconds / wall_seconds, 3) if wall_seconds > 0 else None,
    }
