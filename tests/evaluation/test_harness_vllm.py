"""The harness against a real (tiny, CPU) vLLM endpoint: every translation metric present and finite."""

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


@pytest.mark.parametrize("lang", ["de", "zh"])
def test_eval_with_an_llm_reports_every_translation_metric(
    vllm: VllmServer,  # noqa: F811
    tmp_path: Path,
    lang: str,
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
            lang,
            "--glossary",
            str(GLOSSARY),
            "--lm",
            "2",
            "--talk",
            "2022.acl-long.268",
            "--max-segments",
            "3",
            "--llm-url",
            vllm.url,
            "--llm-model",
            vllm.name,
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
    for key in ("bleu", "chrf", "term_acc", "stream_laal", "stream_laal_ca"):
        value = report[key]
        value = value["score"] if isinstance(value, dict) and "score" in value else value
        assert isinstance(value, int | float) and math.isfinite(value), (key, report[key])
    # The computation-aware latency can only be later than the ideal one.
    laal = report["stream_laal"]
    laal_ca = report["stream_laal_ca"]
    if isinstance(laal, int | float) and isinstance(laal_ca, int | float):
        assert laal_ca >= laal
