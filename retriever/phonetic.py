"""The embedded encoder: phone sequences → vectors, and phone-level re-scoring.

Speech side: the pronunciations of the words Whisper recognised
(:mod:`retriever.word_evidence`); term side: dictionary / letter-to-sound
pronunciations (:mod:`retriever.pronounce`).
Both become hashed bags of phone n-grams (1–3-grams of phones, 2–3-grams of
coarse phone classes so a substituted vowel still shares features), weighted,
L2-normalised. The cosine of those bags is only a candidate generator: a
window holds ~25 noisy phones and a term 3–20, so the FAISS top-C candidates
per window are re-scored by a phone alignment (:func:`rescore_batch`): the
cheapest way to find the whole term inside the window, with substitution costs
from phone similarity classes.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from retriever.encoders import TermVectors, l2_normalise
from retriever.ngram_batch import ngram_matrix
from retriever.pronounce import pronunciations

PHONES: tuple[str, ...] = (
    "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G",
    "HH", "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T",
    "TH", "UH", "UW", "V", "W", "Y", "Z", "ZH",
)  # fmt: skip
PHONE_ID: dict[str, int] = {p: i for i, p in enumerate(PHONES)}

# Close confusions of the allphone decoder: a substitution inside a group is cheap.
_GROUPS: tuple[tuple[str, ...], ...] = (
    ("IY", "IH", "EY"), ("EH", "AE", "AH"), ("AA", "AO", "AH", "AW"), ("UW", "UH", "OW"),
    ("AY", "OY", "AA"), ("ER", "R"), ("P", "B"), ("T", "D"), ("K", "G"), ("F", "V"),
    ("TH", "DH", "T", "D"), ("S", "Z"), ("SH", "ZH", "CH", "JH"), ("M", "N", "NG"),
    ("L", "R", "W"), ("W", "UW"), ("Y", "IY"), ("HH",),
)  # fmt: skip
# Broad classes: vowels, stops, fricatives/affricates, nasals, approximants.
_CLASS: dict[str, str] = {
    **dict.fromkeys(
        ["AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"],
        "V",
    ),
    **dict.fromkeys(["P", "B", "T", "D", "K", "G"], "S"),
    **dict.fromkeys(["F", "V", "TH", "DH", "S", "Z", "SH", "ZH", "HH", "CH", "JH"], "F"),
    **dict.fromkeys(["M", "N", "NG"], "N"),
    **dict.fromkeys(["L", "R", "W", "Y"], "A"),
}

SUB_SAME_GROUP = 0.35
SUB_SAME_CLASS = 0.75
SUB_OTHER = 1.0
DEL_COST = 0.9  # a term phone the decoder missed
INS_COST = 0.6  # an extra decoded phone inside the term's span (allphone inserts a lot)
SCORE_PRIOR = 1.5  # pseudo-cost: a 2-phone term matched perfectly is weak evidence


def _substitution_matrix() -> np.ndarray:
    n = len(PHONES)
    cost = np.full((n, n), SUB_OTHER, dtype=np.float32)
    for a in PHONES:
        for b in PHONES:
            if _CLASS[a] == _CLASS[b]:
                cost[PHONE_ID[a], PHONE_ID[b]] = SUB_SAME_CLASS
    for group in _GROUPS:
        for a in group:
            for b in group:
                cost[PHONE_ID[a], PHONE_ID[b]] = min(cost[PHONE_ID[a], PHONE_ID[b]], SUB_SAME_GROUP)
    np.fill_diagonal(cost, 0.0)
    return cost


SUBSTITUTION = _substitution_matrix()  # 39 × 39 floats: trivial to build at import


def _variant_ids(phones: Sequence[str]) -> np.ndarray:
    # pronunciations() already strips stress marks.
    return np.fromiter((PHONE_ID[p] for p in phones if p in PHONE_ID), dtype=np.int64)


def term_sequences(terms: Sequence[str], first: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """Phone ids of every pronunciation variant of ``terms``, and each variant's term.

    A term without any pronunciation gets one empty variant (every term has a row).
    """
    sequences: list[np.ndarray] = []
    owners: list[int] = []
    for i, term in enumerate(terms, first):
        for phones in pronunciations(term) or ((),):
            sequences.append(_variant_ids(phones))
            owners.append(i)
    return sequences, np.asarray(owners, dtype=np.int64)


def phone_ids(phones: Sequence[str]) -> np.ndarray:
    """Ids of the known phones (silence, noise and stress marks dropped)."""
    ids = [PHONE_ID[p.rstrip("012")] for p in phones if p.rstrip("012") in PHONE_ID]
    return np.asarray(ids, dtype=np.int64)


# -- vectors -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NgramParams:
    dim: int = 512
    weights: tuple[float, float, float] = (0.4, 1.0, 1.4)  # phone 1-, 2-, 3-grams
    class_weights: tuple[float, float] = (0.5, 0.7)  # coarse-class 2-, 3-grams


def _bucket(feature: str, dim: int) -> int:
    # crc32 is stable across processes (Python's hash() is salted per process).
    return zlib.crc32(feature.encode()) % dim


def ngram_vector(phones: Sequence[str], params: NgramParams) -> np.ndarray:
    """Unnormalised hashed bag of phone and phone-class n-grams."""
    vec = np.zeros(params.dim, dtype=np.float32)
    seq = [p.rstrip("012") for p in phones if p.rstrip("012") in PHONE_ID]
    classes = [_CLASS[p] for p in seq]
    for n, weight in zip((1, 2, 3), params.weights, strict=True):
        for i in range(len(seq) - n + 1):
            vec[_bucket("p:" + " ".join(seq[i : i + n]), params.dim)] += weight
    for n, weight in zip((2, 3), params.class_weights, strict=True):
        for i in range(len(classes) - n + 1):
            vec[_bucket("c:" + "".join(classes[i : i + n]), params.dim)] += weight
    return vec


class PhoneticTermEncoder:
    """Glossary terms → n-gram vectors of each pronunciation variant."""

    def __init__(self, params: NgramParams | None = None) -> None:
        self.params = params or NgramParams()

    @property
    def encoder_id(self) -> str:
        p = self.params
        return f"phonetic-ngram-v1-d{p.dim}"

    @property
    def dim(self) -> int:
        return self.params.dim

    def encode_terms(self, terms: Sequence[str]) -> TermVectors:
        parts = list(self.encode_terms_batches(terms))
        if not parts:
            return TermVectors(np.zeros((0, self.dim), np.float32), np.zeros(0, np.int64))
        return TermVectors(
            np.concatenate([p.vectors for p in parts]), np.concatenate([p.owners for p in parts])
        )

    def encode_terms_batches(
        self, terms: Sequence[str], batch: int = 2048
    ) -> Iterator[TermVectors]:
        """The vectors of ``terms`` in slices of ``batch`` terms (owners count from 0 overall).

        A million terms are ~2.5 GB of float32 vectors at once; in slices an index
        build adds each and drops it (IVF-PQ keeps 64 bytes a vector).
        """
        p = self.params
        for start in range(0, len(terms), batch):
            sequences, owners = term_sequences(terms[start : start + batch], start)
            matrix = ngram_matrix(sequences, p.dim, p.weights, p.class_weights)
            yield TermVectors(l2_normalise(matrix), owners)

    def encode_phone_sequences(self, sequences: Sequence[Sequence[str]]) -> np.ndarray:
        """Query vectors for decoded phone sequences (one per window)."""
        if not sequences:
            return np.zeros((0, self.dim), np.float32)
        p = self.params
        matrix = ngram_matrix([phone_ids(s) for s in sequences], p.dim, p.weights, p.class_weights)
        return l2_normalise(matrix)


def term_phone_ids(term: str) -> list[np.ndarray]:
    """Phone-id arrays of a term's pronunciation variants (for re-scoring)."""
    return [ids for v in pronunciations(term) if len(ids := phone_ids(v))]


# -- re-scoring ----------------------------------------------------------------


def rescore_batch(query: np.ndarray, terms: Sequence[np.ndarray]) -> np.ndarray:
    """Alignment score in [0, 1] of each term (phone ids) found inside ``query``.

    Semi-global alignment: the whole term must align, the window's phones before
    and after it are free. Cost = substitutions (by phone similarity) + missed
    term phones + extra window phones inside the span; score = 1 −
    (cost + prior) / (term length + prior), so a longer term matched equally well
    scores higher than a short one (short matches happen by chance).

    One numpy pass per term position over all terms and window positions: the
    in-row insertion chain is a running minimum (``D[j] = j·ins + cummin(A[k] − k·ins)``),
    so there is no Python loop over the window.
    """
    n_terms = len(terms)
    scores = np.zeros(n_terms, dtype=np.float32)
    if n_terms == 0:
        return scores
    lengths = np.array([len(t) for t in terms], dtype=np.int64)
    n = int(query.shape[0])
    if n == 0:
        return scores
    m_max = int(lengths.max())
    padded = np.zeros((n_terms, m_max), dtype=np.int64)
    for i, t in enumerate(terms):
        padded[i, : len(t)] = t
    positions = np.arange(n + 1, dtype=np.float32) * INS_COST
    # D[c, j]: cost of aligning the first i term phones, ending at window position j.
    prev = np.zeros((n_terms, n + 1), dtype=np.float32)  # free start anywhere
    best_cost = np.full(n_terms, np.inf, dtype=np.float32)
    for i in range(m_max):
        sub = SUBSTITUTION[padded[:, i][:, None], query[None, :]]  # (C, n)
        a = np.empty_like(prev)
        a[:, 0] = prev[:, 0] + DEL_COST
        a[:, 1:] = np.minimum(prev[:, :-1] + sub, prev[:, 1:] + DEL_COST)
        row = np.minimum.accumulate(a - positions, axis=1) + positions
        done = lengths == i + 1
        if done.any():
            best_cost[done] = row[done].min(axis=1)
        prev = row
    m = lengths.astype(np.float32)
    raw = 1.0 - (best_cost + SCORE_PRIOR) / (m + SCORE_PRIOR)
    raw[lengths == 0] = 0.0
    return np.clip(raw, 0.0, 1.0).astype(np.float32)


def rescore(query_phones: Sequence[str], term_phones: Sequence[str]) -> float:
    """Alignment score of one term pronunciation inside a decoded phone sequence."""
    term = phone_ids(term_phones)
    if len(term) == 0:
        return 0.0
    return float(rescore_batch(phone_ids(query_phones), [term])[0])


def rescore_terms(query: np.ndarray, variants: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
    """Best score over each term's variants (``variants[i]`` = term i's phone-id arrays)."""
    flat: list[np.ndarray] = []
    owner: list[int] = []
    for i, vs in enumerate(variants):
        for v in vs:
            flat.append(v)
            owner.append(i)
    out = np.zeros(len(variants), dtype=np.float32)
    if flat:
        np.maximum.at(out, np.asarray(owner), rescore_batch(query, flat))
    return out
