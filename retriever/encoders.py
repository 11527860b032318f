"""Encoder interfaces: speech windows and glossary terms into one vector space.

Two families implement them: the paper's neural dual encoder (Qwen3-Omni audio
encoder + BGE-M3, its own issue) and the embedded phonetic encoder
(:mod:`retriever.phonetic`). Everything downstream — the FAISS term index, the
aggregation — sees only these protocols, so the two are interchangeable.

Speech is encoded through a per-stream object because both encoders are
streaming by nature: audio frames are processed once as they arrive (mel
frames + transformer states, or phone decoding) and windows are pooled from
what was already computed. Re-encoding the window history per chunk is what
the split avoids.

All vectors are float32, L2-normalised (the index uses inner product, so the
score is a cosine), shape ``(n, dim)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from retriever.windows import Window


@dataclass(frozen=True, slots=True)
class TermVectors:
    """Vectors of a list of terms; a term may have several (pronunciation variants).

    ``owners[i]`` is the position, in the encoded term list, of the term that
    row ``i`` of ``vectors`` belongs to. Every term has at least one row.
    """

    vectors: np.ndarray  # (m, dim) float32, L2-normalised
    owners: np.ndarray  # (m,) int64

    def __post_init__(self) -> None:
        if self.vectors.ndim != 2 or self.owners.shape != (self.vectors.shape[0],):
            raise ValueError("vectors must be (m, dim) and owners (m,)")


@runtime_checkable
class SpeechStream(Protocol):
    """One stream's encoder state. Not thread-safe: one caller at a time."""

    def push(self, pcm: np.ndarray) -> None:
        """Consume the next int16 16 kHz samples of the stream (each sample once)."""
        ...

    def encode(self, windows: Sequence[Window]) -> np.ndarray:
        """Vectors ``(len(windows), dim)`` for windows inside the audio pushed so far."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class WindowVectors:
    """Several vectors per window (a multi-vector encoder's sub-windows).

    ``owners[i]`` is the position, in the encoded window list, of the window
    that row ``i`` belongs to. A window's score for a term is its best row
    (MaxSim); a window may have no rows (then it matches nothing).
    """

    vectors: np.ndarray  # (m, dim) float32, L2-normalised
    owners: np.ndarray  # (m,) int64, non-decreasing

    def __post_init__(self) -> None:
        if self.vectors.ndim != 2 or self.owners.shape != (self.vectors.shape[0],):
            raise ValueError("vectors must be (m, dim) and owners (m,)")


@runtime_checkable
class MultiVectorSpeechStream(SpeechStream, Protocol):
    """A stream that can also give several vectors per window (MaxSim).

    ``encode`` still returns one vector per window, so every consumer of
    :class:`SpeechStream` keeps working (with a coarser score); a consumer that
    knows this protocol searches all rows and keeps each term's best score
    per window (:func:`retriever.neural.search.search_grouped`).
    """

    def encode_multi(self, windows: Sequence[Window]) -> WindowVectors: ...


@dataclass(frozen=True, slots=True)
class SpanVectors:
    """A chunk's sub-window evidence from one encoding of its span.

    ``windows`` are the sub-windows' sample spans on the stream's timeline;
    ``vectors.owners[i]`` indexes ``windows`` (sub-windows that land on the same
    span share a window, which scores its best row).
    """

    windows: list[Window]
    vectors: WindowVectors


@runtime_checkable
class SpanSpeechStream(SpeechStream, Protocol):
    """A stream that encodes a chunk's whole span once (the release's serving path).

    ``encode_span(start, end)`` encodes ``[start − lookback, end)`` in one pass
    and returns the sub-windows that reach into the chunk ``[start, end)``; the
    chunk retriever then scores those instead of scheduling 1.92 s windows.
    """

    def encode_span(self, start: int, end: int) -> SpanVectors: ...


@runtime_checkable
class SpeechEncoder(Protocol):
    """Long-lived, shared: opens per-stream encoders."""

    @property
    def encoder_id(self) -> str:
        """Names the model and its vector space; part of the index cache key."""
        ...

    @property
    def dim(self) -> int: ...

    def open_stream(self) -> SpeechStream: ...


@runtime_checkable
class TermEncoder(Protocol):
    """Encodes glossary source terms into the speech encoder's space."""

    @property
    def encoder_id(self) -> str:
        """Must equal the paired :class:`SpeechEncoder`'s id."""
        ...

    @property
    def dim(self) -> int: ...

    def encode_terms(self, terms: Sequence[str]) -> TermVectors:
        """Blocking (may run a model); call it off the event loop."""
        ...


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as contiguous float32."""
    out = np.array(vectors, dtype=np.float32, order="C", copy=True)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.divide(out, norms, out=out, where=norms > 0)
    return out
