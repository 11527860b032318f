"""Small builders shared by the retriever tests."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from glossary.model import GlossaryEntry, GlossarySnapshot
from retriever.encoders import TermVectors, l2_normalise


def snapshot(
    terms: Sequence[str],
    gid: str = "g",
    version: int = 1,
    langs: Sequence[str] = ("de",),
) -> GlossarySnapshot:
    entries = tuple(GlossaryEntry(t, {lang: (f"{t}-{lang}",) for lang in langs}) for t in terms)
    return GlossarySnapshot(gid, version, "tenant", "test", "en", entries)


class HashTermEncoder:
    """Deterministic random unit vector per term (seeded by the text)."""

    def __init__(self, dim: int = 32, variants: int = 1) -> None:
        self._dim = dim
        self._variants = variants

    @property
    def encoder_id(self) -> str:
        return f"hash-d{self._dim}"

    @property
    def dim(self) -> int:
        return self._dim

    def vector(self, term: str, variant: int = 0) -> np.ndarray:
        seed = abs(hash((term, variant))) % 2**32
        return l2_normalise(np.random.default_rng(seed).standard_normal((1, self._dim)))[0]

    def encode_terms(self, terms: Sequence[str]) -> TermVectors:
        rows = [self.vector(t, v) for t in terms for v in range(self._variants)]
        owners = np.repeat(np.arange(len(terms)), self._variants)
        if not rows:
            return TermVectors(np.zeros((0, self._dim), np.float32), owners.astype(np.int64))
        return TermVectors(np.stack(rows), owners.astype(np.int64))
