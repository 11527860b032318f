"""Batch work: a whole recording through the live pipeline, as fast as the server can go.

A batch job is an ordinary bridged session (server.bridge) whose feeder is paced by
the session's own progress instead of the wall clock: it keeps at most
``_LEAD_SECONDS`` of audio queued ahead of the last ``chunk.done``. So the speech
workers always have a full batch of slices to decode (faster than real time), the
backlog never reaches ``max_backlog_seconds``, and the same captions, terms and
translations come out as from a live stream of the file.
"""

from __future__ import annotations

import asyncio
import io
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kernel.errors import ErrorCode, RasstError
from server.bridge import SessionBridge, bridged_services
from server.protocol import SUPPORTED_SAMPLE_RATES
from server.services import GatewayServices
from server.session import StreamSession

# Audio queued ahead of the pipeline: enough for full worker batches, far below the
# backlog limit. Lag warnings a batch job causes by design are not reported.
_LEAD_SECONDS = 20.0
_FRAME_SECONDS = 0.5
_KEEPALIVE_SECONDS = 5.0
_IGNORED_WARNINGS = {str(ErrorCode.LAGGING)}

_RUNNING: set[asyncio.Task[None]] = set()

ProgressCallback = Callable[[float, float], None]
EventCallback = Callable[[dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class BatchAudio:
    sample_rate: int
    samples: np.ndarray  # int16 mono

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.sample_rate


@dataclass(frozen=True, slots=True)
class BatchRequest:
    audio: BatchAudio
    source_language: str = "en"
    target_languages: tuple[str, ...] = ()
    glossary_ids: tuple[str, ...] = ()
    lm: int = 2
    api_key: str | None = None
    client_host: str | None = None


@dataclass
class BatchResult:
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def summary(self) -> dict[str, Any]:
        return next(e for e in reversed(self.events) if e["type"] == "session.summary")

    @property
    def session_id(self) -> str:
        return str(self.summary["session_id"])


def decode_wav(data: bytes) -> BatchAudio:
    """An uploaded file as mono int16; only 16-bit PCM WAV is read (a clear 415 otherwise)."""
    try:
        with wave.open(io.BytesIO(data), "rb") as wav:
            width, rate, channels = wav.getsampwidth(), wav.getframerate(), wav.getnchannels()
            frames = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise RasstError(
            ErrorCode.UNSUPPORTED_FORMAT,
            f"the file is not a PCM WAV file ({exc}); convert it first, e.g. "
            "`ffmpeg -i talk.mp4 -ac 1 -ar 16000 talk.wav`",
        ) from None
    if width != 2:
        raise RasstError(
            ErrorCode.UNSUPPORTED_FORMAT,
            f"the WAV file has {8 * width}-bit samples; send 16-bit PCM",
        )
    samples = np.frombuffer(frames[: len(frames) - len(frames) % (2 * channels)], dtype="<i2")
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1).round().astype(np.int16)
    if rate not in SUPPORTED_SAMPLE_RATES:
        import soxr

        samples = soxr.resample(samples, rate, 16_000).astype(np.int16)
        rate = 16_000
    if not len(samples):
        raise RasstError(ErrorCode.BAD_REQUEST, "the WAV file holds no audio")
    return BatchAudio(rate, samples.astype(np.int16, copy=False))


async def run_batch(
    services: GatewayServices,
    request: BatchRequest,
    on_progress: ProgressCallback | None = None,
    on_event: EventCallback | None = None,
) -> BatchResult:
    """Run ``request`` to its summary; a fatal session error is raised as RasstError."""
    if request.target_languages and services.translator is None:
        # A 4xx: the request asks for what this server is not configured to do, and
        # retrying will not help (llm_unavailable is for a translator that is down).
        raise RasstError(
            ErrorCode.VALIDATION_FAILED,
            "target_language: translations need a translator, and this server has none "
            "(start it with --llm-url); leave out the target language for captions only",
        )
    bridge = SessionBridge(client_host=request.client_host)
    session = StreamSession(bridge.as_websocket(), bridged_services(services, unpaced=True))
    bridge.start(_start_message(request))
    task = asyncio.create_task(session.run())
    # asyncio holds tasks weakly; the session must outlive a caller that was cancelled.
    _RUNNING.add(task)
    task.add_done_callback(_RUNNING.discard)
    progress = _Progress(request.audio.seconds, on_progress)
    feeder = asyncio.create_task(_feed(bridge, request.audio, progress))
    result = BatchResult()
    failure: dict[str, Any] | None = None
    completed = False
    try:
        async for event in bridge.events():
            kind = event["type"]
            if kind == "chunk.done":
                progress.done(float(event["end"]))
            elif kind == "error" and event.get("fatal"):
                failure = event
            if kind == "warning" and event.get("code") in _IGNORED_WARNINGS:
                continue
            result.events.append(event)
            if on_event is not None:
                on_event(event)
        completed = True
    finally:
        # Synchronous first: a cancelled caller (its client hung up) may be cancelled again
        # at every await below, and the session must hear of it regardless.
        feeder.cancel()
        if not completed:
            bridge.abandon()
        # Shielded: cancelling the caller must not cancel the session; it ends by itself.
        await asyncio.shield(task)
    if failure is not None:
        raise RasstError(ErrorCode(failure["code"]), failure["message"], detail=failure["detail"])
    progress.done(request.audio.seconds)
    return result


def _start_message(request: BatchRequest) -> dict[str, Any]:
    return {
        "type": "session.start",
        "source_language": request.source_language,
        "target_languages": list(request.target_languages),
        "glossary_ids": list(request.glossary_ids),
        "lm": request.lm,
        "audio": {"encoding": "pcm_s16le", "sample_rate": request.audio.sample_rate},
        "api_key": request.api_key,
        "client": "batch",
    }


class _Progress:
    def __init__(self, total: float, callback: ProgressCallback | None) -> None:
        self.total = total
        self.processed = 0.0
        self._callback = callback
        self.changed = asyncio.Event()

    def done(self, seconds: float) -> None:
        self.processed = max(self.processed, min(seconds, self.total))
        self.changed.set()
        if self._callback is not None:
            self._callback(self.processed, self.total)


async def _feed(bridge: SessionBridge, audio: BatchAudio, progress: _Progress) -> None:
    frame = max(1, round(audio.sample_rate * _FRAME_SECONDS))
    for position in range(0, len(audio.samples), frame):
        while position / audio.sample_rate - progress.processed > _LEAD_SECONDS:
            progress.changed.clear()
            try:
                async with asyncio.timeout(_KEEPALIVE_SECONDS):
                    await progress.changed.wait()
            except TimeoutError:
                # A slow stage (an LLM behind on 20 s of audio) must not look like an idle
                # client: an empty frame restarts the session's idle timer.
                bridge.audio(b"")
        bridge.audio(audio.samples[position : position + frame].tobytes())
        # Let the session read between frames, as it would from a socket.
        await asyncio.sleep(0)
    bridge.end()
