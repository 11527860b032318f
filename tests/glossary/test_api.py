from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.glossary.conftest import ADMIN_KEY, SHARED_GLOSSARIES
from tests.glossary.test_formats import HOSTILE

TSV = "en\tde\tzh\nBLEU score\tBLEU-Wert\tBLEU 分数\nGPU\tGrafikprozessor\t图形处理器\n".encode()


async def upload(
    client: httpx.AsyncClient,
    data: bytes = TSV,
    filename: str = "terms.tsv",
    headers: dict[str, str] | None = None,
    **fields: str,
) -> httpx.Response:
    return await client.post(
        "/v1/glossaries", files={"file": (filename, data)}, data=fields, headers=headers or {}
    )


async def count(client: httpx.AsyncClient, headers: dict[str, str] | None = None) -> int:
    response = await client.get("/v1/glossaries", headers=headers or {})
    assert response.status_code == 200
    return int(response.json()["total"])


async def test_upload_get_list_export(client: httpx.AsyncClient) -> None:
    response = await upload(client, name="ACL terms")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "ACL terms" and body["version"] == 1
    assert response.headers["ETag"] == '"1"' and body["etag"] == '"1"'
    assert body["report"]["entries_accepted"] == 2 and body["report"]["format"] == "tsv"
    gid = body["id"]

    page = await client.get(f"/v1/glossaries/{gid}", params={"offset": 1, "limit": 1})
    assert page.status_code == 200
    assert [e["source"] for e in page.json()["entries"]] == ["GPU"]
    assert page.json()["entry_count"] == 2
    unchanged = await client.get(f"/v1/glossaries/{gid}", headers={"If-None-Match": '"1"'})
    assert unchanged.status_code == 304

    listing = (await client.get("/v1/glossaries")).json()
    assert [g["id"] for g in listing["items"]] == [gid]

    for fmt in ("csv", "tsv", "json", "tbx", "tmx"):
        exported = await client.get(f"/v1/glossaries/{gid}/export", params={"format": fmt})
        assert exported.status_code == 200
        assert gid in exported.headers["content-disposition"]
        again = await upload(client, exported.content, f"again.{fmt}")
        assert again.status_code == 201, again.text
        copy = await client.get(f"/v1/glossaries/{again.json()['id']}")
        assert (
            copy.json()["entries"]
            == page.json()["entries"][:0]
            + (await client.get(f"/v1/glossaries/{gid}")).json()["entries"]
        )
    bad = await client.get(f"/v1/glossaries/{gid}/export", params={"format": "xlsx"})
    assert bad.status_code == 422


async def test_json_body_create_replace_patch_delete(client: httpx.AsyncClient) -> None:
    created = await client.post(
        "/v1/glossaries",
        json={
            "name": "j",
            "source_language": "en",
            "entries": [{"source": "LoRA", "targets": {"de": "LoRA", "zh": ["低秩适配"]}}],
        },
    )
    assert created.status_code == 201, created.text
    gid = created.json()["id"]

    stale = await client.put(
        f"/v1/glossaries/{gid}", files={"file": ("x.tsv", TSV)}, headers={"If-Match": '"7"'}
    )
    assert stale.status_code == 412
    replaced = await client.put(
        f"/v1/glossaries/{gid}", files={"file": ("x.tsv", TSV)}, headers={"If-Match": '"1"'}
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["version"] == 2 and replaced.json()["name"] == "j"

    patched = await client.patch(
        f"/v1/glossaries/{gid}",
        json={
            "add": [{"source": "LoRA", "targets": {"de": "LoRA"}}],
            "remove": ["GPU", "nope"],
            "name": "renamed",
        },
        headers={"If-Match": '"2"'},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json() | {"report": None} == {
        "id": gid,
        "version": 3,
        "etag": '"3"',
        "entry_count": 2,
        "added": 1,
        "updated": 0,
        "removed": 1,
        "not_found": ["nope"],
        "report": None,
    }
    detail = (await client.get(f"/v1/glossaries/{gid}")).json()
    assert detail["name"] == "renamed"
    assert [e["source"] for e in detail["entries"]] == ["BLEU score", "LoRA"]

    invalid = await client.post("/v1/glossaries", json={"entries": "nope"})
    assert invalid.status_code == 422
    assert (await client.delete(f"/v1/glossaries/{gid}")).status_code == 204
    assert (await client.get(f"/v1/glossaries/{gid}")).status_code == 404
    assert (await client.delete(f"/v1/glossaries/{gid}")).json()["error"]["code"] == (
        "glossary_not_found"
    )


@pytest.mark.parametrize("path", sorted(SHARED_GLOSSARIES.glob("*")), ids=lambda p: p.name)
async def test_shared_glossaries_upload(client: httpx.AsyncClient, path: Any) -> None:
    response = await upload(client, path.read_bytes(), path.name)
    assert response.status_code == 201, response.text
    assert response.json()["report"]["skipped"] == []


@pytest.mark.parametrize("name", list(HOSTILE))
async def test_hostile_uploads_store_nothing(client: httpx.AsyncClient, name: str) -> None:
    data, code = HOSTILE[name]
    response = await upload(client, data, "upload.bin")
    assert 400 <= response.status_code < 500
    error = response.json()["error"]
    assert error["code"] == code.value
    assert "report" in error["detail"]
    assert await count(client) == 0


async def test_oversized_body_is_refused_before_parsing(client: httpx.AsyncClient) -> None:
    big = b"en,de\n" + b"a,b\n" * (50 * 1024 * 1024 // 4)
    response = await upload(client, big, "big.csv")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"

    async def chunks() -> Any:  # no Content-Length: the stream itself is capped
        for _ in range(50):
            yield b"x" * (1024 * 1024)

    response = await client.post(
        "/v1/glossaries", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert await count(client) == 0


async def test_upload_form_errors(client: httpx.AsyncClient) -> None:
    no_file = await client.post(
        "/v1/glossaries", data={"name": "x"}, files={"other": ("a.csv", b"en,de\na,b\n")}
    )
    assert no_file.status_code == 422
    wrong_type = await client.post(
        "/v1/glossaries", content=b"en,de\na,b\n", headers={"Content-Type": "text/csv"}
    )
    assert wrong_type.status_code == 415
    bad_format = await upload(client, format="xlsx")
    assert bad_format.status_code == 415
    headerless = await upload(client, b"AI,KI\n", "pairs.csv", target_language="de")
    assert headerless.status_code == 201
    assert headerless.json()["report"]["target_languages"] == ["de"]


async def test_openapi_documents_every_operation(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    paths = spec["paths"]
    assert set(paths["/v1/glossaries"]) == {"get", "post"}
    assert set(paths["/v1/glossaries/{glossary_id}"]) == {"get", "put", "patch", "delete"}
    assert "get" in paths["/v1/glossaries/{glossary_id}/export"]
    post_body = paths["/v1/glossaries"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json"} <= set(post_body)
    refs = set(_refs(spec))
    missing = {r for r in refs if r.split("/")[-1] not in spec["components"]["schemas"]}
    assert not missing
    assert {"HTTPBearer", "APIKeyHeader"} <= set(spec["components"]["securitySchemes"])


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


# -- tenants --------------------------------------------------------------------------------------


async def _tenant(client: httpx.AsyncClient, name: str) -> dict[str, str]:
    response = await client.post(
        "/v1/tenants", json={"name": name}, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    )
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['api_key']['api_key']}"}


async def test_cross_tenant_access_is_refused_everywhere(auth_client: httpx.AsyncClient) -> None:
    alice = await _tenant(auth_client, "alice")
    bob = await _tenant(auth_client, "bob")
    bob_key = {"X-API-Key": bob["Authorization"].removeprefix("Bearer ")}
    created = await upload(auth_client, headers=alice)
    assert created.status_code == 201
    gid = created.json()["id"]
    url = f"/v1/glossaries/{gid}"
    attempts = [
        ("GET", url, {}),
        ("GET", f"{url}/export", {}),
        ("PUT", url, {"files": {"file": ("x.tsv", TSV)}}),
        ("PATCH", url, {"json": {"remove": ["GPU"]}}),
        ("DELETE", url, {}),
    ]
    for method, path, extra in attempts:
        for headers in (bob, bob_key):
            response = await auth_client.request(method, path, headers=headers, **extra)
            assert response.status_code == 404, (method, path)
            assert response.json()["error"]["code"] == "glossary_not_found"
        anonymous = await auth_client.request(method, path, **extra)
        assert anonymous.status_code == 401
    assert await count(auth_client, bob) == 0
    assert await count(auth_client, alice) == 1
    assert (await auth_client.get("/v1/glossaries")).status_code == 401
    assert (await upload(auth_client)).status_code == 401
    assert (await auth_client.get(url, headers=alice)).json()["version"] == 1


async def test_admin_api_needs_the_admin_key(auth_client: httpx.AsyncClient) -> None:
    alice = await _tenant(auth_client, "alice")
    assert (await auth_client.get("/v1/tenants", headers=alice)).status_code == 401
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    tenants = (await auth_client.get("/v1/tenants", headers=admin)).json()
    tenant_id = next(t["id"] for t in tenants if t["name"] == "alice")
    keys = (await auth_client.get(f"/v1/tenants/{tenant_id}/keys", headers=admin)).json()
    revoked = await auth_client.delete(
        f"/v1/tenants/{tenant_id}/keys/{keys[0]['id']}", headers=admin
    )
    assert revoked.status_code == 204
    assert (await auth_client.get("/v1/glossaries", headers=alice)).status_code == 401
    new_key = await auth_client.post(f"/v1/tenants/{tenant_id}/keys", headers=admin)
    fresh = {"Authorization": f"Bearer {new_key.json()['api_key']}"}
    assert (await auth_client.get("/v1/glossaries", headers=fresh)).status_code == 200
    assert json.dumps(keys).count("rasst_") == 1  # only the prefix, never the key
