"""The term_map ablation: its three glossaries, the wrong-copy rate, one real run."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.vllm_server import VllmServer
from training.ablation import (
    Condition,
    condition_glossaries,
    shuffled_targets,
    wrong_copy_rate,
)
from training.glossary_file import glossary_pairs, load_glossary

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
GLOSSARY = SHARED / "glossaries" / "rasst_acl_tagged_pairs_observed.tsv"


def test_conditions_no_glossary_gold_and_shuffled_gold() -> None:
    gold = glossary_pairs(load_glossary(GLOSSARY), "de")
    conditions = condition_glossaries(gold, seed=3)
    assert conditions[Condition.NO_TERMS] is None
    assert conditions[Condition.CORRECT] == gold
    shuffled = conditions[Condition.RANDOM]
    assert shuffled is not None
    assert [s for s, _ in shuffled] == [s for s, _ in gold]
    assert sorted(t for _, t in shuffled) == sorted(t for _, t in gold)
    assert all(new != old for (_, new), (_, old) in zip(shuffled, gold, strict=True))
    assert shuffled == condition_glossaries(gold, seed=3)[Condition.RANDOM]
    assert shuffled != condition_glossaries(gold, seed=4)[Condition.RANDOM]


@settings(max_examples=150, deadline=None)
@given(
    targets=st.lists(st.sampled_from(["A", "B", "C", "D", "E"]), min_size=2, max_size=40),
    seed=st.integers(0, 10_000),
)
def test_no_entry_keeps_its_translation(targets: list[str], seed: int) -> None:
    pairs = [(f"term {i}", t) for i, t in enumerate(targets)]
    if len(set(targets)) < 2:
        with pytest.raises(ValueError):
            shuffled_targets(pairs, seed)
        return
    try:
        shuffled = shuffled_targets(pairs, seed)
    except ValueError:
        # Only when one translation is more than half the glossary can there be no answer.
        assert max(targets.count(t) for t in set(targets)) * 2 > len(targets)
        return
    assert sorted(t for _, t in shuffled) == sorted(targets)
    assert all(new != old for (_, new), old in zip(shuffled, targets, strict=True))


def test_wrong_copy_rate_counts_offered_wrong_translations() -> None:
    gold = [("BLEU", "BLEU"), ("corpus", "Korpus"), ("model", "Modell")]
    offered = [("BLEU", "Korpus"), ("corpus", "Modell"), ("model", "BLEU")]
    sources = {("t", 1): "BLEU on the corpus", ("t", 2): "a model"}
    rows = [
        {"talk_id": "t", "seg_id": 1, "prediction": "<t>Korpus</t> auf dem Korpus"},
        {"talk_id": "t", "seg_id": 2, "prediction": "ein Modell"},
    ]
    # Checks: BLEU→Korpus (copied), corpus→Modell (not), model→BLEU (not).
    assert wrong_copy_rate(rows, sources, offered, gold) == pytest.approx(1 / 3, abs=1e-4)
    assert wrong_copy_rate([], sources, offered, gold) is None


@pytest.mark.vllm
@pytest.mark.slow
def test_ablation_runs_three_conditions_against_a_real_vllm(
    vllm: VllmServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    out = tmp_path / "ablation"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli.main",
            "train",
            "ablation",
            str(SHARED / "acl6060"),
            "--to",
            "de",
            "--glossary",
            str(GLOSSARY),
            "--llm-url",
            vllm.url,
            "--llm-model",
            vllm.name,
            "--talk",
            "2022.acl-long.268",
            "--max-segments",
            "2",
            "--lm",
            "2",
            "--workers",
            "1",
            "--warmup",
            "2",
            "--out",
            str(out),
        ],
        cwd=REPO,
        env={**os.environ, "RASST_DATA_DIR": str(tmp_path / "data")},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    results = json.loads((out / "ablation.json").read_text())
    assert list(results) == ["no_terms", "correct", "random"]
    for name, row in results.items():
        assert isinstance(row["bleu"], float) and math.isfinite(row["bleu"]), name
        assert row["term_acc_checks"] == results["correct"]["term_acc_checks"] > 0
    assert results["no_terms"]["terms_per_chunk"] == 0
    assert results["correct"]["terms_per_chunk"] > 0
    assert results["random"]["wrong_copy"] is not None
    random_tsv = (out / "glossaries" / "random.tsv").read_text().splitlines()
    correct_tsv = (out / "glossaries" / "correct.tsv").read_text().splitlines()
    assert random_tsv[0] == correct_tsv[0] == "en\tde"
    assert sorted(random_tsv) != sorted(correct_tsv)
    assert "| random |" in result.stdout
