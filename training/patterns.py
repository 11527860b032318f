"""The three term_map patterns of the reference's SFT data, and their exact mix.

* ``standard``: the chunk's gold terms plus hard negatives (terms the retriever returned
  for the chunk's audio that are not spoken there) — what serving looks like;
* ``none``: an empty term_map (the user turn has no text part at all) — the model must
  translate on its own;
* ``all_wrong``: only wrong entries — the model must ignore a term_map it cannot trust.

Patterns are drawn per chunk (user turn). With ``n`` chunks and proportions ``p`` the
count of each pattern is fixed by largest-remainder rounding (Hamilton's method: floor
of ``n·p``, then the leftover units to the largest fractional parts, ties in pattern
order), so the mix is exact, not sampled; a seeded shuffle then decides which chunk gets
which pattern.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class Pattern(StrEnum):
    STANDARD = "standard"
    NONE = "none"
    ALL_WRONG = "all_wrong"


@dataclass(frozen=True, slots=True)
class PatternMix:
    """Proportions of the three patterns (non-negative, summing to 1)."""

    standard: float = 0.70
    none: float = 0.15
    all_wrong: float = 0.15

    def __post_init__(self) -> None:
        values = self.as_dict().values()
        if any(v < 0 or not math.isfinite(v) for v in values):
            raise ValueError(f"pattern proportions must be finite and >= 0: {self.as_dict()}")
        if not math.isclose(sum(values), 1.0, abs_tol=1e-6):
            raise ValueError(f"pattern proportions must sum to 1, not {sum(values):g}")

    def as_dict(self) -> dict[Pattern, float]:
        return {
            Pattern.STANDARD: self.standard,
            Pattern.NONE: self.none,
            Pattern.ALL_WRONG: self.all_wrong,
        }

    @classmethod
    def parse(cls, text: str) -> PatternMix:
        """``standard=0.7,none=0.15,all_wrong=0.15`` (missing patterns get 0)."""
        values: dict[str, float] = {p.value: 0.0 for p in Pattern}
        for item in text.split(","):
            if not item.strip():
                continue
            name, sep, value = item.partition("=")
            name = name.strip().replace("-", "_")
            if not sep or name not in values:
                raise ValueError(f"expected PATTERN=FRACTION with PATTERN in {list(values)}")
            values[name] = float(value)
        return cls(**values)


def pattern_counts(n: int, proportions: Mapping[Pattern, float]) -> dict[Pattern, int]:
    """How many of ``n`` items get each pattern: largest-remainder rounding, exact sum ``n``."""
    if n < 0:
        raise ValueError("n must be >= 0")
    total = sum(proportions.values())
    if total <= 0:
        raise ValueError("proportions must not all be 0")
    order = list(proportions)
    quotas = {p: n * proportions[p] / total for p in order}
    counts = {p: math.floor(quotas[p]) for p in order}
    leftover = n - sum(counts.values())
    # Largest fractional part first; ties broken by pattern order (stable sort).
    by_remainder = sorted(order, key=lambda p: quotas[p] - counts[p], reverse=True)
    for p in by_remainder[:leftover]:
        counts[p] += 1
    return counts


def assign_patterns(n: int, mix: PatternMix, seed: int) -> list[Pattern]:
    """A pattern for each of ``n`` items: exact counts, positions shuffled by ``seed``."""
    counts = pattern_counts(n, mix.as_dict())
    patterns = [p for p, count in counts.items() for _ in range(count)]
    random.Random(seed).shuffle(patterns)
    return patterns
