"""The whole harness, as users run it, on a 3-segment slice: synth, embedded gateway, report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
GLOSSARY = SHARED / "glossaries" / "rasst_acl_tagged_pairs_observed.tsv"
TALK = "2022.acl-long.268"

# Synthesis, a gateway start, a 15 s glossary warm-up and ~30 s of audio.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("eval")
    env = {**os.environ, "RASST_DATA_DIR": str(out / "data")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli.main",
            "eval",
            str(SHARED / "acl6060"),
            "--to",
            "de",
            "--glossary",
            str(GLOSSARY),
            "--lm",
            "2",
            "--talk",
            TALK,
            "--max-segments",
            "3",
            "--distractors",
            "50",
            "--out",
            str(out / "run"),
            "--workers",
            "1",
            "--warmup",
            "15",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    headline = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(headline) >= {"recall_at_k", "precision", "overhead_ratio"}
    return out / "run", json.loads((out / "run" / "report.json").read_text())


def test_report_structure_and_recorded_events(evaluated: tuple[Path, dict[str, Any]]) -> None:
    out, report = evaluated
    assert report["data"]["talks"] == [TALK] and report["data"]["segments"] == 3
    # The shared long-layout TSV imports whole (de rows), and the distractors come on top.
    assert report["glossary"]["base_entries"] == 233
    assert report["glossary"]["distractor_entries"] == 50
    assert len(report["glossary"]["ids"]) == 2
    retrieval = report["retrieval"]
    for key in ("recall_at_k", "recall_at_k_late_ok", "precision", "overhead_ratio", "gold_items"):
        assert key in retrieval
    assert retrieval["gold_items"] >= 10
    assert report["cost"]["processing_ms"]["n"] == report["per_talk"][0]["chunks"] > 10
    assert report["per_talk"][0]["captions"] >= 1
    assert report["mode"] == "captions" and "bleu" not in report
    lines = (out / f"events.{TALK}.jsonl").read_text(encoding="utf-8").splitlines()
    events = [json.loads(line) for line in lines]
    kinds = {e["event"]["type"] for e in events}
    assert {"chunk.done", "caption", "session.summary"} <= kinds
    assert all({"wall", "sent"} <= set(e) for e in events)
    assert (out / "summary.md").is_file() and (out / "cost.png").is_file()
    # The synthesised audio went to the cache under RASST_DATA_DIR, with its timing beside it.
    timings = list((out.parent / "data" / "synth" / "flite-slt").glob("*.timing.json"))
    assert len(timings) == 1


def test_embedded_retriever_finds_terms(evaluated: tuple[Path, dict[str, Any]]) -> None:
    _, report = evaluated
    assert report["retrieval"]["predicted"] > 0
    assert report["retrieval"]["recall_at_k"] > 0
    assert report["retrieval"]["precision"] > 0
    assert report["retrieval"]["overhead_ratio"] > 0
