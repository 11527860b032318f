"""What a stream has done: samples in and out, latencies, lag, event counts.

It feeds ``chunk.done`` (lag) and the closing ``session.summary``; the session owns one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from kernel.frames import seconds
from server.protocol import LatencyStats, SessionSummary


@dataclass
class StreamAccounting:
    # In pipeline-rate samples.
    received_samples: int = 0
    done_samples: int = 0
    speech_samples: int = 0
    chunks_done: int = 0
    latencies: list[float] = field(default_factory=list)
    max_lag: float = 0.0
    captions: int = 0
    term_hits: int = 0
    commits: int = 0
    warnings: int = 0
    errors: int = 0
    opened_at: float = field(default_factory=time.monotonic)

    @property
    def backlog_seconds(self) -> float:
        """Audio received but not through the pipeline yet."""
        return seconds(self.received_samples - self.done_samples)

    def chunk_done(self, end_sample: int, latency: float) -> float:
        """Count a finished chunk; returns the lag behind the audio received, in seconds."""
        self.done_samples = end_sample
        self.chunks_done += 1
        lag = max(0.0, self.backlog_seconds)
        self.latencies.append(latency)
        self.max_lag = max(self.max_lag, lag)
        return lag

    def summary(self, session_id: str, reason: str) -> SessionSummary:
        latencies = np.asarray(self.latencies or [0.0]) * 1000
        return SessionSummary(
            session_id=session_id,
            reason=reason,  # type: ignore[arg-type]
            chunks=self.chunks_done,
            audio_seconds=seconds(self.received_samples),
            speech_seconds=seconds(self.speech_samples),
            captions=self.captions,
            term_hits=self.term_hits,
            commits=self.commits,
            warnings=self.warnings,
            errors=self.errors,
            latency_ms=LatencyStats(
                p50=round(float(np.percentile(latencies, 50)), 2),
                p95=round(float(np.percentile(latencies, 95)), 2),
                max=round(float(latencies.max()), 2),
            ),
            max_lag_seconds=round(self.max_lag, 3),
            wall_seconds=round(time.monotonic() - self.opened_at, 3),
        )
