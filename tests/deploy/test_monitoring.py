"""The Grafana dashboard and the alert rules only name metrics that exist, so they cannot
silently rot when a metric is renamed: rasst_* from the gateway's registry
(server/metrics.py), vllm:* from the list below."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from prometheus_client.metrics import MetricWrapperBase

from server.metrics import GatewayMetrics
from tests.deploy.support import MONITORING, load_yaml

# vLLM's Prometheus metrics used here (vllm/v1/metrics/loggers.py; present in v0.11 through
# v0.3x). Counters are exported with a _total suffix, histograms as _bucket/_sum/_count.
VLLM_METRICS = {
    "vllm:time_to_first_token_seconds": "histogram",
    "vllm:e2e_request_latency_seconds": "histogram",
    "vllm:inter_token_latency_seconds": "histogram",
    "vllm:prefix_cache_queries": "counter",
    "vllm:prefix_cache_hits": "counter",
    "vllm:prompt_tokens": "counter",
    "vllm:generation_tokens": "counter",
    "vllm:num_requests_running": "gauge",
    "vllm:num_requests_waiting": "gauge",
    "vllm:kv_cache_usage_perc": "gauge",
}
PROMETHEUS_BUILTINS = {"up"}
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
# PromQL words that look like metric names but are not.
PROMQL_WORDS = {
    "sum",
    "by",
    "without",
    "rate",
    "irate",
    "increase",
    "histogram_quantile",
    "max",
    "min",
    "avg",
    "count",
    "clamp_min",
    "clamp_max",
    "le",
    "on",
    "ignoring",
    "group_left",
    "and",
    "or",
    "unless",
    "bool",
    "topk",
    "bottomk",
    "abs",
    "offset",
}


def _exposed(families: dict[str, tuple[str, set[str]]]) -> dict[str, set[str]]:
    """Sample name -> label names, for every family."""
    return {
        name + suffix: labels
        for name, (kind, labels) in families.items()
        for suffix in SUFFIXES[kind]
    }


@pytest.fixture(scope="module")
def known() -> dict[str, set[str] | None]:
    metrics = GatewayMetrics()
    families: dict[str, tuple[str, set[str]]] = {}
    for collector in vars(metrics).values():
        if isinstance(collector, MetricWrapperBase):
            labels = set(collector._labelnames)  # no public accessor for an unused family
            for family in collector.describe():
                families[family.name] = (family.type, labels)
    registered = {family.name for family in metrics.registry.collect()}
    assert registered == set(families), "GatewayMetrics registers a metric not kept as attribute"
    names: dict[str, set[str] | None] = dict(_exposed(families))
    names.update(dict.fromkeys(_exposed({n: (k, set()) for n, k in VLLM_METRICS.items()}), None))
    names.update(dict.fromkeys(PROMETHEUS_BUILTINS, None))
    return names


def _selectors(expr: str) -> list[tuple[str, set[str]]]:
    """(metric name, label names matched) for every metric selector of a PromQL expression."""
    expr = re.sub(r"\$\{?\w+\}?", "5m", expr)  # Grafana variables ($__rate_interval)
    expr = re.sub(r'"[^"]*"', '""', expr)  # label values and strings
    found = []
    for match in re.finditer(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?", expr):
        name, matchers = match[1], match[2] or ""
        before = expr[: match.start()].rstrip()
        if name in PROMQL_WORDS or before.endswith(("by (", "(le")):
            continue
        if re.fullmatch(r"\d.*|[smhdw]", name):
            continue
        labels = set(re.findall(r"([a-zA-Z_]\w*)\s*[=!~]", matchers))
        found.append((name, labels))
    return found


def _check(expr: str, known: dict[str, set[str] | None], where: str) -> list[str]:
    problems = []
    for name, labels in _selectors(expr):
        if name not in known:
            problems.append(f"{where}: unknown metric {name}")
            continue
        allowed = known[name]
        extra = labels - {"job", "instance", "namespace", "pod", "le"}
        if allowed is not None and extra - allowed:
            problems.append(f"{where}: {name} has no label(s) {sorted(extra - allowed)}")
    return problems


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (MONITORING / "grafana-dashboard.json").read_text(encoding="utf-8")
    )
    return data


def test_dashboard_names_only_existing_metrics(known: dict[str, set[str] | None]) -> None:
    problems = []
    exprs = 0
    for panel in _dashboard()["panels"]:
        for target in panel.get("targets", []):
            exprs += 1
            problems += _check(target["expr"], known, panel["title"])
    assert exprs > 10
    assert problems == []


def test_dashboard_covers_the_operational_signals() -> None:
    text = json.dumps(_dashboard())
    for name in (
        "rasst_sessions_active",
        "rasst_audio_seconds_total",
        "rasst_chunk_latency_seconds_bucket",
        "rasst_session_lag_seconds_bucket",
        "rasst_retrieval_seconds_bucket",
        "rasst_llm_time_to_first_token_seconds_bucket",
        "rasst_errors_total",
        "vllm:time_to_first_token_seconds_bucket",
        "vllm:prefix_cache_hits_total",
    ):
        assert name in text, name


def test_dashboard_is_well_formed() -> None:
    dashboard = _dashboard()
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["templating"]["list"][0]["name"] == "datasource"
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


def test_alert_rules_name_only_existing_metrics(known: dict[str, set[str] | None]) -> None:
    rules = load_yaml(MONITORING / "alerts.yml")
    problems = []
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
            assert rule["labels"]["severity"] in {"critical", "warning", "info"}
            problems += _check(rule["expr"], known, rule["alert"])
    assert problems == []


def test_metric_check_catches_a_renamed_metric(known: dict[str, set[str] | None]) -> None:
    assert _check("sum(rate(rasst_chunk_latency_bucket[5m]))", known, "x")
    assert _check('sum(rasst_errors_total{reason="x"})', known, "x")
    assert not _check('sum by (code) (rate(rasst_errors_total{code="x"}[5m]))', known, "x")


def test_scrape_configs_cover_gateway_retriever_and_vllm() -> None:
    jobs_used = set()
    for text in (
        (MONITORING / "alerts.yml").read_text(encoding="utf-8"),
        (MONITORING / "grafana-dashboard.json").read_text(encoding="utf-8"),
    ):
        jobs_used |= set(re.findall(r'job=\\?"([\w-]+)', text))
        for alternatives in re.findall(r'job=~\\?"([\w|-]+)', text):
            jobs_used |= set(alternatives.split("|"))
    compose = load_yaml(MONITORING / "prometheus.yml")
    compose_jobs = {job["job_name"] for job in compose["scrape_configs"]}
    assert {"rasst-gateway", "rasst-retriever", "vllm"} <= compose_jobs
    assert jobs_used <= compose_jobs
    assert compose["rule_files"] == ["/etc/prometheus/alerts.yml"]
    kubernetes = load_yaml(MONITORING / "prometheus-kubernetes.yml")
    assert {job["job_name"] for job in kubernetes["scrape_configs"]} == {"rasst", "vllm"}
