"""Security of a gateway with auth enabled: every route, limits, quotas, tenants, logs.

All against real ``rasst serve`` processes on loopback.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from server.client import read_wav
from tests.support.live_server import TWO_CITIES, LiveServer, free_port, start_server
from tests.support.ws import END, Transcript, read_all, start_message

ADMIN = "admin-secret-0f9e8d7c"
METRICS = "metrics-secret-1a2b3c4d"
LLM_KEY = "llm-secret-5e6f7a8b"
SPEECH = read_wav(TWO_CITIES)[1]
CSV = "en,de\nage of wisdom,Zeitalter der Weisheit\n"
MAX_BODY = 64 * 1024

# Open by design: probes carry no data; API docs describe no tenant's data.
OPEN_PATHS = {"/healthz", "/readyz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
# Capability URLs: the viewer token is the permission, so a wrong one is "not found".
TOKEN_PATHS = re.compile(r"^/v1/view/\{token\}")


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(
        tmp_path_factory.mktemp("security"),
        "--max-pace",
        "8",
        env={
            "RASST_AUTH_ENABLED": "true",
            "RASST_ADMIN_KEY": ADMIN,
            "RASST_METRICS_KEY": METRICS,
            # A translator whose endpoint is down still holds a secret to leak.
            "RASST_LLM_URL": f"http://127.0.0.1:{free_port()}/v1",
            "RASST_LLM_MODEL": "nobody",
            "RASST_LLM_API_KEY": LLM_KEY,
            "RASST_MAX_SESSIONS_PER_TENANT": "1",
            "RASST_MAX_REQUEST_BYTES": str(MAX_BODY),
            "RASST_RATE_LIMIT_PER_MINUTE": "0",
            "RASST_RESUME_GRACE_SECONDS": "5",
            "RASST_LOG_LEVEL": "debug",
            "RASST_LOG_JSON": "true",
        },
    )
    yield server
    server.stop()


@pytest.fixture
async def http(secured: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=secured.http_url, timeout=10) as client:
        yield client


async def _tenant_key(http: httpx.AsyncClient, name: str) -> str:
    response = await http.post(
        "/v1/tenants", json={"name": name}, headers={"Authorization": f"Bearer {ADMIN}"}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["api_key"]["api_key"])


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _upload(http: httpx.AsyncClient, key: str) -> str:
    response = await http.post(
        "/v1/glossaries",
        files={"file": ("t.csv", CSV, "text/csv")},
        data={"name": "g"},
        headers=_auth(key),
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", lambda m: "srt" if m.group(0) == "{fmt}" else "x1", path)


async def test_every_http_route_needs_a_key(http: httpx.AsyncClient) -> None:
    spec = (await http.get("/openapi.json")).json()
    checked = 0
    for path, methods in spec["paths"].items():
        for method in methods:
            response = await http.request(method.upper(), _concrete(path))
            body: dict[str, Any] = response.json()
            if path in OPEN_PATHS:
                assert response.status_code < 400, path
            elif TOKEN_PATHS.match(path):
                assert response.status_code == 404, (method, path)
                assert body["error"]["code"] == "not_found"
            else:
                assert response.status_code == 401, (method, path, response.text)
                assert body["error"]["code"] == "unauthorized"
                checked += 1
    assert checked >= 14  # glossaries, tenants and keys, subtitles, metrics
    # Metrics: the metrics key or the admin key, nothing else.
    assert (await http.get("/metrics", headers=_auth(METRICS))).status_code == 200
    assert (await http.get("/metrics", headers=_auth(ADMIN))).status_code == 200
    tenant_key = await _tenant_key(http, "not-an-operator")
    assert (await http.get("/metrics", headers=_auth(tenant_key))).status_code == 401


async def test_streams_need_a_valid_key(secured: LiveServer) -> None:
    for headers in (None, _auth("sk-not-a-real-key")):
        async with connect(secured.ws_url, additional_headers=headers) as ws:
            await ws.send(start_message())
            transcript = await read_all(ws, Transcript(), within=10)
        assert transcript.error_codes() == ["unauthorized"]
        assert transcript.close_code == 1008


async def test_tenants_see_nothing_of_each_other(
    secured: LiveServer, http: httpx.AsyncClient
) -> None:
    key_a, key_b = await _tenant_key(http, "a"), await _tenant_key(http, "b")
    glossary_a = await _upload(http, key_a)
    # Glossaries: every verb on another tenant's id answers as if it did not exist.
    for method, suffix in [("GET", ""), ("DELETE", ""), ("GET", "/export?format=csv")]:
        response = await http.request(
            method, f"/v1/glossaries/{glossary_a}{suffix}", headers=_auth(key_b)
        )
        assert response.status_code == 404, (method, suffix)
    listed = (await http.get("/v1/glossaries", headers=_auth(key_b))).json()
    assert glossary_a not in json.dumps(listed)
    # Sessions: B cannot stream with A's glossary, read A's subtitles or resume A's session.
    async with connect(secured.ws_url, additional_headers=_auth(key_b)) as ws:
        await ws.send(start_message(glossary_ids=[glossary_a]))
        refused = await read_all(ws, Transcript(), within=10)
    assert refused.error_codes() == ["glossary_not_found"]

    ws_a = await connect(secured.ws_url, additional_headers=_auth(key_a))
    await ws_a.send(start_message(lm=1, glossary_ids=[glossary_a]))
    started = json.loads(await ws_a.recv())
    await ws_a.send(SPEECH[:16000].tobytes())
    await asyncio.sleep(1.0)
    ws_a.transport.abort()
    resume = json.dumps(
        {"type": "session.resume", "resume_token": started["resume_token"], "last_seq": 1}
    )
    async with connect(secured.ws_url, additional_headers=_auth(key_b)) as ws:
        await ws.send(resume)
        stolen = await read_all(ws, Transcript(), within=10)
    assert stolen.error_codes() == ["resume_failed"]
    subtitles = f"/v1/sessions/{started['session_id']}/subtitles.srt"
    assert (await http.get(subtitles, headers=_auth(key_b))).status_code == 404
    assert (await http.get(subtitles, headers=_auth(key_a))).status_code == 200
    # The owner still can resume.
    async with connect(secured.ws_url, additional_headers=_auth(key_a)) as ws:
        await ws.send(resume)
        assert json.loads(await ws.recv())["type"] == "session.resumed"
        await ws.send(END)
        ended = await read_all(ws, Transcript(), within=30)
    assert ended.events[-1]["type"] == "session.summary"


async def test_session_quota_is_per_tenant(secured: LiveServer, http: httpx.AsyncClient) -> None:
    key_a, key_b = await _tenant_key(http, "quota-a"), await _tenant_key(http, "quota-b")
    async with connect(secured.ws_url, additional_headers=_auth(key_a)) as first:
        await first.send(start_message())
        assert json.loads(await first.recv())["type"] == "session.started"
        async with connect(secured.ws_url, additional_headers=_auth(key_a)) as second:
            await second.send(start_message())
            over = await read_all(second, Transcript(), within=10)
        assert over.error_codes() == ["limit_exceeded"]
        async with connect(secured.ws_url, additional_headers=_auth(key_b)) as other:
            await other.send(start_message())
            assert json.loads(await other.recv())["type"] == "session.started"
            await other.send(END)
            await read_all(other, Transcript(), within=10)
        await first.send(END)
        await read_all(first, Transcript(), within=10)


async def test_request_bodies_are_limited_while_they_stream(
    secured: LiveServer, http: httpx.AsyncClient
) -> None:
    key = await _tenant_key(http, "uploader")
    big = "en,de\n" + "x,y\n" * (MAX_BODY // 4)
    declared = await http.post(
        "/v1/glossaries", files={"file": ("big.csv", big, "text/csv")}, headers=_auth(key)
    )
    assert declared.status_code == 413
    assert declared.json()["error"]["code"] == "payload_too_large"

    async def chunked() -> AsyncIterator[bytes]:
        # 4 MiB with no Content-Length: more than the socket buffers hold, so the
        # answer only arrives if the server reads the rest before closing.
        for _ in range(1024):
            yield b"a" * 4096

    streamed = await http.post(
        "/v1/glossaries",
        content=chunked(),
        headers={**_auth(key), "Content-Type": "text/csv"},
    )
    assert streamed.status_code == 413
    assert streamed.json()["error"]["code"] == "payload_too_large"
    # The server is fine afterwards.
    assert (await http.get("/v1/glossaries", headers=_auth(key))).status_code == 200


async def test_no_secret_reaches_the_log(secured: LiveServer, http: httpx.AsyncClient) -> None:
    key = await _tenant_key(http, "logged")
    await _upload(http, key)
    # A browser puts the key in the query string: the one place it is most likely logged.
    async with connect(f"{secured.ws_url}?api_key={key}") as ws:
        await ws.send(start_message(lm=1, target_languages=["de"]))
        started = json.loads(await ws.recv())
        await ws.send(SPEECH[:32000].tobytes())
        await ws.send(END)
        await read_all(ws, Transcript(), within=60)
    await http.get(f"/view/{started['viewer_token']}")
    await http.get("/metrics", headers=_auth(METRICS))
    await http.get("/v1/tenants", headers={"X-API-Key": ADMIN})
    await http.get("/v1/glossaries", params={"api_key": key})
    log = secured.log()
    assert '"level": "debug"' in log or '"level": "info"' in log  # JSON lines were written
    for secret in (
        ADMIN,
        METRICS,
        LLM_KEY,
        key,
        started["viewer_token"],
        started["resume_token"],
    ):
        assert secret not in log


async def test_rate_limits_are_per_key(tmp_path_factory: pytest.TempPathFactory) -> None:
    server = start_server(
        tmp_path_factory.mktemp("ratelimit"),
        env={
            "RASST_AUTH_ENABLED": "true",
            "RASST_ADMIN_KEY": ADMIN,
            "RASST_RATE_LIMIT_PER_MINUTE": "30",
            "RASST_RATE_LIMIT_BURST": "5",
        },
    )
    try:
        async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as http:
            key_a, key_b = await _tenant_key(http, "a"), await _tenant_key(http, "b")
            codes = [
                (await http.get("/v1/glossaries", headers=_auth(key_a))).status_code
                for _ in range(6)
            ]
            assert codes == [200] * 5 + [429]
            limited = await http.get("/v1/glossaries", headers=_auth(key_a))
            assert limited.json()["error"]["code"] == "rate_limited"
            assert 1 <= int(limited.headers["retry-after"]) <= 2
            # Another key has its own bucket; probes are never limited.
            assert (await http.get("/v1/glossaries", headers=_auth(key_b))).status_code == 200
            assert (await http.get("/healthz")).status_code == 200
        # Session starts draw from the same bucket.
        async with connect(server.ws_url, additional_headers=_auth(key_a)) as ws:
            await ws.send(start_message())
            transcript = await read_all(ws, Transcript(), within=10)
        assert transcript.error_codes() == ["rate_limited"]
    finally:
        server.stop()
