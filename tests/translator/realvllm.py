"""Helpers for the tests against the real CPU vLLM."""

from __future__ import annotations

import json
import re
import time
import uuid
import wave
from typing import Any

import httpx
import numpy as np

from kernel.frames import AudioChunk, TermHits
from server.stages import SessionContext
from tests.support.live_server import TWO_CITIES


class RecordingTransport(httpx.AsyncBaseTransport):
    """The real HTTP transport, keeping a copy of every chat request body."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.bodies: list[dict[str, Any]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/chat/completions"):
            self.bodies.append(json.loads(request.content))
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def speech() -> np.ndarray:
    with wave.open(str(TWO_CITIES)) as wav:
        assert wav.getframerate() == 16_000 and wav.getnchannels() == 1
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")


def chunks(count: int, lm: int = 1) -> list[AudioChunk]:
    """``count`` consecutive chunks of the test speech (wrapping around if needed)."""
    pcm = speech()
    size = int(0.96 * lm * 16_000)
    out = []
    for i in range(count):
        start = (i * size) % (len(pcm) - size)
        out.append(AudioChunk(i, i * size, pcm[start : start + size].copy(), time.monotonic()))
    return out


def session_context(*langs: str, lm: int = 1, tenant: str | None = None) -> SessionContext:
    return SessionContext(
        session_id=f"s-{uuid.uuid4().hex[:8]}",
        tenant=tenant or f"tenant-{uuid.uuid4().hex[:8]}",
        source_language="en",
        target_languages=langs,
        lm=lm,
        chunk_seconds=0.96 * lm,
    )


def no_terms(index: int) -> TermHits:
    return TermHits(chunk_index=index)


async def metric(base_url: str, name: str, **labels: str) -> float:
    """A metric of vLLM's Prometheus /metrics, summed over the matching series."""
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(f"{base_url}/metrics")).text
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{re.escape(name)}\{{(.*)\}} (\S+)$", line)
        if match and all(f'{k}="{v}"' in match.group(1) for k, v in labels.items()):
            total += float(match.group(2))
    return total
