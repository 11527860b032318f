"""Silero VAD (v6, ONNX) with the model shared and the state per stream.

One :class:`SileroVad` per worker process holds the ONNX session (read-only);
each session's :class:`VadStream` is its recurrent state and 64 samples of
context — two small arrays, freed with the session. (A VAD object per session
that loads its own copy of the model held ~2.5 MB each and, in the ggml
build measured, never gave it back: waves of short sessions grew a worker
without bound.)

The model file ships in the faster-whisper wheel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

FRAME = 512  # samples at 16 kHz per call (32 ms)
_CONTEXT = 64


def model_path() -> Path:
    from importlib.resources import files

    return Path(str(files("faster_whisper") / "assets" / "silero_vad_v6.onnx"))


class SileroVad:
    """The VAD model, loaded once (one thread); ``stream()`` per audio stream."""

    def __init__(self, path: Path | None = None) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = 1
        options.enable_cpu_mem_arena = False
        options.log_severity_level = 4
        self._session = onnxruntime.InferenceSession(
            str(path or model_path()), providers=["CPUExecutionProvider"], sess_options=options
        )

    def stream(self) -> VadStream:
        return VadStream(self._session)


class VadStream:
    """Speech probability of consecutive 32 ms frames of one stream."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._input = np.zeros((1, _CONTEXT + FRAME), dtype=np.float32)

    def probability(self, frame: np.ndarray) -> float:
        """``frame``: 512 int16 samples; the probability that it holds speech."""
        buffer = self._input
        buffer[0, :_CONTEXT] = buffer[0, -_CONTEXT:]
        buffer[0, _CONTEXT:] = frame.astype(np.float32) / 32768.0
        out, self._h, self._c = self._session.run(
            None, {"input": buffer, "h": self._h, "c": self._c}
        )
        return float(np.asarray(out).reshape(-1)[0])
