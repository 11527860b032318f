"""From per-window candidates to a chunk's terms (the reference's aggregation).

Per chunk: top-K1 terms per window (over all the session's glossaries), the
max score per term over the chunk's windows, drop scores below τ, keep the
top-K2, and drop terms without a translation in any of the session's target
languages. Each hit keeps the window where its best score was found, so the
client can show where in the audio the term matched.

Pure functions over plain data: no FAISS, no encoder, easy to test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from glossary.model import GlossaryEntry, GlossarySnapshot
from kernel.frames import TermHit, TermHits
from retriever.windows import Window


@dataclass(frozen=True, slots=True)
class AggregationParams:
    k1: int = 10  # terms kept per window
    k2: int = 10  # terms kept per chunk
    tau: float = 0.0  # minimum score; calibrated per encoder


@dataclass(frozen=True, slots=True)
class WindowCandidates:
    """Scored candidate terms of one window in one glossary snapshot."""

    window: Window
    snapshot: GlossarySnapshot
    term_ids: np.ndarray  # (n,) positions in snapshot.entries; −1 = padding
    scores: np.ndarray  # (n,)


@dataclass(slots=True)
class _Best:
    score: float
    window: Window
    entry: GlossaryEntry
    glossary_id: str


def aggregate_chunk(
    chunk_index: int,
    candidates: Sequence[WindowCandidates],
    target_languages: Sequence[str],
    params: AggregationParams | None = None,
    elapsed: float = 0.0,
) -> TermHits:
    """The chunk's :class:`TermHits`, best first (ties: later span, then source)."""
    params = params or AggregationParams()
    # 1. Group by window, merging glossaries, and keep the top-K1 per window.
    per_window: dict[Window, list[tuple[float, str, int, GlossarySnapshot]]] = {}
    for cand in candidates:
        bucket = per_window.setdefault(cand.window, [])
        for term_id, score in zip(cand.term_ids.tolist(), cand.scores.tolist(), strict=True):
            if term_id < 0 or not math.isfinite(score):
                continue
            bucket.append((float(score), cand.snapshot.id, int(term_id), cand.snapshot))
    # 2. Max per term over windows; a term is (glossary id, entry position).
    best: dict[tuple[str, int], _Best] = {}
    for window in sorted(per_window):
        bucket = per_window[window]
        bucket.sort(key=lambda item: -item[0])
        seen: set[tuple[str, int]] = set()
        for score, glossary_id, term_id, snapshot in bucket:
            key = (glossary_id, term_id)
            if key in seen:  # the same term twice in one window (defensive)
                continue
            seen.add(key)
            if len(seen) > params.k1:
                break
            current = best.get(key)
            # Strictly greater: on ties the earlier window keeps the span.
            if current is None or score > current.score:
                best[key] = _Best(score, window, snapshot.entries[term_id], glossary_id)
    # 3. Threshold, translation filter, top-K2.
    hits: list[TermHit] = []
    for item in best.values():
        if item.score < params.tau:
            continue
        targets = {
            lang: text
            for lang in target_languages
            if (text := item.entry.translation(lang)) is not None
        }
        if not targets:
            continue
        hits.append(
            TermHit(
                source=item.entry.source,
                targets=targets,
                score=item.score,
                start_sample=item.window.start,
                end_sample=item.window.end,
                glossary_id=item.glossary_id,
            )
        )
    # Equal scores: the most recent evidence first. Exact word matches tie at 1.0,
    # and a term said in this chunk matters more than one the look-back sees again
    # (it was reported with the previous chunk already).
    hits.sort(key=lambda h: (-h.score, -h.end_sample, h.source))
    return TermHits(chunk_index=chunk_index, hits=tuple(hits[: params.k2]), elapsed=elapsed)
