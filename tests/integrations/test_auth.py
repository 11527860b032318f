"""The official clients' own credentials reach a gateway with auth enabled."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from deepgram import AsyncDeepgramClient
from deepgram.environment import DeepgramClientEnvironment
from deepgram.listen.v1.types import ListenV1Metadata
from openai import AuthenticationError, OpenAI
from websockets.exceptions import ConnectionClosedError

from tests.support.live_server import SAMPLE, LiveServer, start_server

ADMIN_KEY = "integrations-admin-key"
pytestmark = pytest.mark.filterwarnings(
    "ignore:websockets.*is deprecated:DeprecationWarning",
    "ignore:.*legacy.*:DeprecationWarning",
)


@pytest.fixture(scope="module")
def auth_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(
        tmp_path_factory.mktemp("auth"),
        env={"RASST_AUTH_ENABLED": "true", "RASST_ADMIN_KEY": ADMIN_KEY},
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tenant_key(auth_gateway: LiveServer) -> str:
    created = httpx.post(
        f"{auth_gateway.http_url}/v1/tenants",
        json={"name": "integrations"},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    return str(created.json()["api_key"]["api_key"])


def _deepgram(server: LiveServer, key: str) -> AsyncDeepgramClient:
    ws = f"ws://127.0.0.1:{server.port}"
    env = DeepgramClientEnvironment(
        base=server.http_url, production=ws, agent=ws, agent_rest=server.http_url
    )
    return AsyncDeepgramClient(api_key=key, environment=env)


async def test_deepgram_sdk_sends_its_token(auth_gateway: LiveServer, tenant_key: str) -> None:
    messages: list[object] = []
    async with _deepgram(auth_gateway, tenant_key).listen.v1.connect(
        model="nova-3", encoding="linear16", sample_rate=16000
    ) as connection:
        await connection.send_media(b"\0\0" * 16000)  # 1 s of silence
        await connection.send_close_stream()
        async with asyncio.timeout(30):
            async for message in connection:
                messages.append(message)
    assert isinstance(messages[-1], ListenV1Metadata)
    assert messages[-1].duration == pytest.approx(1.0)


async def test_deepgram_wrong_key_is_unauthorized(auth_gateway: LiveServer) -> None:
    messages: list[object] = []
    async with _deepgram(auth_gateway, "rasst_not_a_key").listen.v1.connect(
        model="nova-3"
    ) as connection:
        with pytest.raises(ConnectionClosedError) as closed:
            async with asyncio.timeout(30):
                async for message in connection:
                    messages.append(message)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert [getattr(m, "variant", None) for m in messages] == ["unauthorized"]


def test_openai_client_sends_its_key(auth_gateway: LiveServer, tenant_key: str) -> None:
    base = f"{auth_gateway.http_url}/v1"
    with SAMPLE.open("rb") as audio, OpenAI(api_key=tenant_key, base_url=base) as client:
        result = client.audio.transcriptions.create(model="whisper-1", file=audio)
    assert "times" in result.text.lower()
    with (
        SAMPLE.open("rb") as audio,
        OpenAI(api_key="rasst_not_a_key", base_url=base, max_retries=0) as client,
        pytest.raises(AuthenticationError),
    ):
        client.audio.transcriptions.create(model="whisper-1", file=audio)
