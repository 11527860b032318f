"""A phone-trigram inverted index: the phonetic encoder's index for large glossaries.

Why not HNSW or IVF (measured on 100k ACL-talk windows, docs/benchmarks.md): HNSW took
~100 s to build at 100k terms on the 2-core machine and cannot reach a million in a
minute; IVF-Flat / IVF-PQ / IVF-SQ8 built in 12–35 s but lost 9–16 points of gold
recall@10, because a window's n-gram bag holds ~25 phones and a term only a few of them,
so the term's vector is far from the window's and lies in other clusters.

Every term the retriever can report phonetically shares an exact phone trigram with the
window: at the serving τ = 0.85 the alignment score ``1 − (cost + 1.5)/(m + 1.5)`` leaves
a 3–10-phone term no substitution at all and a 20-phone term at most four, so some run of
three phones matches exactly (terms under three phones can never reach τ by sound; their
exact spelling is matched by :class:`retriever.word_evidence.TextMatcher`). So the
candidates are the terms sharing trigrams with the window, ranked by the share of their
own trigrams that were heard (then by how many): a whole term heard inside the window
ranks first, whatever else the window holds. The alignment re-scoring afterwards is
unchanged.

Building is numpy over all pronunciation variants at once (trigram codes, one sort into
posting lists): ~0.5 s per million variants after the pronunciations. Memory is the
postings (int32 per distinct trigram of a variant) plus the phones themselves (int8),
~80 MB per million terms, against ~2.5 GB for float32 n-gram vectors.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from glossary.model import GlossarySnapshot
from retriever.index import SearchResult, TermIndex, cache_meta, save_atomically, terms_digest

N_PHONES = 39
N_CODES = N_PHONES**3
KIND = "phone-trigram"
# Entries kept per wanted row before de-duplication: a well-heard row holds one entry
# per trigram of it that was heard (≤ ~20 for a long term).
_DUPLICATES = 16
_FORMAT_VERSION = 1


def trigram_codes(phones: np.ndarray) -> np.ndarray:
    """Distinct trigram codes (``a·39² + b·39 + c``) of one phone-id sequence."""
    p = np.asarray(phones, dtype=np.int64)
    if len(p) < 3:
        return np.zeros(0, dtype=np.int64)
    return np.unique((p[:-2] * N_PHONES + p[1:-1]) * N_PHONES + p[2:])


class PhoneGramIndex(TermIndex):
    """Pronunciation variants of one glossary version, searchable by phone trigrams.

    Rows are pronunciation variants (grouped by term, like :class:`TermIndex` rows);
    ``search`` over vectors is not supported: use :meth:`search_phones`.
    """

    def __init__(
        self,
        snapshot: GlossarySnapshot,
        encoder_id: str,
        phones: np.ndarray,
        offsets: np.ndarray,
        owners: np.ndarray,
    ) -> None:
        super().__init__(snapshot, encoder_id, owners, None, KIND)
        self.phones = np.ascontiguousarray(phones, dtype=np.int8)
        self.offsets = np.ascontiguousarray(offsets, dtype=np.int64)
        n_rows = len(self.offsets) - 1
        lengths = np.diff(self.offsets)
        # Trigram code at every position that starts one, with its row.
        row = np.repeat(np.arange(n_rows, dtype=np.int64), lengths)
        left = np.repeat(self.offsets[1:], lengths) - np.arange(len(self.phones), dtype=np.int64)
        starts = np.nonzero(left >= 3)[0]
        p = self.phones.astype(np.int64)
        codes = (p[starts] * N_PHONES + p[starts + 1]) * N_PHONES + p[starts + 2]
        # Posting lists: rows sorted by code (a stable sort keeps rows ascending within a
        # code, so a trigram repeated inside one variant shows as adjacent duplicates).
        order = np.argsort(codes, kind="stable")
        codes = codes[order]
        rows = row[starts][order]
        keep = np.ones(len(codes), dtype=bool)
        keep[1:] = (codes[1:] != codes[:-1]) | (rows[1:] != rows[:-1])
        self._postings = rows[keep].astype(np.int32)
        self._post_start = np.concatenate(
            [[0], np.cumsum(np.bincount(codes[keep], minlength=N_CODES))]
        ).astype(np.int64)
        # Distinct trigrams per row: the denominator of "share of the term heard".
        self._row_grams = np.bincount(self._postings, minlength=n_rows).astype(np.float32)

    @classmethod
    def from_sequences(
        cls,
        snapshot: GlossarySnapshot,
        encoder_id: str,
        sequences: Sequence[np.ndarray],
        owners: np.ndarray,
    ) -> PhoneGramIndex:
        lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        phones = (
            np.concatenate([np.asarray(s, dtype=np.int8) for s in sequences])
            if int(lengths.sum())
            else np.zeros(0, dtype=np.int8)
        )
        return cls(snapshot, encoder_id, phones, offsets, owners)

    # -- reading -------------------------------------------------------------

    @property
    def nbytes(self) -> int:
        return int(
            self.phones.nbytes
            + self.offsets.nbytes
            + self._postings.nbytes
            + self._post_start.nbytes
            + self._row_grams.nbytes
            + self._owners.nbytes
        )

    def variants(self, term_id: int) -> tuple[np.ndarray, ...]:
        """Phone-id arrays of a term's pronunciation variants (for re-scoring)."""
        return tuple(
            self.phones[self.offsets[r] : self.offsets[r + 1]].astype(np.int64)
            for r in self.rows_of(term_id)
            if self.offsets[r + 1] > self.offsets[r]
        )

    def variant_map(self) -> dict[str, tuple[tuple[int, ...], ...]]:
        """Source term → its variants' phone ids: what a new version of the glossary reuses."""
        phones = self.phones.tolist()
        offsets = self.offsets.tolist()
        out: dict[str, tuple[tuple[int, ...], ...]] = {}
        for term_id, entry in enumerate(self.snapshot.entries):
            rows = self.rows_of(term_id)
            out[entry.source] = tuple(tuple(phones[offsets[r] : offsets[r + 1]]) for r in rows)
        return out

    def search(self, queries: np.ndarray, k: int) -> SearchResult:
        raise TypeError("a phone-trigram index is searched by phones: use search_phones")

    def search_phones(self, sequences: Sequence[np.ndarray], k: int) -> SearchResult:
        """Top-``k`` terms per phone-id sequence, by the share of their trigrams heard."""
        n_q = len(sequences)
        scores = np.full((n_q, k), -np.inf, dtype=np.float32)
        ids = np.full((n_q, k), -1, dtype=np.int64)
        for i, seq in enumerate(sequences):
            codes = trigram_codes(seq)
            if not len(codes) or k <= 0:
                continue
            lists = [self._postings[self._post_start[c] : self._post_start[c + 1]] for c in codes]
            rows = np.concatenate(lists)
            if not len(rows):
                continue
            # Linear passes over the gathered postings only (a million-term query gathers
            # ~10⁵): no sort of them, no scan of every row.
            counts = np.bincount(rows, minlength=len(self._row_grams))
            c = counts[rows]
            # Share of the row's trigrams heard; more trigrams break ties (longer terms
            # score higher in the re-scoring too).
            share = c / self._row_grams[rows] + c * 1e-4
            # A row appears once per trigram heard (see _DUPLICATES): keep enough
            # entries that k distinct terms survive de-duplication.
            want = k * self._max_rows_per_term * _DUPLICATES
            if len(rows) > want:
                top = np.argpartition(-share, want - 1)[:want]
                rows, share = rows[top], share[top]
            rows, first = np.unique(rows, return_index=True)
            share = share[first]
            hit_rows = rows
            order = np.argsort(-share, kind="stable")
            terms = self._owners[hit_rows[order]]
            _, first = np.unique(terms, return_index=True)
            best = np.sort(first)[:k]
            scores[i, : len(best)] = share[order[best]]
            ids[i, : len(best)] = terms[best]
        return SearchResult(self, scores, ids)

    # -- persistence ---------------------------------------------------------

    def save(self, directory: Path) -> None:
        def write(tmp: Path) -> None:
            np.savez(
                tmp / "grams.npz", phones=self.phones, offsets=self.offsets, owners=self._owners
            )

        save_atomically(directory, write, cache_meta(self, KIND, _FORMAT_VERSION))

    @classmethod
    def load_grams(
        cls, directory: Path, snapshot: GlossarySnapshot, encoder_id: str
    ) -> PhoneGramIndex | None:
        try:
            meta = json.loads((directory / "meta.json").read_text())
        except (OSError, ValueError):
            return None
        if (
            meta.get("format") != _FORMAT_VERSION
            or meta.get("kind") != KIND
            or meta.get("encoder_id") != encoder_id
            or meta.get("terms_digest") != terms_digest(snapshot)
        ):
            return None
        try:
            with np.load(directory / "grams.npz") as data:
                return cls(snapshot, encoder_id, data["phones"], data["offsets"], data["owners"])
        except (OSError, ValueError, KeyError):
            return None


def build_gram_index(
    snapshot: GlossarySnapshot,
    encoder_id: str,
    previous: TermIndex | None = None,
    progress: Callable[[float], None] | None = None,
) -> PhoneGramIndex:
    """Pronounce every term (reusing ``previous``'s variants of unchanged terms) and index.

    Blocking: call it from a build thread. ``progress`` gets 0…1 as terms are pronounced
    (the sort into posting lists at the end is ~10 % of the time).
    """
    from retriever.phonetic import PHONE_ID
    from retriever.pronounce import pronunciations

    reuse = previous.variant_map() if isinstance(previous, PhoneGramIndex) else {}
    flat: list[int] = []
    lengths: list[int] = []
    owners: list[int] = []
    entries = snapshot.entries
    step = max(1, min(20_000, len(entries) // 20))
    for i, entry in enumerate(entries):
        variants = reuse.get(entry.source)
        if variants is None:
            variants = tuple(
                tuple(PHONE_ID[p] for p in phones if p in PHONE_ID)
                for phones in pronunciations(entry.source) or ((),)
            )
        for v in variants:
            flat.extend(v)
            lengths.append(len(v))
            owners.append(i)
        if progress is not None and i % step == step - 1:
            progress(0.9 * (i + 1) / len(entries))
    offsets = np.concatenate([[0], np.cumsum(np.asarray(lengths, dtype=np.int64))])
    index = PhoneGramIndex(
        snapshot,
        encoder_id,
        np.asarray(flat, dtype=np.int8),
        offsets,
        np.asarray(owners, dtype=np.int64),
    )
    if progress is not None:
        progress(1.0)
    return index
