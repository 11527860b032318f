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
from websockets.exceptions import ConnectionClosed

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
    # 2: interleaved stereo frames (the server mixes them down).
    channels: int = 1
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
            "audio": {
                "encoding": "pcm_s16le",
                "sample_rate": self.sample_rate,
                "channels": self.channels,
            },
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
    def open_timeout(self) -> float:
        return self._open_timeout

    def replace_connection(self, ws: ClientConnection) -> None:
        """Continue on a resumed connection (the old one is gone)."""
        self._ws = ws

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
    offset: int = 0,
    clock_start: float | None = None,
    channels: int = 1,
) -> None:
    """Send audio from ``offset`` in frames at ``speed`` × real time, then ``session.end``.

    Pacing follows each frame's position in the stream from ``clock_start``, so after
    a resume the audio the server missed goes out at once and the rest on time.
    """
    per_second = sample_rate * channels  # ``samples`` interleaves the channels
    frame = max(channels, int(sample_rate * frame_seconds) * channels)
    started = time.monotonic() if clock_start is None else clock_start
    for position in range(offset, len(samples), frame):
        await stream.send_audio(samples[position : position + frame].tobytes())
        if speed > 0:
            due = started + (position + frame) / per_second / speed
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
    await stream.end()


# Below the server's pace limit by a margin: network jitter bunches frames together.
_PACE_MARGIN = 0.9


def fastest_speed(started: dict[str, Any]) -> float:
    """The fastest playback speed a session accepts, from its ``session.started``."""
    return _PACE_MARGIN * float(started["limits"]["max_pace"])


async def _resume(
    url: str, options: StreamOptions, token: str, last_seq: int, grace: float, open_timeout: float
) -> tuple[ClientConnection, dict[str, Any]]:
    """A new connection that continues the session; retried until the grace runs out."""
    deadline = time.monotonic() + grace
    headers = {"Authorization": f"Bearer {options.api_key}"} if options.api_key else None
    message: dict[str, Any] = {
        "type": "session.resume",
        "resume_token": token,
        "last_seq": last_seq,
    }
    while True:
        try:
            ws = await connect(
                url, additional_headers=headers, open_timeout=open_timeout, max_size=2**22
            )
            await ws.send(json.dumps(message))
            async with asyncio.timeout(open_timeout):
                first = json.loads(await ws.recv())
        except (OSError, TimeoutError, ConnectionClosed):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
            continue
        if first.get("type") != "session.resumed":
            await ws.close()
            raise StreamError(first)
        return ws, first


async def stream_wav(
    url: str,
    path: str | Path,
    options: StreamOptions,
    *,
    speed: float = 1.0,
    frame_seconds: float = 0.1,
    resume: bool = True,
) -> AsyncIterator[dict[str, Any]]:
    """Stream a WAV file and yield every event, ``session.started`` first, until the close.

    ``speed`` 0 (or less) streams as fast as the server accepts: just under the
    ``limits.max_pace`` that ``session.started`` announces (faster audio is refused
    with ``pace_exceeded``). For a whole recording at full speed use batch work
    (``rasst subtitles FILE``, ``POST /v1/audio/transcriptions``).

    With ``resume`` (and a server that offers it), a dropped connection is resumed:
    ``session.resumed`` is yielded, audio the server missed is sent again, and
    replayed events already yielded are skipped, so the caller sees each event once.
    """
    rate, samples = read_wav(path)
    options = StreamOptions(**{**options.__dict__, "sample_rate": rate})
    async with RasstStream(url, options) as stream:
        started = stream.started
        assert started is not None
        yield started
        if speed <= 0:
            speed = fastest_speed(started)
        token = started.get("resume_token") if resume else None
        grace = float(started["limits"].get("resume_grace_seconds", 0))
        last_seq = int(started.get("seq", 0))
        clock_start = time.monotonic()
        offset, input_ended = 0, False
        while True:
            sender = (
                None
                if input_ended
                else asyncio.create_task(
                    send_paced(
                        stream,
                        samples,
                        rate,
                        speed=speed,
                        frame_seconds=frame_seconds,
                        offset=offset,
                        clock_start=clock_start,
                    )
                )
            )
            try:
                async for event in stream.events():
                    seq = int(event.get("seq", 0))
                    if seq and seq <= last_seq:
                        continue  # replayed, already yielded
                    last_seq = max(last_seq, seq)
                    yield event
                return
            except ConnectionClosed:
                # A close frame from the server is its decision; only a lost link resumes.
                if token is None or stream.ws.protocol.close_rcvd is not None:
                    raise
            finally:
                if sender is not None and not sender.done():
                    sender.cancel()
                if sender is not None:
                    await asyncio.gather(sender, return_exceptions=True)
            ws, resumed = await _resume(url, options, token, last_seq, grace, stream.open_timeout)
            stream.replace_connection(ws)
            offset = int(resumed["audio_received_samples"])
            input_ended = bool(resumed["input_ended"])
            yield resumed
