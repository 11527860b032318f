"""Kubernetes manifests (deploy/k8s): valid against the Kubernetes API schemas
(kubernetes-validate --strict, offline), and consistent with the gateway's settings and
its graceful drain. The vLLM production-stack Helm values are checked for the keys the
deployment relies on."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from server.settings import Settings
from server.translator.params import TranslatorParams
from tests.deploy.support import K8S, load_yaml, load_yaml_all, run, tool

BASE = K8S / "base"
UVICORN_GRACEFUL_SECONDS = 5  # server/runner.py: timeout_graceful_shutdown


def _base_files() -> list[Path]:
    kustomization = load_yaml(BASE / "kustomization.yaml")
    return [BASE / name for name in kustomization["resources"]]


@pytest.fixture(scope="module")
def objects() -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, name) -> object, for everything in the base."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in _base_files():
        for doc in load_yaml_all(path):
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in found, key
            found[key] = doc
    return found


def _validate(*paths: Path) -> tuple[int, str]:
    result = run(tool("kubernetes-validate"), "--strict", "--quiet", *map(str, paths))
    return result.returncode, result.stdout + result.stderr


def test_kustomization_lists_every_manifest_of_the_base() -> None:
    listed = {p.name for p in _base_files()}
    present = {p.name for p in BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


def test_manifests_are_valid_kubernetes_objects() -> None:
    code, output = _validate(*_base_files())
    assert code == 0, output


def test_kubernetes_validate_is_strict(tmp_path: Path) -> None:
    text = (BASE / "gateway-deployment.yaml").read_text(encoding="utf-8")
    broken = tmp_path / "deployment.yaml"
    broken.write_text(text.replace("terminationGracePeriodSeconds", "terminationGraceSeconds"))
    code, _ = _validate(broken)
    assert code != 0


@pytest.mark.parametrize("target", ["base", "overlays/production"])
def test_kustomize_build_is_valid(target: str, tmp_path: Path) -> None:
    # kubectl is not a Python package: this check runs where kubectl is installed (it ships
    # kustomize); the per-file validation above runs everywhere.
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed")
    result = run(kubectl, "kustomize", str(K8S / target))
    assert result.returncode == 0, result.stderr
    built = tmp_path / "built.yaml"
    built.write_text(result.stdout, encoding="utf-8")
    code, output = _validate(built)
    assert code == 0, output
    if target == "overlays/production":
        hpa = next(d for d in load_yaml_all(built) if d["kind"] == "HorizontalPodAutoscaler")
        assert {m["type"] for m in hpa["spec"]["metrics"]} == {"Resource", "Pods"}


def _container(objects: dict[tuple[str, str], dict[str, Any]], kind: str, name: str) -> Any:
    pod = objects[(kind, name)]["spec"]["template"]["spec"]
    return pod, pod["containers"][0]


def test_gateway_config_holds_only_real_settings(objects: dict[tuple[str, str], Any]) -> None:
    data = objects[("ConfigMap", "rasst-gateway")]["data"]
    fields = {f"RASST_{n.upper()}" for n in Settings.model_fields}
    assert set(data) - fields == set()
    # Parsed as the gateway parses it: a typo in a value fails here, not in the cluster.
    Settings(
        **{
            k.removeprefix("RASST_").lower(): v
            for k, v in data.items()
            if k != "RASST_CORS_ORIGINS"
        }
    )


def test_gateway_outlives_its_drain(objects: dict[tuple[str, str], Any]) -> None:
    pod, container = _container(objects, "Deployment", "rasst-gateway")
    grace = float(objects[("ConfigMap", "rasst-gateway")]["data"]["RASST_SHUTDOWN_GRACE_SECONDS"])
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    needed = float(pre_stop[1]) + grace + UVICORN_GRACEFUL_SECONDS
    assert pod["terminationGracePeriodSeconds"] > needed


def test_gateway_probes_resources_and_security(objects: dict[tuple[str, str], Any]) -> None:
    pod, container = _container(objects, "Deployment", "rasst-gateway")
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    # $(RASST_LOG_LEVEL) in the args must come from the environment.
    assert "$(RASST_LOG_LEVEL)" in container["args"]
    assert "RASST_LOG_LEVEL" in objects[("ConfigMap", "rasst-gateway")]["data"]
    # Speech workers must follow the CPU request (os.cpu_count() sees the whole node).
    workers = int(objects[("ConfigMap", "rasst-gateway")]["data"]["RASST_SPEECH_WORKERS"])
    assert 1 <= workers <= int(container["resources"]["requests"]["cpu"])
    env = {e["name"]: e for e in container["env"]}
    assert env["RASST_DB_URL"]["value"].startswith("postgresql://")
    assert "$(POSTGRES_PASSWORD)" in env["RASST_DB_URL"]["value"]
    assert list(env).index("POSTGRES_PASSWORD") < list(env).index("RASST_DB_URL")


def test_gateway_service_has_no_affinity_retriever_service_has(
    objects: dict[tuple[str, str], Any],
) -> None:
    assert "sessionAffinity" not in objects[("Service", "rasst-gateway")]["spec"]
    assert objects[("Service", "rasst-retriever")]["spec"]["sessionAffinity"] == "ClientIP"


def test_gateway_autoscaling(objects: dict[tuple[str, str], Any]) -> None:
    hpa = objects[("HorizontalPodAutoscaler", "rasst-gateway")]["spec"]
    assert hpa["scaleTargetRef"]["name"] == "rasst-gateway"
    assert hpa["minReplicas"] >= 2
    assert [m["resource"]["name"] for m in hpa["metrics"]] == ["cpu"]


def test_retriever_gets_a_gpu(objects: dict[tuple[str, str], Any]) -> None:
    _, container = _container(objects, "Deployment", "rasst-retriever")
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["args"][:3] == ["python", "-m", "retriever.service"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"


def test_postgres_and_backups(objects: dict[tuple[str, str], Any]) -> None:
    statefulset = objects[("StatefulSet", "rasst-postgres")]["spec"]
    assert statefulset["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    cron = objects[("CronJob", "rasst-postgres-backup")]["spec"]
    command = " ".join(cron["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"])
    assert "pg_dump --format=custom" in command


def test_ingress_terminates_tls_and_allows_long_websockets(
    objects: dict[tuple[str, str], Any],
) -> None:
    ingress = objects[("Ingress", "rasst-gateway")]
    assert ingress["spec"]["tls"][0]["secretName"] == "rasst-tls"
    timeout = int(
        ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-read-timeout"]
    )
    assert timeout > Settings.model_fields["idle_timeout_seconds"].default


def test_replicas_share_the_event_bus_without_client_pinning(
    objects: dict[tuple[str, str], Any],
) -> None:
    # Viewers, resume and subtitles work on any pod: no affinity, one Redis for all pods.
    assert "sessionAffinity" not in objects[("Service", "rasst-gateway")]["spec"]
    redis_url = objects[("ConfigMap", "rasst-gateway")]["data"]["RASST_REDIS_URL"]
    service = objects[("Service", "rasst-redis")]
    port = service["spec"]["ports"][0]["port"]
    assert redis_url == f"redis://{service['metadata']['name']}:{port}/0"
    pod, redis = _container(objects, "Deployment", "rasst-redis")
    assert objects[("Deployment", "rasst-redis")]["spec"]["replicas"] == 1
    assert "--maxmemory" in redis["args"] and redis["resources"]["limits"]["memory"]
    assert redis["readinessProbe"]["exec"]["command"] == ["redis-cli", "ping"]
    # Each gateway pod tells the others its own address (the resume relay's target).
    _, gateway = _container(objects, "Deployment", "rasst-gateway")
    env = {e["name"]: e for e in gateway["env"]}
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert env["RASST_POD_ADDRESS"]["value"] == "http://$(POD_IP):8000"
    Settings(pod_address="http://10.0.0.7:8000", redis_url=redis_url)
    # Only gateways reach Redis.
    policy = objects[("NetworkPolicy", "rasst-redis")]["spec"]
    assert policy["ingress"][0]["from"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "rasst-gateway"}}}
    ]


# -- the LLM tier: vLLM production-stack Helm values (not Kubernetes objects) -------------

VALUES = K8S / "llm" / "production-stack-values.yaml"


def test_production_stack_routes_a_session_to_one_replica() -> None:
    values = load_yaml(VALUES)
    router = values["routerSpec"]
    assert router["routingLogic"] == "session"
    # The header the gateway's translator sends on every request.
    assert router["sessionKey"] == TranslatorParams(url="http://vllm").session_header


def test_production_stack_serves_the_model_the_gateway_asks_for(
    objects: dict[tuple[str, str], Any],
) -> None:
    (model,) = load_yaml(VALUES)["servingEngineSpec"]["modelSpec"]
    config = model["vllmConfig"]
    assert config["enablePrefixCaching"] is True
    assert config["maxModelLen"] >= 8192
    assert model["requestGPU"] == config["tensorParallelSize"]
    args = config["extraArgs"]
    gateway = objects[("ConfigMap", "rasst-gateway")]["data"]
    assert args[args.index("--served-model-name") + 1] == gateway["RASST_LLM_MODEL"]
    assert '"audio": 32' in args[args.index("--limit-mm-per-prompt") + 1]
    assert re.fullmatch(r"v0\.(1[1-9]|[2-9]\d)\.\d+", model["tag"]), model["tag"]
    # Helm release `rasst-llm` -> Service `rasst-llm-router-service`, port 80.
    assert gateway["RASST_LLM_URL"] == "http://rasst-llm-router-service"
