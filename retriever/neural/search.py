"""MaxSim search through the FAISS term index: every sub-window row, best score per term.

Searching each sub-window vector for its top ``k`` terms and keeping, per
window, each term's best score gives the exact top ``k`` by MaxSim: if a term
is in the window's MaxSim top ``k``, every term that beats it on its best
sub-window also beats it overall, so fewer than ``k`` do, and the term is in
that sub-window's own top ``k`` with its exact MaxSim score.

Torch-free (numpy + the index), so the chunk retriever can use it directly.
"""

from __future__ import annotations

import numpy as np

from retriever.encoders import WindowVectors
from retriever.index import SearchResult, TermIndex


def merge_grouped(
    row_ids: np.ndarray, row_scores: np.ndarray, owners: np.ndarray, n_groups: int, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per group: the top ``k`` distinct ids by their best score over the group's rows.

    ``row_ids`` / ``row_scores`` are ``(m, k_row)`` (−1 = no result); returns
    ``(n_groups, k)`` ids (−1 padded) and scores (−inf padded), best first.
    """
    ids = np.full((n_groups, k), -1, dtype=np.int64)
    scores = np.full((n_groups, k), -np.inf, dtype=np.float32)
    if row_ids.size == 0 or k <= 0:
        return ids, scores
    group = np.repeat(owners.astype(np.int64), row_ids.shape[1])
    flat_ids = row_ids.reshape(-1)
    flat_scores = row_scores.reshape(-1).astype(np.float32)
    keep = flat_ids >= 0
    group, flat_ids, flat_scores = group[keep], flat_ids[keep], flat_scores[keep]
    # Sort by group, then score descending; the first row of each (group, id) is its best.
    order = np.lexsort((-flat_scores, group))
    group, flat_ids, flat_scores = group[order], flat_ids[order], flat_scores[order]
    pair = np.stack([group, flat_ids], axis=1)
    _, first = np.unique(pair, axis=0, return_index=True)
    first.sort()  # back to (group, score desc) order
    group, flat_ids, flat_scores = group[first], flat_ids[first], flat_scores[first]
    order = np.lexsort((-flat_scores, group))
    group, flat_ids, flat_scores = group[order], flat_ids[order], flat_scores[order]
    starts = np.searchsorted(group, np.arange(n_groups), side="left")
    ends = np.searchsorted(group, np.arange(n_groups), side="right")
    for g in range(n_groups):
        n = min(k, int(ends[g] - starts[g]))
        ids[g, :n] = flat_ids[starts[g] : starts[g] + n]
        scores[g, :n] = flat_scores[starts[g] : starts[g] + n]
    return ids, scores


def search_grouped(
    index: TermIndex, windows: WindowVectors, n_windows: int, k: int
) -> SearchResult:
    """Like :meth:`TermIndex.search` with one result row per window, scored by MaxSim."""
    if windows.vectors.shape[0] == 0:
        return SearchResult(
            index,
            np.full((n_windows, k), -np.inf, dtype=np.float32),
            np.full((n_windows, k), -1, dtype=np.int64),
        )
    found = index.search(windows.vectors, k)
    ids, scores = merge_grouped(found.term_ids, found.scores, windows.owners, n_windows, k)
    return SearchResult(index, scores, ids)
