"""docker-compose.yml: valid against the compose-spec schema, and wired the way the
deployment needs (GPU reservations, health-gated start order, stop timeouts, profiles)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from server.settings import Settings
from tests.deploy.support import REPO, load_yaml, run, tool

COMPOSE = REPO / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(COMPOSE)
    return data


def _validate(path: Path) -> tuple[int, str]:
    result = run(tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path))
    return result.returncode, result.stdout + result.stderr


def test_compose_file_matches_the_compose_spec_schema() -> None:
    code, output = _validate(COMPOSE)
    assert code == 0, output


def test_compose_schema_check_is_not_vacuous(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    text = COMPOSE.read_text(encoding="utf-8")
    broken.write_text(text.replace("stop_grace_period:", "stop_grace_periods:", 1))
    code, _ = _validate(broken)
    assert code != 0


def _seconds(duration: str) -> float:
    value = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", duration)  # the default of ${VAR:-x}
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", value)
    assert match and value, duration
    return int(match[1] or 0) * 60 + int(match[2] or 0)


def test_services_and_profiles(compose: dict[str, Any]) -> None:
    services = compose["services"]
    # The default (no profile) is the GPU stack; `cpu` runs the embedded default alone.
    assert {n for n, s in services.items() if "profiles" not in s} == {
        "gateway",
        "retriever",
        "vllm",
        "redis",
    }
    assert services["gateway-cpu"]["profiles"] == ["cpu"]
    assert "depends_on" not in services["gateway-cpu"]
    assert "deploy" not in services["gateway-cpu"], "the CPU profile reserves no GPU"
    assert "RASST_RETRIEVER_URL" not in services["gateway-cpu"]["environment"]
    assert services["prometheus"]["profiles"] == services["grafana"]["profiles"] == ["monitoring"]


def test_gateway_waits_for_healthy_backends_and_talks_to_them(compose: dict[str, Any]) -> None:
    gateway = compose["services"]["gateway"]
    assert gateway["depends_on"] == {
        "retriever": {"condition": "service_healthy"},
        "vllm": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    env = gateway["environment"]
    assert env["RASST_RETRIEVER_URL"] == "http://retriever:8001"
    assert env["RASST_LLM_URL"] == "http://vllm:8000"
    assert env["RASST_REDIS_URL"] == "redis://redis:6379/0"
    Settings(redis_url=env["RASST_REDIS_URL"])  # the gateway accepts it
    # The bus holds nothing precious: no persistence, bounded memory.
    redis = compose["services"]["redis"]["command"]
    assert "--maxmemory" in redis and redis[redis.index("--save") + 1] == ""
    for name in ("gateway", "gateway-cpu", "retriever", "vllm", "redis"):
        assert "healthcheck" in compose["services"][name], name
    assert "/readyz" in " ".join(gateway["healthcheck"]["test"])
    assert "/health" in " ".join(compose["services"]["vllm"]["healthcheck"]["test"])


def test_gateway_stop_timeout_exceeds_the_drain_grace(compose: dict[str, Any]) -> None:
    grace = Settings.model_fields["shutdown_grace_seconds"].default
    for name in ("gateway", "gateway-cpu"):
        stop = _seconds(compose["services"][name]["stop_grace_period"])
        # The drain, then uvicorn's own graceful shutdown (runner.py: 5 s), then exit.
        assert stop > grace + 5, (name, stop, grace)


def test_gateway_command_keeps_the_image_defaults(compose: dict[str, Any]) -> None:
    command = compose["services"]["gateway"]["command"]
    assert command[:2] == ["rasst", "serve"]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert "--json-logs" in command


def test_gpu_reservations(compose: dict[str, Any]) -> None:
    for name in ("vllm", "retriever"):
        devices = compose["services"][name]["deploy"]["resources"]["reservations"]["devices"]
        assert devices and all(
            d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices
        ), name
    vllm_devices = compose["services"]["vllm"]["deploy"]["resources"]["reservations"]["devices"]
    assert vllm_devices[0]["count"] == "${VLLM_TENSOR_PARALLEL_SIZE:-2}"


def test_vllm_serves_qwen3_omni_with_the_flags_the_translator_needs(
    compose: dict[str, Any],
) -> None:
    vllm = compose["services"]["vllm"]
    tag = re.fullmatch(
        r"vllm/vllm-openai:\$\{VLLM_IMAGE_TAG:-v(\d+)\.(\d+)\.(\d+)\}", vllm["image"]
    )
    assert tag, vllm["image"]
    assert (int(tag[1]), int(tag[2])) >= (0, 11), "Qwen3-Omni needs vLLM >= 0.11"
    args = vllm["command"]

    def value(flag: str) -> str:
        return str(args[args.index(flag) + 1])

    assert value("--model") == "${VLLM_MODEL:-Qwen/Qwen3-Omni-30B-A3B-Instruct}"
    assert value("--served-model-name") == "${RASST_LLM_MODEL:-qwen3-omni}"
    assert value("--tensor-parallel-size") == "${VLLM_TENSOR_PARALLEL_SIZE:-2}"
    assert int(re.sub(r"\$\{\w+:-(\d+)\}", r"\1", value("--max-model-len"))) >= 8192
    assert "--enable-prefix-caching" in args
    assert "--enable-prompt-tokens-details" in args
    assert value("--limit-mm-per-prompt") == '{"audio": 32, "image": 0, "video": 0}'
    assert vllm["environment"]["HF_TOKEN"] == "${HF_TOKEN:-}"
    assert "model-cache:/root/.cache/huggingface" in vllm["volumes"]
    assert _seconds(vllm["healthcheck"]["start_period"]) >= 600


def test_volumes(compose: dict[str, Any]) -> None:
    assert {"glossary-data", "model-cache"} <= set(compose["volumes"])
    assert "glossary-data:/var/lib/rasst" in compose["services"]["gateway"]["volumes"]


def test_every_compose_variable_is_documented_in_env_example() -> None:
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", COMPOSE.read_text(encoding="utf-8")))
    example = (REPO / ".env.example").read_text(encoding="utf-8")
    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", example, flags=re.MULTILINE))
    assert used - documented == set()
