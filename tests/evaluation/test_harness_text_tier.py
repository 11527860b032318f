"""The harness scores the text tier like the speech tier: a real (tiny, CPU) vLLM text model
behind an embedded gateway started with ``--llm-mode text``."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.vllm_server import VllmServer

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
GLOSSARY = SHARED / "glossaries" / "rasst_acl_tagged_pairs_observed.tsv"

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


def test_eval_of_the_text_tier_reports_every_translation_metric(
    vllm_text: VllmServer, tmp_path: Path
) -> None:
    out = tmp_path / "run"
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
            "2022.acl-long.268",
            "--max-segments",
            "3",
            "--llm-url",
            vllm_text.url,
            "--llm-model",
            vllm_text.name,
            "--llm-mode",
            "text",
            "--out",
            str(out),
            "--workers",
            "1",
            "--warmup",
            "5",
        ],
        cwd=REPO,
        env={**os.environ, "RASST_DATA_DIR": str(tmp_path / "data")},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads((out / "report.json").read_text())
    assert report["mode"] == "translation"
    assert report["config"]["llm_mode"] == "text"
    for key in ("bleu", "chrf", "term_acc", "stream_laal", "stream_laal_ca"):
        value = report[key]
        value = value["score"] if isinstance(value, dict) and "score" in value else value
        assert isinstance(value, int | float) and math.isfinite(value), (key, report[key])
    translation = report["translation"]
    assert isinstance(translation["terms_missed"], int) and translation["terms_missed"] >= 0
    assert "text tier" in (out / "summary.md").read_text()
