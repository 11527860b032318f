"""bench/gpu_parity.py runs end to end (toy sizes, CPU, a canned LLM for TTFT)."""

from __future__ import annotations

from tests.retriever.neural.support import require_neural_stack

require_neural_stack()

import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from tests.support.fake_llm import MODEL, FakeLlm  # noqa: E402
from tests.support.live_server import REPO  # noqa: E402


def test_parity_bench_reports_both_modes_overhead_and_ttft(tmp_path: Path) -> None:
    llm = FakeLlm(deltas=3, delta="x ").start()
    out = tmp_path / "parity.json"
    try:
        done = subprocess.run(
            [
                sys.executable,
                "bench/gpu_parity.py",
                "--cpu",
                "--tiny",
                "--sessions",
                "1,2",
                "--chunks",
                "2",
                "--warmup",
                "2",
                "--terms",
                "12",
                "--vllm-url",
                llm.url,
                "--vllm-model",
                MODEL,
                "--ttft-chunks",
                "3",
                "--json",
                str(out),
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        llm.close()
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    rows = {(r["windowing"], r["sessions"]): r for r in result["retrieval"]}
    assert set(rows) == {("windows", 1), ("span", 1), ("windows", 2), ("span", 2)}
    # At lm = 1 the window path encodes two 1.92 s windows per chunk, the span path one span.
    assert rows[("windows", 1)]["encoder_inputs"] == 2 * (2 + 2)
    assert rows[("span", 1)]["encoder_inputs"] == 2 + 2
    for row in rows.values():
        assert row["chunks_measured"] == 2 * row["sessions"]
        # median_ms is rounded to 0.1 ms, the ratio to 1e-4: compare within both roundings.
        assert abs(row["overhead_ratio_lm1"] - row["median_ms"] / 1e3 / 0.96) < 2e-4
    assert result["ttft_chunks"] == 3 and result["ttft_median_ms"] > 0
    assert llm.requests == 3


@pytest.mark.vllm
@pytest.mark.timeout(900)
def test_parity_bench_starts_vllm_itself_and_measures_ttft(tmp_path: Path) -> None:
    """--vllm-serve against the real (CPU) vLLM with the tiny random Qwen3-Omni."""
    from tests.support.vllm_server import build_tiny_model, vllm_python

    python = vllm_python()
    if not python.exists():
        pytest.skip(f"no vLLM environment at {python}; run tests/support/vllm_env.sh")
    cache = Path(os.environ.get("RASST_TEST_CACHE", REPO / ".cache"))
    cache.mkdir(parents=True, exist_ok=True)
    model = build_tiny_model(python, cache)
    out = tmp_path / "parity.json"
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
        "PYTHONPATH": "",
    }
    done = subprocess.run(
        [
            sys.executable, "bench/gpu_parity.py", "--cpu", "--tiny",
            "--sessions", "1", "--chunks", "1", "--warmup", "2", "--terms", "8",
            "--modes", "span",
            "--vllm-serve", str(model), "--vllm-python", str(python),
            "--vllm-args", "--max-model-len 4096 --enforce-eager",
            "--vllm-start-timeout", "600", "--ttft-chunks", "4", "--json", str(out),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=850,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["ttft_chunks"] == 4 and result["ttft_median_ms"] > 0
