"""Batched phone n-gram vectors: the same vectors as :func:`retriever.phonetic.ngram_vector`, fast.

Encoding one term at a time hashed every n-gram string with crc32 in Python: ~100 µs a term,
so 100k terms took ~10 s and a million ~100 s before the index could even start. Every
possible feature is known in advance (39 phones: 39³ trigrams; 5 coarse classes), so the
crc32 buckets are computed once into lookup tables, and a whole batch of phone-id sequences
becomes one ``np.bincount`` over ``row * dim + bucket``. The vectors are bit-for-bit the
same features and weights, so indexes cached by the old encoder stay valid.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Sequence

import numpy as np

_N_CLASSES = 5


@functools.cache
def _tables(dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from retriever.phonetic import PHONES

    n = len(PHONES)

    def bucket(feature: str) -> int:
        # crc32, like phonetic._bucket: stable across processes.
        return zlib.crc32(feature.encode()) % dim

    uni = np.array([bucket("p:" + a) for a in PHONES], dtype=np.int64)
    bi = np.array([bucket(f"p:{a} {b}") for a in PHONES for b in PHONES], dtype=np.int64)
    tri = np.array(
        [bucket(f"p:{a} {b} {c}") for a in PHONES for b in PHONES for c in PHONES],
        dtype=np.int64,
    )
    names = "VSFNA"
    c2 = np.array([bucket(f"c:{a}{b}") for a in names for b in names], dtype=np.int64)
    c3 = np.array([bucket(f"c:{a}{b}{c}") for a in names for b in names for c in names])
    assert len(uni) == n
    return uni, bi, tri, c2, c3.astype(np.int64)


@functools.cache
def _phone_class() -> np.ndarray:
    from retriever.phonetic import _CLASS, PHONES

    return np.array(["VSFNA".index(_CLASS[p]) for p in PHONES], dtype=np.int64)


def ngram_matrix(
    sequences: Sequence[np.ndarray],
    dim: int,
    weights: tuple[float, float, float],
    class_weights: tuple[float, float],
) -> np.ndarray:
    """Unnormalised ``(len(sequences), dim)`` float32 n-gram bags of phone-id sequences."""
    n_rows = len(sequences)
    if n_rows == 0:
        return np.zeros((0, dim), dtype=np.float32)
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=n_rows)
    flat = (
        np.concatenate([np.asarray(s, dtype=np.int64) for s in sequences])
        if lengths.sum()
        else np.zeros(0, dtype=np.int64)
    )
    row = np.repeat(np.arange(n_rows, dtype=np.int64), lengths)
    # Positions left in the sequence from each phone on (1 = the last phone).
    ends = np.cumsum(lengths)
    left = np.repeat(ends, lengths) - np.arange(len(flat), dtype=np.int64)
    uni, bi, tri, c2, c3 = _tables(dim)
    cls = _phone_class()[flat] if len(flat) else flat
    n_ph = 39
    keys: list[np.ndarray] = []
    vals: list[np.ndarray] = []

    def add(mask: np.ndarray, buckets: np.ndarray, weight: float) -> None:
        keys.append(row[mask] * dim + buckets)
        vals.append(np.full(len(buckets), weight, dtype=np.float64))

    if len(flat):
        add(np.ones(len(flat), dtype=bool), uni[flat], weights[0])
        m2 = left >= 2
        i2 = np.nonzero(m2)[0]
        add(m2, bi[flat[i2] * n_ph + flat[i2 + 1]], weights[1])
        add(m2, c2[cls[i2] * _N_CLASSES + cls[i2 + 1]], class_weights[0])
        m3 = left >= 3
        i3 = np.nonzero(m3)[0]
        add(m3, tri[(flat[i3] * n_ph + flat[i3 + 1]) * n_ph + flat[i3 + 2]], weights[2])
        add(
            m3,
            c3[(cls[i3] * _N_CLASSES + cls[i3 + 1]) * _N_CLASSES + cls[i3 + 2]],
            class_weights[1],
        )
    out = np.bincount(
        np.concatenate(keys) if keys else np.zeros(0, dtype=np.int64),
        weights=np.concatenate(vals) if vals else None,
        minlength=n_rows * dim,
    )
    return out.astype(np.float32).reshape(n_rows, dim)
