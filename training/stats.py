"""What an SFT data build produced: pattern mix, term_map sizes, sources, coverage, tags."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from training.patterns import Pattern, PatternMix, pattern_counts
from training.term_maps import EntryKind, EntryOrigin, RecipeDraw, TermMapEntry


def _mean(total: float, n: int) -> float | None:
    return round(total / n, 4) if n else None


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


@dataclass(slots=True)
class BuildStats:
    serving_tau: float | None = None  # None: built without the retriever
    records: int = 0
    records_skipped: int = 0
    audio_seconds: float = 0.0
    chunks_total: int = 0
    chunks_silent: int = 0
    translations_moved: int = 0  # silent chunks whose text went to the next speech chunk
    chunks: int = 0  # emitted chunks (turns' chunks, each counted once)
    conversations: int = 0
    turns: int = 0  # user turns written (a chunk may be in several conversations)
    turns_per_conversation: Counter[int] = field(default_factory=Counter)
    empty_answers: int = 0
    patterns: Counter[str] = field(default_factory=Counter)
    entries_per_chunk: dict[str, Counter[int]] = field(default_factory=dict)
    entries: Counter[str] = field(default_factory=Counter)  # "kind/origin"
    gold_occurrences: int = 0
    gold_in_standard: int = 0
    gold_offered: int = 0
    gold_retrieved: int = 0
    gold_tagged: int = 0
    tags: int = 0
    turns_with_tags: int = 0
    retrieval_chunks: int = 0
    retrieval_hits: int = 0
    per_lm_chunks: Counter[int] = field(default_factory=Counter)
    negatives_below_tau: int = 0
    # The release recipe's draws (--preset release).
    recipe_budgets: Counter[int] = field(default_factory=Counter)  # chunks with gold
    recipe_no_gold: int = 0
    recipe_no_gold_emptied: int = 0
    recipe_no_gold_sizes: Counter[int] = field(default_factory=Counter)
    recipe_offered: Counter[str] = field(default_factory=Counter)
    recipe_kept: Counter[str] = field(default_factory=Counter)

    def add_recipe_draw(self, draw: RecipeDraw) -> None:
        if draw.has_gold:
            self.recipe_budgets[draw.budget] += 1
        else:
            self.recipe_no_gold += 1
            self.recipe_no_gold_emptied += int(draw.emptied)
        self.recipe_offered.update(draw.offered)
        self.recipe_kept.update(draw.kept)

    def recipe_summary(self) -> dict[str, Any]:
        return {
            "budgets_of_chunks_with_gold": {
                str(k): v for k, v in sorted(self.recipe_budgets.items())
            },
            "chunks_without_gold": self.recipe_no_gold,
            "empty_share_without_gold": _ratio(self.recipe_no_gold_emptied, self.recipe_no_gold),
            "noise_keep_rate": {
                band: _ratio(self.recipe_kept.get(band, 0), n)
                for band, n in sorted(self.recipe_offered.items())
            },
        }

    def add_chunk(self, pattern: Pattern, entries: Sequence[TermMapEntry], gold_count: int) -> None:
        self.chunks += 1
        self.patterns[pattern.value] += 1
        self.entries_per_chunk.setdefault(pattern.value, Counter())[len(entries)] += 1
        for entry in entries:
            self.entries[f"{entry.kind.value}/{entry.origin.value}"] += 1
            tau = self.serving_tau
            if entry.score is not None and tau is not None and entry.score < tau:
                self.negatives_below_tau += 1
        self.gold_occurrences += gold_count
        if pattern is Pattern.STANDARD:
            self.gold_in_standard += gold_count
            offered = [e for e in entries if e.kind is EntryKind.GOLD]
            self.gold_offered += len(offered)
            self.gold_retrieved += sum(1 for e in offered if e.origin is EntryOrigin.RETRIEVER)

    def summary(self, mix: PatternMix, retriever: bool) -> dict[str, Any]:
        histogram: Counter[int] = Counter()
        for counts in self.entries_per_chunk.values():
            histogram.update(counts)
        total_entries = sum(n * c for n, c in histogram.items())

        def mean_of(counts: Counter[int]) -> float | None:
            return _mean(sum(n * c for n, c in counts.items()), sum(counts.values()))

        negatives = {
            origin.value: self.entries.get(f"negative/{origin.value}", 0)
            for origin in (EntryOrigin.RETRIEVER, EntryOrigin.GLOSSARY)
        }
        expected = pattern_counts(self.chunks, mix.as_dict()) if self.chunks else {}
        return {
            "records": self.records,
            "records_skipped_other_language": self.records_skipped,
            "audio_seconds": round(self.audio_seconds, 1),
            "chunks": {
                "total": self.chunks_total,
                "silent_dropped": self.chunks_silent,
                "silent_with_text_moved_on": self.translations_moved,
                "emitted": self.chunks,
                "per_lm": {str(k): v for k, v in sorted(self.per_lm_chunks.items())},
            },
            "conversations": self.conversations,
            "turns": self.turns,
            "turns_per_conversation": {
                "mean": mean_of(self.turns_per_conversation),
                "max": max(self.turns_per_conversation, default=0),
            },
            "empty_answers": self.empty_answers,
            "patterns": {
                p.value: {
                    "chunks": self.patterns.get(p.value, 0),
                    "fraction": _ratio(self.patterns.get(p.value, 0), self.chunks),
                    "requested": mix.as_dict()[p],
                    "expected_count": expected.get(p, 0),
                }
                for p in Pattern
            },
            "term_map_entries": {
                "mean_per_chunk": _mean(total_entries, self.chunks),
                "mean_per_chunk_by_pattern": {
                    p: mean_of(c) for p, c in sorted(self.entries_per_chunk.items())
                },
                "histogram": {str(n): c for n, c in sorted(histogram.items())},
                "by_kind_and_origin": dict(sorted(self.entries.items())),
            },
            "hard_negatives": {
                "source": "retriever" if retriever else "glossary",
                "from_retriever": negatives[EntryOrigin.RETRIEVER.value],
                "from_retriever_below_serving_tau": self.negatives_below_tau,
                "serving_tau": self.serving_tau,
                "from_glossary": negatives[EntryOrigin.GLOSSARY.value],
            },
            "gold_terms": {
                "occurrences": self.gold_occurrences,
                "in_standard_chunks": self.gold_in_standard,
                "offered_in_term_map": self.gold_offered,
                "coverage": _ratio(self.gold_offered, self.gold_in_standard),
                "retrieved": self.gold_retrieved,
                "retriever_recall": _ratio(self.gold_retrieved, self.gold_in_standard)
                if retriever
                else None,
            },
            "tags": {
                "tags": self.tags,
                "turns_with_tags": self.turns_with_tags,
                "offered_gold_tagged": self.gold_tagged,
                "offered_gold_tagged_share": _ratio(self.gold_tagged, self.gold_offered),
            },
            "retrieval": {
                "chunks_with_speech": self.retrieval_chunks,
                "mean_served_hits_per_chunk": _mean(self.retrieval_hits, self.retrieval_chunks),
            }
            if retriever
            else None,
        }
