"""The pattern mix is exact: largest-remainder counts, seeded positions."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.patterns import Pattern, PatternMix, assign_patterns, pattern_counts


@pytest.mark.parametrize(
    ("n", "mix", "expected"),
    [
        (10, PatternMix(0.7, 0.15, 0.15), (7, 2, 1)),  # 1.5 and 1.5: the tie goes in order
        (100, PatternMix(0.7, 0.15, 0.15), (70, 15, 15)),
        (7, PatternMix(1 / 3, 1 / 3, 1 / 3), (3, 2, 2)),
        (3, PatternMix(0.5, 0.25, 0.25), (1, 1, 1)),  # remainders .5 < .75 = .75
        (1, PatternMix(0.2, 0.4, 0.4), (0, 1, 0)),
        (0, PatternMix(), (0, 0, 0)),
        (5, PatternMix(1.0, 0.0, 0.0), (5, 0, 0)),
        (1000, PatternMix(0.655, 0.2, 0.145), (655, 200, 145)),
    ],
)
def test_counts_follow_largest_remainder(
    n: int, mix: PatternMix, expected: tuple[int, int, int]
) -> None:
    counts = pattern_counts(n, mix.as_dict())
    assert (counts[Pattern.STANDARD], counts[Pattern.NONE], counts[Pattern.ALL_WRONG]) == expected


proportions = st.lists(st.integers(0, 1000), min_size=3, max_size=3).filter(lambda w: sum(w) > 0)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 5000), weights=proportions, seed=st.integers(0, 2**32))
def test_assignment_is_exact_and_seeded(n: int, weights: list[int], seed: int) -> None:
    total = sum(weights)
    mix = PatternMix(*(w / total for w in weights))
    patterns = assign_patterns(n, mix, seed)
    counts = Counter(patterns)
    assert len(patterns) == n
    for pattern, share in mix.as_dict().items():
        # Largest remainder: every count is the floor or the ceiling of its quota.
        assert math.floor(n * share - 1e-9) <= counts[pattern] <= math.ceil(n * share + 1e-9)
    assert patterns == assign_patterns(n, mix, seed)


def test_mix_parsing_and_validation() -> None:
    assert PatternMix.parse("standard=0.5, all-wrong=0.5") == PatternMix(0.5, 0.0, 0.5)
    with pytest.raises(ValueError, match="sum to 1"):
        PatternMix.parse("standard=0.5,none=0.2")
    with pytest.raises(ValueError, match="PATTERN=FRACTION"):
        PatternMix.parse("typo=1")
    with pytest.raises(ValueError, match=">= 0"):
        PatternMix(1.5, -0.5, 0.0)
