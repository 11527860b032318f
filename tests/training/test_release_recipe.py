"""`rasst train slm-data --preset release`: the released models' term_map recipe, in numbers.

The release rebuilt its SFT term_maps (``cap16_denoise_budget_v1``) with: a budget of
6 / 8 / 10 drawn .45 / .35 / .20; all gold terms kept (the budget grows to fit them);
35 % of chunks without gold get no term_map, the rest at most 4 noise terms; retrieved
non-gold terms kept with probability .25 (score < .82), .60 (< .85), .90 (higher), .85
when their translation is in the answers to come, .50 without a score; at most 16.
The statistics below are measured over many drawn chunks.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from tests.training.support import write_synthetic_corpus
from training.chunking import GoldOccurrence, PlannedChunk
from training.term_maps import (
    EntryKind,
    EntryOrigin,
    NoiseBand,
    ReleaseRecipe,
    TermMapEntry,
    compose_release_term_map,
    noise_band,
)

RECIPE = ReleaseRecipe()
N = 6000


def _chunk(gold: list[tuple[str, str]]) -> PlannedChunk:
    return PlannedChunk(
        index=0,
        start_sample=0,
        end_sample=15_360,
        translation="",
        source="",
        gold=tuple(GoldOccurrence(s, t, 1.0) for s, t in gold),
        context="",
        has_words=True,
    )


def _noise(rng: random.Random, n: int, tag: str) -> list[TermMapEntry]:
    out = []
    for j in range(n):
        score = rng.choice([0.79, 0.81, 0.83, 0.84, 0.86, 0.95, None])
        out.append(
            TermMapEntry(
                f"noise {tag} {j}", f"N{tag}x{j}", EntryKind.NEGATIVE, EntryOrigin.RETRIEVER, score
            )
        )
    return out


def _draw_many() -> tuple[list, list]:
    rng = random.Random(7)
    with_gold, without_gold = [], []
    for i in range(N):
        has_gold = i % 2 == 0
        gold = (
            [(f"gold {i} {g}", f"G{i}x{g}") for g in range(rng.randint(1, 3))] if has_gold else []
        )
        noise = _noise(rng, rng.randint(0, 20), str(i))
        retrieved = noise[:]
        if gold and rng.random() < 0.7:  # the retriever found the first gold term
            retrieved.insert(
                rng.randint(0, len(retrieved)),
                TermMapEntry(gold[0][0], gold[0][1], EntryKind.GOLD, EntryOrigin.RETRIEVER, 0.9),
            )
        # Some noise is "supported": its translation is in the answers to come.
        future = " ".join(e.target for e in noise[:2]) if rng.random() < 0.3 else ""
        entries, draw = compose_release_term_map(
            _chunk(gold), retrieved, future, RECIPE, random.Random(f"{i}")
        )
        (with_gold if has_gold else without_gold).append((gold, retrieved, entries, draw))
    return with_gold, without_gold


@pytest.fixture(scope="module")
def draws() -> tuple[list, list]:
    return _draw_many()


def test_budgets_are_drawn_six_eight_ten_at_45_35_20(draws: tuple[list, list]) -> None:
    with_gold, _ = draws
    budgets = Counter(d.budget for _, _, _, d in with_gold)
    assert set(budgets) == {6, 8, 10}  # at most 3 gold terms: the budget never grows here
    n = len(with_gold)
    for budget, share in ((6, 0.45), (8, 0.35), (10, 0.20)):
        assert budgets[budget] / n == pytest.approx(share, abs=0.025)
    for gold, _, entries, draw in with_gold:
        assert len(entries) <= draw.budget
        kept_gold = {e.source for e in entries if e.kind is EntryKind.GOLD}
        assert kept_gold == {s for s, _ in gold}  # every gold term, always


def test_chunks_without_gold_are_empty_35_percent_else_at_most_four_noise_terms(
    draws: tuple[list, list],
) -> None:
    _, without = draws
    empty = sum(1 for _, _, entries, d in without if d.emptied)
    assert empty / len(without) == pytest.approx(0.35, abs=0.025)
    assert all(not entries for _, _, entries, d in without if d.emptied)
    assert max(len(entries) for _, _, entries, _ in without) == 4
    assert all(e.kind is not EntryKind.GOLD for _, _, entries, _ in without for e in entries)


def test_noise_survives_by_score_band_and_support(draws: tuple[list, list]) -> None:
    offered: Counter[str] = Counter()
    kept: Counter[str] = Counter()
    for group in draws:
        for _, _, _, d in group:
            offered.update(d.offered)
            kept.update(d.kept)
    expected = {
        NoiseBand.LOW: 0.25,
        NoiseBand.MID: 0.60,
        NoiseBand.HIGH: 0.90,
        NoiseBand.SUPPORTED: 0.85,
        NoiseBand.UNSCORED: 0.50,
    }
    for band, rate in expected.items():
        assert offered[band.value] > 2000, band
        assert kept[band.value] / offered[band.value] == pytest.approx(rate, abs=0.03), band
    assert noise_band(0.819, False, RECIPE) is NoiseBand.LOW
    assert noise_band(0.82, False, RECIPE) is NoiseBand.MID
    assert noise_band(0.85, False, RECIPE) is NoiseBand.HIGH
    assert noise_band(0.5, True, RECIPE) is NoiseBand.SUPPORTED


def test_over_budget_drops_noise_from_the_end_and_order_is_the_retrievers() -> None:
    rng = random.Random(3)
    noise = [
        TermMapEntry(f"n{j}", f"T{j}", EntryKind.NEGATIVE, EntryOrigin.RETRIEVER, 0.99)
        for j in range(20)
    ]
    entries, draw = compose_release_term_map(_chunk([("g", "G")]), noise, "", RECIPE, rng)
    assert len(entries) == draw.budget
    noise_kept = [e.source for e in entries if e.kind is not EntryKind.GOLD]
    # Candidates beyond the 16-term cap are never offered; survivors keep their order.
    assert sum(draw.offered.values()) == 16
    assert noise_kept == sorted(noise_kept, key=lambda s: int(s[1:]))
    many_gold = [(f"g{j}", f"G{j}") for j in range(12)]
    entries, draw = compose_release_term_map(_chunk(many_gold), noise, "", RECIPE, rng)
    assert draw.budget == 12 and [e.kind for e in entries] == [EntryKind.GOLD] * 12


def test_cli_preset_release_builds_with_the_recipe_and_reports_it(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from training.cli import train_app

    corpus, glossary = write_synthetic_corpus(tmp_path / "in")
    args = ["slm-data", str(corpus), "--glossary", str(glossary), "--to", "de", "--no-retriever"]
    done = CliRunner().invoke(
        train_app, [*args, "--out", str(tmp_path / "out"), "--lm", "2", "--preset", "release"]
    )
    assert done.exit_code == 0, done.output
    stats = json.loads((tmp_path / "out" / "train.stats.json").read_text())
    recipe = stats["release_recipe"]
    chunks = stats["chunks"]["emitted"]
    assert (
        sum(recipe["budgets_of_chunks_with_gold"].values()) + recipe["chunks_without_gold"]
        == chunks
    )
    assert stats["patterns"]["standard"]["chunks"] == chunks  # no pattern mix
    assert stats["params"]["recipe"]["budgets"] == [6, 8, 10]
    bad = CliRunner().invoke(train_app, [*args, "--out", str(tmp_path / "o2"), "--preset", "x"])
    assert bad.exit_code == 2
