"""Chunk-level term retrieval quality: recall@K and precision against gold term occurrences.

Definitions (times in seconds of the streamed audio):

- A gold item is a (term, chunk) pair: the chunk in which a spoken occurrence of the term
  *ends* (its home chunk). Occurrence times are approximate (reference word times mapped
  onto synthetic speech), so an occurrence ending within ``slack`` of a chunk boundary may
  belong to either chunk: the strict window is every chunk overlapping
  ``[end - slack, end + slack]``.
- **strict** recall@K: the term is among the top K terms reported for a chunk of the strict
  window. This is ``recall_at_k`` in the report.
- **late-ok** recall@K: also accepted one chunk after the strict window (the retriever saw the
  term's audio only in the next chunk's look-back).
- **precision** (strict): share of reported top-K terms that have a gold occurrence
  overlapping the chunk (± ``slack``); **late-ok** precision also accepts an occurrence in the
  previous chunk.

Only gold terms that are in the glossary in use (with a translation for the target language)
are counted: the retriever cannot find anything else.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from evaluation.dataset import TermOccurrence
from evaluation.glossaries import normalise_term


@dataclass(frozen=True)
class ChunkSpan:
    index: int
    start: float
    end: float


@dataclass(frozen=True)
class RetrievalScores:
    """Counts of one or more streams; the ratios are properties so that streams add up."""

    k: int
    strict_hits: int
    late_hits: int
    correct: int
    correct_late: int
    gold_items: int
    gold_occurrences: int
    gold_not_in_glossary: int
    predicted: int
    chunks: int
    chunks_with_predictions: int
    missed: dict[str, int] = field(default_factory=dict)  # term → strict misses
    false_positives: dict[str, int] = field(default_factory=dict)  # term → wrong reports

    @property
    def recall_at_k(self) -> float | None:
        return _ratio(self.strict_hits, self.gold_items)

    @property
    def recall_at_k_late_ok(self) -> float | None:
        return _ratio(self.late_hits, self.gold_items)

    @property
    def precision(self) -> float | None:
        return _ratio(self.correct, self.predicted)

    @property
    def precision_late_ok(self) -> float | None:
        return _ratio(self.correct_late, self.predicted)

    def __add__(self, other: RetrievalScores) -> RetrievalScores:
        if self.k != other.k:
            raise ValueError("cannot add scores of different K")

        def add(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
            return {t: a.get(t, 0) + b.get(t, 0) for t in a.keys() | b.keys()}

        return RetrievalScores(
            k=self.k,
            strict_hits=self.strict_hits + other.strict_hits,
            late_hits=self.late_hits + other.late_hits,
            correct=self.correct + other.correct,
            correct_late=self.correct_late + other.correct_late,
            gold_items=self.gold_items + other.gold_items,
            gold_occurrences=self.gold_occurrences + other.gold_occurrences,
            gold_not_in_glossary=self.gold_not_in_glossary + other.gold_not_in_glossary,
            predicted=self.predicted + other.predicted,
            chunks=self.chunks + other.chunks,
            chunks_with_predictions=self.chunks_with_predictions + other.chunks_with_predictions,
            missed=add(self.missed, other.missed),
            false_positives=add(self.false_positives, other.false_positives),
        )

    def summary(self) -> dict[str, object]:
        return {
            "k": self.k,
            "recall_at_k": self.recall_at_k,
            "recall_at_k_definition": "strict",
            "recall_at_k_late_ok": self.recall_at_k_late_ok,
            "precision": self.precision,
            "precision_late_ok": self.precision_late_ok,
            "gold_items": self.gold_items,
            "gold_occurrences": self.gold_occurrences,
            "gold_not_in_glossary": self.gold_not_in_glossary,
            "predicted": self.predicted,
            "chunks": self.chunks,
            "chunks_with_predictions": self.chunks_with_predictions,
            "top_missed": dict(sorted(self.missed.items(), key=lambda kv: -kv[1])[:20]),
            "top_false_positives": dict(
                sorted(self.false_positives.items(), key=lambda kv: -kv[1])[:20]
            ),
        }


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


class _ChunkIndex:
    def __init__(self, chunks: Sequence[ChunkSpan]) -> None:
        self.chunks = sorted(chunks, key=lambda c: c.start)
        self._starts = [c.start for c in self.chunks]

    def overlapping(self, start: float, end: float) -> list[int]:
        """Positions (in time order) of chunks overlapping [start, end]."""
        first = max(0, bisect.bisect_right(self._starts, start) - 1)
        out = []
        for pos in range(first, len(self.chunks)):
            chunk = self.chunks[pos]
            if chunk.start > end:
                break
            if chunk.end >= start:
                out.append(pos)
        return out


def score_retrieval(
    chunks: Sequence[ChunkSpan],
    predictions: Mapping[int, Sequence[str]],
    occurrences: Iterable[TermOccurrence],
    glossary_terms: Iterable[str],
    *,
    k: int = 10,
    slack: float = 0.3,
) -> RetrievalScores:
    """Score one stream. ``predictions``: chunk index → reported sources, best first."""
    index = _ChunkIndex(chunks)
    known = {normalise_term(t) for t in glossary_terms}
    top = {c: [normalise_term(s) for s in terms[:k]] for c, terms in predictions.items()}
    occurrences = list(occurrences)
    usable = [o for o in occurrences if normalise_term(o.en) in known]

    # Gold items: (term, home chunk) → strict window and late-ok window (chunk positions).
    items: dict[tuple[str, int], tuple[set[int], set[int]]] = {}
    for occ in usable:
        window = index.overlapping(occ.end - slack, occ.end + slack)
        if not window:
            continue  # the occurrence lies outside the streamed audio
        home = index.overlapping(occ.end, occ.end) or window
        key = (normalise_term(occ.en), home[-1])
        strict, late = items.setdefault(key, (set(), set()))
        strict.update(window)
        late.update(window)
        if window[-1] + 1 < len(index.chunks):
            late.add(window[-1] + 1)

    def found(term: str, positions: set[int]) -> bool:
        return any(term in top.get(index.chunks[p].index, ()) for p in positions)

    strict_hits = late_hits = 0
    missed: dict[str, int] = {}
    for (term, _), (strict, late) in items.items():
        if found(term, strict):
            strict_hits += 1
        else:
            missed[term] = missed.get(term, 0) + 1
        if found(term, late):
            late_hits += 1

    # Precision: which terms are spoken in (or just before) each chunk.
    by_term: dict[str, list[TermOccurrence]] = {}
    for occ in usable:
        by_term.setdefault(normalise_term(occ.en), []).append(occ)
    spans = {c.index: c for c in index.chunks}
    previous = {c.index: (index.chunks[p - 1] if p > 0 else c) for p, c in enumerate(index.chunks)}
    predicted = correct = correct_late = 0
    false_positives: dict[str, int] = {}
    for chunk_index, terms in top.items():
        span = spans.get(chunk_index)
        if span is None:
            continue
        before = previous[chunk_index]
        for term in terms:
            predicted += 1
            occs = by_term.get(term, [])
            if any(o.start <= span.end + slack and o.end >= span.start - slack for o in occs):
                correct += 1
                correct_late += 1
            elif any(o.start <= span.end + slack and o.end >= before.start - slack for o in occs):
                correct_late += 1
            else:
                false_positives[term] = false_positives.get(term, 0) + 1

    return RetrievalScores(
        k=k,
        strict_hits=strict_hits,
        late_hits=late_hits,
        correct=correct,
        correct_late=correct_late,
        gold_items=len(items),
        gold_occurrences=len(usable),
        gold_not_in_glossary=len(occurrences) - len(usable),
        predicted=predicted,
        chunks=len(index.chunks),
        chunks_with_predictions=sum(1 for terms in top.values() if terms),
        missed=missed,
        false_positives=false_positives,
    )
