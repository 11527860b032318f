"""The official Deepgram Python SDK against a real gateway's ``/v1/listen``."""

from __future__ import annotations

import asyncio
import json
import wave

import httpx
import pytest
from deepgram import AsyncDeepgramClient
from deepgram.environment import DeepgramClientEnvironment
from deepgram.listen.v1.types import ListenV1Metadata, ListenV1Results
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedError

from tests.support.live_server import SAMPLE, LiveServer

# The SDK (7.16) still imports websockets' legacy client names: its warnings, not ours.
pytestmark = pytest.mark.filterwarnings(
    "ignore:websockets.*is deprecated:DeprecationWarning",
    "ignore:.*legacy.*:DeprecationWarning",
)


def _client(server: LiveServer, key: str = "any-key") -> AsyncDeepgramClient:
    ws = f"ws://127.0.0.1:{server.port}"
    env = DeepgramClientEnvironment(
        base=server.http_url, production=ws, agent=ws, agent_rest=server.http_url
    )
    return AsyncDeepgramClient(api_key=key, environment=env)


def _pcm() -> bytes:
    with wave.open(str(SAMPLE)) as wav:
        return wav.readframes(wav.getnframes())


async def _stream(connection: object, pcm: bytes, speed: float = 4.0) -> None:
    frame = 3200  # 0.1 s of 16 kHz s16
    for at in range(0, len(pcm), frame):
        await connection.send_media(pcm[at : at + frame])  # type: ignore[attr-defined]
        if at == frame * 5:
            await connection.send_keep_alive()  # type: ignore[attr-defined]
        await asyncio.sleep(0.1 / speed)
    await connection.send_close_stream()  # type: ignore[attr-defined]


async def test_sdk_live_transcription(gateway: LiveServer) -> None:
    messages: list[object] = []
    async with _client(gateway).listen.v1.connect(
        model="nova-3",
        encoding="linear16",
        sample_rate=16000,
        language="en-US",
        interim_results="true",
        smart_format="true",
    ) as connection:
        sender = asyncio.create_task(_stream(connection, _pcm()))
        async with asyncio.timeout(60):
            async for message in connection:
                messages.append(message)
        await sender

    results = [m for m in messages if isinstance(m, ListenV1Results)]
    finals = [r for r in results if r.is_final]
    assert finals, messages
    assert all(r.speech_final for r in finals)
    assert any(not r.is_final for r in results), "interim_results=true gives interim results"
    text = " ".join(r.channel.alternatives[0].transcript for r in finals).lower()
    assert "best of times" in text and "worst of times" in text, text
    for result in finals:
        alt = result.channel.alternatives[0]
        assert alt.words and alt.words[0].start >= result.start - 1e-3
        assert result.duration > 0 and result.metadata.request_id
    # CloseStream: the flush, then Metadata last, then the close.
    assert isinstance(messages[-1], ListenV1Metadata)
    assert abs(messages[-1].duration - 6.4) < 0.05


async def test_unsupported_encoding_is_an_error_message(gateway: LiveServer) -> None:
    messages: list[object] = []
    async with _client(gateway).listen.v1.connect(model="nova-3", encoding="opus") as connection:
        # The SDK raises on a close other than 1000, after the messages before it.
        with pytest.raises(ConnectionClosedError) as closed:
            async with asyncio.timeout(10):
                async for message in connection:
                    messages.append(message)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1003
    assert len(messages) == 1
    error = messages[0]
    assert getattr(error, "type", None) == "Error"
    assert getattr(error, "variant", None) == "unsupported_encoding"
    assert "linear16" in getattr(error, "description", "")


async def test_translations_and_terms_are_extension_messages(
    translating_gateway: LiveServer,
) -> None:
    """target_language and glossary: Translation and Terms beside Deepgram's Results."""
    async with httpx.AsyncClient(timeout=30) as client:
        upload = await client.post(
            f"{translating_gateway.http_url}/v1/glossaries",
            files={"file": ("t.csv", "en,de\nworst of times,schlechteste der Zeiten\n")},
        )
    assert upload.status_code == 201, upload.text
    query = f"encoding=linear16&sample_rate=16000&target_language=de&glossary={upload.json()['id']}"
    url = f"ws://127.0.0.1:{translating_gateway.port}/v1/listen?{query}"
    messages: list[dict] = []
    async with connect(url, additional_headers={"Authorization": "Token k"}) as ws:
        sender = asyncio.create_task(_stream(_RawSocket(ws), _pcm()))
        async with asyncio.timeout(60):
            async for text in ws:
                messages.append(json.loads(text))
        await sender
    kinds = [m["type"] for m in messages]
    assert "Results" in kinds and kinds[-1] == "Metadata"
    translations = [m for m in messages if m["type"] == "Translation"]
    assert translations and all(m["lang"] == "de" and "Wort" in m["text"] for m in translations)
    terms = [t for m in messages if m["type"] == "Terms" for t in m["terms"]]
    assert any(t["targets"] == {"de": "schlechteste der Zeiten"} for t in terms), terms


class _RawSocket:
    """The three calls _stream makes, over a plain websockets connection."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws

    async def send_media(self, data: bytes) -> None:
        await self._ws.send(data)

    async def send_keep_alive(self) -> None:
        await self._ws.send(json.dumps({"type": "KeepAlive"}))

    async def send_close_stream(self) -> None:
        await self._ws.send(json.dumps({"type": "CloseStream"}))


async def test_a_hang_up_ends_the_bridged_session(gateway: LiveServer) -> None:
    """A client that drops mid-stream frees its session slot (bridged sessions do not resume)."""
    url = f"ws://127.0.0.1:{gateway.port}/v1/listen?encoding=linear16&sample_rate=16000"

    async def sessions(client: httpx.AsyncClient) -> int:
        return int((await client.get(f"{gateway.http_url}/readyz")).json()["sessions"])

    # Polling the server over HTTP: there is no local event to wait on.
    async with httpx.AsyncClient(timeout=5) as client, asyncio.timeout(30):
        async with connect(url) as ws:
            await ws.send(_pcm()[: 3200 * 10])  # 1 s of speech
            while await sessions(client) == 0:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        # The link is gone without CloseStream.
        while await sessions(client):  # noqa: ASYNC110
            await asyncio.sleep(0.1)
