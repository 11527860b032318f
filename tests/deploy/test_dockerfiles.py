"""Both images pass hadolint and keep the properties the deployment relies on."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.deploy.dockerfile import Instruction, read_instructions
from tests.deploy.support import DEPLOY, REPO, run, tool

GATEWAY = REPO / "Dockerfile"
RETRIEVER = DEPLOY / "retriever.Dockerfile"


def _only(instructions: list[Instruction], keyword: str) -> Instruction:
    found = [i for i in instructions if i.keyword == keyword]
    assert len(found) == 1, f"expected one {keyword}, found {len(found)}"
    return found[0]


def _final_stage(instructions: list[Instruction]) -> list[Instruction]:
    last_from = max(i for i, ins in enumerate(instructions) if ins.keyword == "FROM")
    return instructions[last_from:]


@pytest.mark.parametrize("dockerfile", [GATEWAY, RETRIEVER], ids=lambda p: p.name)
def test_hadolint_finds_nothing(dockerfile: Path) -> None:
    # Default failure threshold (info): any finding fails. Justified exceptions are inline
    # `# hadolint ignore=...` comments in the Dockerfile.
    result = run(tool("hadolint"), "--no-color", str(dockerfile))
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_is_not_vacuous(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /tmp && pip install requests\n", encoding="utf-8")
    result = run(tool("hadolint"), "--no-color", str(bad))
    assert result.returncode != 0 and "DL3007" in result.stdout


@pytest.mark.parametrize("dockerfile", [GATEWAY, RETRIEVER], ids=lambda p: p.name)
def test_multi_stage_non_root_with_health_check(dockerfile: Path) -> None:
    instructions = read_instructions(dockerfile)
    assert sum(i.keyword == "FROM" for i in instructions) >= 2, "build and runtime stages"
    final = _final_stage(instructions)
    user = _only(final, "USER").args
    # Numeric uid: Kubernetes' runAsNonRoot can only verify a numeric user.
    assert re.fullmatch(r"[1-9]\d*(:\d+)?", user), user
    health = _only(final, "HEALTHCHECK")
    assert "--start-period" in health.args
    assert _only(final, "STOPSIGNAL").args == "SIGTERM"
    # Exec form: the server is PID 1 and gets SIGTERM itself (no shell in between).
    _only(final, "CMD").exec_form()


def test_gateway_image_health_check_is_readiness_and_command_serves_on_all_interfaces() -> None:
    final = _final_stage(read_instructions(GATEWAY))
    probe = " ".join(_only(final, "HEALTHCHECK").exec_form())
    assert "/readyz" in probe and ":8000" in probe
    cmd = _only(final, "CMD").exec_form()
    assert cmd[:2] == ["rasst", "serve"]
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0"
    assert cmd[cmd.index("--port") + 1] == "8000"
    assert "--json-logs" in cmd
    assert "8000" in _only(final, "EXPOSE").args


def test_retriever_image_is_cuda_torch_faiss_gpu_and_runs_the_service() -> None:
    instructions = read_instructions(RETRIEVER)
    args = {
        i.args.split("=", 1)[0]: i.args.split("=", 1)[1]
        for i in instructions
        if i.keyword == "ARG" and "=" in i.args
    }
    assert args["CUDA_IMAGE"].startswith("nvidia/cuda:12.") and "-runtime-" in args["CUDA_IMAGE"]
    # torch pinned to a CUDA 12 build and the official faiss-gpu wheel (sm_70-sm_90); not the
    # third-party faiss-gpu-cu12, which has no Hopper (H100/H200) kernels.
    assert re.fullmatch(r"2\.\d+\.\d+", args["TORCH_VERSION"])
    assert re.fullmatch(r"1\.\d+\.\d+", args["FAISS_GPU_VERSION"])
    runs = " ".join(i.args for i in instructions if i.keyword == "RUN")
    assert 'pip install "torch==${TORCH_VERSION}"' in runs
    assert 'pip install "faiss-gpu==${FAISS_GPU_VERSION}"' in runs
    assert "faiss-gpu-cu" not in runs
    assert "pip uninstall -y faiss-cpu" in runs
    assert runs.index("torch==") < runs.index('".[neural]"'), "torch before the neural extra"
    final = _final_stage(instructions)
    assert _only(final, "CMD").exec_form()[:3] == ["python", "-m", "retriever.service"]
    assert "/healthz" in " ".join(_only(final, "HEALTHCHECK").exec_form())
