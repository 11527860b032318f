"""Python client for the streaming protocol.

    async with RasstStream("ws://127.0.0.1:8000/v1/stream", StreamOptions(target_languages=["de"])) as s:
        ...  # s.send_audio(pcm_bytes) / await s.end() / async for event in s.events()

``stream_wav`` does the common case: stream a WAV file at real time (or faster)
and yield every server event.
"""

from __future__ import annotations

import asyncio
import json
import time
import wave
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect

from server.protocol import SERVER_EVENT_ADAPTER, SUPPORTED_SAMPLE_RATES


class StreamError(RuntimeError):
    """The server refused or ended the stream with an error event."""

    def __init__(self, event: dict[str, Any]) -> None:
        super().__init__(f"{event.get('code')}: {event.get('message')}")
        self.event = event
        self.code = event.get("code")


@dataclass(frozen=True)
class StreamOptions:
    target_languages: Sequence[str] = ()
    glossary_ids: Sequence[str] = ()
    lm: int = 2
    source_language: str = "en"
    sample_rate: int = 16000
    api_key: str | None = None
    client: str = "rasst-python"
    extra: dict[str, Any] = field(default_factory=dict)

    def start_message(self) -> dict[str, Any]:
        message: dict[str, Any] = {
            "type": "session.start",
            "source_language": self.source_language,
            "target_languages": list(self.target_languages),
            "glossary_ids": list(self.glossary_ids),
            "lm": self.lm,
            "audio": {"encoding": "pcm_s16le", "sample_rate": self.sample_rate, "channels": 1},
            "client": self.client,
        }
        if self.api_key:
            message["api_key"] = self.api_key
        message.update(self.extra)
        return message


class RasstStream:
    """One streaming session as an async context manager."""

    def __init__(self, url: str, options: StreamOptions, *, open_timeout: float = 10.0) -> None:
        self._url = url
        self._options = options
        self._open_timeout = open_timeout
        self._ws: ClientConnection | None = None
        self.started: dict[str, Any] | None = None

    async def __aenter__(self) -> RasstStream:
        headers = (
            {"Authorization": f"Bearer {self._options.api_key}"} if self._options.api_key else None
        )
        self._ws = await connect(
            self._url,
            additional_headers=headers,
            open_timeout=self._open_timeout,
            max_size=2**22,
        )
        await self._ws.send(json.dumps(self._options.start_message()))
        async with asyncio.timeout(self._open_timeout):
            first = json.loads(await self._ws.recv())
        if first.get("type") != "session.started":
            await self._ws.close()
            raise StreamError(first)
        self.started = first
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._ws is not None:
            await self._ws.close()

    @property
    def ws(self) -> ClientConnection:
        assert self._ws is not None, "use RasstStream as an async context manager"
        return self._ws

    async def send_audio(self, pcm: bytes) -> None:
        await self.ws.send(pcm)

    async def end(self) -> None:
        await self.ws.send(json.dumps({"type": "session.end"}))

    async def events(self, *, validate: bool = True) -> AsyncIterator[dict[str, Any]]:
        """Server events until the close; validated against the protocol models."""
        async for message in self.ws:
            event = json.loads(message)
            if validate:
                SERVER_EVENT_ADAPTER.validate_python(event)
            yield event


def read_wav(path: str | Path) -> tuple[int, np.ndarray]:
    """(sample rate, int16 mono samples) of a PCM WAV file; stereo is mixed down."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM WAV files are supported")
        rate, channels = wav.getframerate(), wav.getnchannels()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1).astype(np.int16)
    if rate not in SUPPORTED_SAMPLE_RATES:
        import soxr

        samples = soxr.resample(samples, rate, 16000).astype(np.int16)
        rate = 16000
    return rate, samples.astype(np.int16, copy=False)


async def send_paced(
    stream: RasstStream,
    samples: np.ndarray,
    sample_rate: int,
    *,
    speed: float = 1.0,
    frame_seconds: float = 0.1,
) -> None:
    """Send audio in frames at ``speed`` × real time, then ``session.end``."""
    frame = max(1, int(sample_rate * frame_seconds))
    started = time.monotonic()
    for sent, offset in enumerate(range(0, len(samples), frame)):
        await stream.send_audio(samples[offset : offset + frame].tobytes())
        if speed > 0:
            due = started + (sent + 1) * frame_seconds / speed
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
    await stream.end()


async def stream_wav(
    url: str,
    path: str | Path,
    options: StreamOptions,
    *,
    speed: float = 1.0,
    frame_seconds: float = 0.1,
) -> AsyncIterator[dict[str, Any]]:
    """Stream a WAV file and yield every event, ``session.started`` first, until the close."""
    rate, samples = read_wav(path)
    options = StreamOptions(**{**options.__dict__, "sample_rate": rate})
    async with RasstStream(url, options) as stream:
        assert stream.started is not None
        yield stream.started
        sender = asyncio.create_task(
            send_paced(stream, samples, rate, speed=speed, frame_seconds=frame_seconds)
        )
        try:
            async for event in stream.events():
                yield event
        finally:
            if not sender.done():
                sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
