"""Fuzzing the REST API with schemathesis against the OpenAPI document a real gateway serves.

The gateway runs with auth enabled; the glossary operations are called with a
tenant's key (sometimes with none or a wrong one, and sometimes on glossaries
that exist), the tenant operations with the admin key. Positive and negative
inputs, multipart uploads included.

Checks on every response: no 5xx (``not_a_server_error``), documented responses
match their schema (``response_schema_conformance``), and every 4xx carries the
one error envelope with a stable ``ErrorCode`` (``stable_error_envelope``).
429 (rate limit) and 413 (body limit) are valid rejections like any other 4xx.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
import schemathesis
from hypothesis import given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import CheckContext, not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from server.errors import ErrorCode
from tests.reliability.fuzzing import fuzz_examples, fuzz_settings
from tests.support.live_server import LiveServer, start_server

ADMIN_KEY = "fuzz-admin-key"
GLOSSARY_CSV = "en,de,note\nGPU,Grafikprozessor,hardware\nlearning rate,Lernrate,\n"
# Per operation and test; about 20 operations.
EXAMPLES_PER_OPERATION = fuzz_examples(15)
ERROR_CODES = frozenset(code.value for code in ErrorCode) - {ErrorCode.INTERNAL_ERROR.value}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(
        tmp_path_factory.mktemp("fuzz-rest"),
        "--workers",
        "1",
        env={
            "RASST_AUTH_ENABLED": "true",
            "RASST_ADMIN_KEY": ADMIN_KEY,
            "RASST_CAPTIONS": "false",
            # Thousands of requests from one key: the rate limit would answer most of them.
            "RASST_RATE_LIMIT_PER_MINUTE": "0",
        },
    )
    yield server
    server.stop()


@dataclass(frozen=True)
class Tenant:
    id: str
    key: str
    glossary_ids: tuple[str, ...]


@pytest.fixture(scope="module")
def tenant(gateway: LiveServer) -> Tenant:
    """A tenant with a key and two glossaries, so that some cases reach real resources."""
    created = httpx.post(
        f"{gateway.http_url}/v1/tenants",
        json={"name": "fuzz"},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    key = created.json()["api_key"]["api_key"]
    ids = tuple(_new_glossary(gateway, key) for _ in range(2))
    return Tenant(created.json()["id"], key, ids)


def _new_glossary(gateway: LiveServer, key: str) -> str:
    upload = httpx.post(
        f"{gateway.http_url}/v1/glossaries",
        files={"file": ("terms.csv", GLOSSARY_CSV, "text/csv")},
        headers=_bearer(key),
        timeout=10,
    )
    assert upload.status_code == 201, upload.text
    return str(upload.json()["id"])


@pytest.fixture(scope="module")
def api_schema(gateway: LiveServer) -> schemathesis.BaseSchema:
    config = schemathesis.Config.from_dict(
        {
            "request-timeout": 15,
            "warnings": False,
        }
    )
    return schemathesis.openapi.from_url(f"{gateway.http_url}/openapi.json", config=config)


def stable_error_envelope(
    ctx: CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> None:
    """Every rejection is ``{"error": {"code", "message", "detail"}}`` with a documented code."""
    if not 400 <= response.status_code < 500:
        return
    try:
        body = json.loads(response.content)
    except ValueError:
        raise AssertionError(
            f"{response.status_code} without a JSON body: {response.content[:200]!r}"
        ) from None
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), body
    error = body["error"]
    assert error.get("code") in ERROR_CODES, (
        f"{response.status_code} with code {error.get('code')!r}"
    )
    assert isinstance(error.get("message"), str) and error["message"], error
    assert "detail" in error, error


CHECKS = [not_a_server_error, response_schema_conformance, stable_error_envelope]


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _operations(schema: schemathesis.BaseSchema) -> list[schemathesis.APIOperation]:
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations, "the served OpenAPI document has no operations"
    return operations


def _cases(operation: schemathesis.APIOperation) -> st.SearchStrategy[schemathesis.Case]:
    """Valid and invalid requests, and the examples the document gives."""
    return st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
        *operation.get_strategies_from_examples(),
    )


def fuzz_operation(
    operation: schemathesis.APIOperation,
    choose_headers: Callable[[st.DataObject], dict[str, str]],
    real_ids: dict[str, tuple[str, ...]],
    examples: int,
) -> None:
    @fuzz_settings(examples)
    @given(case=_cases(operation), data=st.data())
    def run(case: schemathesis.Case, data: st.DataObject) -> None:
        params = case.path_parameters or {}
        for name, ids in real_ids.items():
            if name in params and data.draw(st.booleans(), label=f"existing {name}"):
                params[name] = data.draw(st.sampled_from(ids), label=name)
        response = case.call(headers=choose_headers(data))
        case.validate_response(response, checks=CHECKS)

    run()


# schemathesis' own pytest integration for a schema served by a fixture
# (``schemathesis.pytest.from_fixture``) does not run under pytest 9 (it writes
# ``Function._nodeid``), so each operation is a subtest driving its own Hypothesis run.


def test_glossary_and_session_api(
    api_schema: schemathesis.BaseSchema, tenant: Tenant, subtests: pytest.Subtests
) -> None:
    credentials = {
        "tenant": _bearer(tenant.key),
        "x-api-key": {"X-API-Key": tenant.key},
        "none": {},
        "wrong": _bearer("rasst_not_a_key"),
        "admin": _bearer(ADMIN_KEY),
    }

    def choose(data: st.DataObject) -> dict[str, str]:
        weighted = ["tenant", "tenant", "tenant", "x-api-key", "none", "wrong", "admin"]
        return credentials[data.draw(st.sampled_from(weighted), label="credentials")]

    for operation in _operations(api_schema):
        if operation.path.startswith("/v1/tenants"):
            continue
        with subtests.test(operation.label):
            fuzz_operation(
                operation, choose, {"glossary_id": tenant.glossary_ids}, EXAMPLES_PER_OPERATION
            )


def test_tenant_admin_api(
    api_schema: schemathesis.BaseSchema, tenant: Tenant, subtests: pytest.Subtests
) -> None:
    credentials = {"admin": _bearer(ADMIN_KEY), "tenant": _bearer(tenant.key), "none": {}}

    def choose(data: st.DataObject) -> dict[str, str]:
        weighted = ["admin", "admin", "tenant", "none"]
        return credentials[data.draw(st.sampled_from(weighted), label="credentials")]

    for operation in _operations(api_schema):
        if not operation.path.startswith("/v1/tenants"):
            continue
        with subtests.test(operation.label):
            fuzz_operation(operation, choose, {"tenant_id": (tenant.id,)}, EXAMPLES_PER_OPERATION)


def test_gateway_is_unharmed(gateway: LiveServer, tenant: Tenant) -> None:
    assert gateway.process.poll() is None
    listed = httpx.get(f"{gateway.http_url}/v1/glossaries", headers=_bearer(tenant.key), timeout=10)
    assert listed.status_code == 200, listed.text
    log = gateway.log()
    assert "Exception in ASGI application" not in log, log[-4000:]


# -- regressions found by the fuzzers ---------------------------------------------------


@pytest.mark.parametrize("detail", [False, True], ids=["list", "entries"])
def test_huge_offset_is_a_validation_error(
    gateway: LiveServer, tenant: Tenant, detail: bool
) -> None:
    path = f"/v1/glossaries/{_new_glossary(gateway, tenant.key)}" if detail else "/v1/glossaries"
    response = httpx.get(
        f"{gateway.http_url}{path}",
        params={"offset": str(10**20)},
        headers=_bearer(tenant.key),
        timeout=10,
    )
    assert response.status_code == 422, response.text


def test_lone_surrogate_in_patch_remove_is_rejected(gateway: LiveServer, tenant: Tenant) -> None:
    response = httpx.patch(
        f"{gateway.http_url}/v1/glossaries/{_new_glossary(gateway, tenant.key)}",
        content=b'{"remove": ["\\ud800"]}',
        headers={**_bearer(tenant.key), "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code < 500, response.text
