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

import contextlib
import json
import socket
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from hypothesis import given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import CheckContext, not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from kernel.errors import ErrorCode
from tests.reliability.fuzzing import fuzz_examples, fuzz_settings, hostile_text, latin1_text
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


# -- hostile headers and strings, hang-ups mid-request (issue 22) --------------------------


def _assert_answer(response: httpx.Response) -> None:
    """Not a server error; a rejection carries the one envelope with a stable code."""
    assert response.status_code < 500, (
        response.request.method,
        response.request.url,
        response.text,
    )
    if response.status_code >= 400:
        error = response.json()["error"]
        assert error["code"] in ERROR_CODES, error


# Values whose parsing once answered 500 ("²".isdigit() is true, int("²") raises).
IF_MATCH = (
    st.sampled_from(["²", "¹", "³", '"²"', 'W/"³"', '"1"', "*", "1²", '"1", "²"']) | latin1_text()
)


@st.composite
def hostile_json_bodies(draw: st.DrawFn) -> object:
    text = hostile_text(70)
    entry = st.fixed_dictionaries(
        {
            "source": text,
            "targets": st.dictionaries(
                st.sampled_from(["de", "fr", "é"]), st.lists(text, max_size=2), max_size=2
            ),
        },
        optional={"note": text, "priority": st.integers(-(2**40), 2**40)},
    )
    return draw(
        st.fixed_dictionaries(
            {},
            optional={
                "name": text,
                "add": st.lists(entry, max_size=2),
                "remove": st.lists(text, max_size=3),
                "entries": st.lists(entry, max_size=2),
                "source_language": text,
                "text": text,
            },
        )
    )


def _hostile_call(
    http: httpx.Client,
    data: st.DataObject,
    path: str,
    method: str,
    ids: dict[str, tuple[str, ...]],
    tenant: Tenant,
) -> None:
    url = path
    for name, known in ids.items():
        if "{" + name + "}" in url:
            real = data.draw(st.booleans(), label=f"real {name}")
            value = data.draw(
                st.sampled_from(known) if real else hostile_text(70).filter(bool),
                label=name,
            )
            url = url.replace(
                "{" + name + "}",
                quote(value.encode("utf-8", "surrogatepass"), safe=""),
            )
    key = ADMIN_KEY if path.startswith("/v1/tenants") else tenant.key
    headers: dict[str, bytes] = {"Authorization": f"Bearer {key}".encode()}
    for name, strategy in (
        ("If-Match", IF_MATCH),
        ("If-None-Match", latin1_text()),
        ("X-API-Key", latin1_text()),
        ("Accept", latin1_text()),
    ):
        if data.draw(st.booleans(), label=f"send {name}"):
            # (Leading and trailing blanks are not part of a header value.)
            headers[name] = data.draw(strategy, label=name).strip(" ").encode("latin-1")
    if data.draw(st.booleans(), label="hostile auth"):
        hostile = "Bearer " + data.draw(latin1_text(), label="authorization")
        headers["Authorization"] = hostile.strip(" ").encode("latin-1")
    kwargs: dict[str, object] = {}
    if method in ("post", "put", "patch"):
        body = data.draw(hostile_json_bodies(), label="body")
        if data.draw(st.booleans(), label="as upload") and method != "patch":
            csv = "en,de\n" + ",".join(body.get("remove", ["x", "y"])[:2]) + "\n"
            kwargs["files"] = {"file": ("t.csv", csv.encode("utf-8", "surrogatepass"), "text/csv")}
        else:
            kwargs["content"] = json.dumps(body).encode()
            headers["Content-Type"] = b"application/json"
    _assert_answer(http.request(method.upper(), url, headers=headers, **kwargs))


def test_hostile_headers_and_strings_on_every_operation(
    gateway: LiveServer,
    api_schema: schemathesis.BaseSchema,
    tenant: Tenant,
    subtests: pytest.Subtests,
) -> None:
    """Every operation of the served document with Latin-1 (non-ASCII) header values
    (If-Match, keys, content type), non-ASCII path ids and JSON strings with lone
    surrogates and multi-byte runs."""
    paths = api_schema.raw_schema["paths"]
    ids = {
        "glossary_id": tenant.glossary_ids,
        "tenant_id": (tenant.id,),
        "key_id": ("k",),
        "session_id": ("s",),
        "token": ("t",),
        "fmt": ("srt", "vtt"),
    }
    with httpx.Client(base_url=gateway.http_url, timeout=15) as http:

        def target(path: str, method: str) -> Callable[[], None]:
            @fuzz_settings(6)
            @given(data=st.data())
            def run(data: st.DataObject) -> None:
                _hostile_call(http, data, path, method, ids, tenant)

            return run

        for path, methods in paths.items():
            for method in methods:
                if method not in ("get", "post", "put", "patch", "delete"):
                    continue
                with subtests.test(f"{method.upper()} {path}"):
                    target(path, method)()


def _raw_request(port: int, method: str, path: str, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{k}: {v}" for k, v in {**headers, "Content-Length": str(len(body))}.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _multipart(content: bytes) -> tuple[dict[str, str], bytes]:
    boundary = "fuzzb0undary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="t.csv"\r\n'
            "Content-Type: text/csv\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return {"Content-Type": f"multipart/form-data; boundary={boundary}"}, body


@fuzz_settings(30)
@given(
    request=st.sampled_from(["upload", "replace", "patch", "extract", "tenant"]),
    cut=st.floats(0, 1, exclude_max=True),
    reset=st.booleans(),
)
def test_hanging_up_at_every_stage_of_a_request(
    gateway: LiveServer, tenant: Tenant, request: str, cut: float, reset: bool
) -> None:
    """A client that stops anywhere in its request (headers, body, between the two) and
    closes (FIN) or resets (RST): no 5xx to anyone else, no traceback in the log."""
    auth = {"Authorization": f"Bearer {tenant.key}"}
    csv = (GLOSSARY_CSV * 200).encode()
    if request == "upload":
        extra, body = _multipart(csv)
        data = _raw_request(gateway.port, "POST", "/v1/glossaries", {**auth, **extra}, body)
    elif request == "replace":
        extra, body = _multipart(csv)
        path = f"/v1/glossaries/{tenant.glossary_ids[0]}"
        data = _raw_request(gateway.port, "PUT", path, {**auth, **extra, "If-Match": '"0"'}, body)
    elif request == "patch":
        body = json.dumps({"name": "é" * 100, "remove": ["x"] * 500}).encode()
        path = f"/v1/glossaries/{tenant.glossary_ids[0]}"
        data = _raw_request(
            gateway.port,
            "PATCH",
            path,
            {**auth, "Content-Type": "application/json", "If-Match": '"0"'},
            body,
        )
    elif request == "extract":
        extra, body = _multipart(b"Neural networks and GPUs. " * 400)
        data = _raw_request(gateway.port, "POST", "/v1/glossaries/extract", {**auth, **extra}, body)
    else:
        body = json.dumps({"name": "x" * 4000}).encode()
        data = _raw_request(
            gateway.port,
            "POST",
            "/v1/tenants",
            {"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/json"},
            body,
        )
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(data[: int(cut * len(data))])
        time.sleep(0.02)
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(0.5)
            with contextlib.suppress(OSError):
                answer = sock.recv(65536)
                assert not answer.startswith(b"HTTP/1.1 5"), answer[:300]
    assert httpx.get(f"{gateway.http_url}/healthz", timeout=5).status_code == 200


def test_gateway_is_unharmed(gateway: LiveServer, tenant: Tenant) -> None:
    assert gateway.process.poll() is None
    listed = httpx.get(f"{gateway.http_url}/v1/glossaries", headers=_bearer(tenant.key), timeout=10)
    assert listed.status_code == 200, listed.text
    log = gateway.log()
    for marker in ("Exception in ASGI application", "Traceback"):
        assert marker not in log, log[log.index(marker) - 2000 : log.index(marker) + 4000]


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
