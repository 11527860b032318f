"""Stream one talk through the gateway and record every event with audio and wall time.

Pacing: at ``speed`` × real time (0 = as fast as the gateway allows), never above the
server's announced ``max_pace``, and never more than ``max_ahead`` seconds of audio beyond the
last finished chunk. The last rule makes "as fast as allowed" safe: the harness follows the
gateway's own progress instead of flooding it, so backlog limits are never hit and the
measured per-chunk computation (``processing_ms``) is not inflated by queueing.
Latency is then accounted in audio time (see metrics/latency.py), not wall time.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.exceptions import ConnectionClosed

from server.client import RasstStream, StreamOptions, read_wav


class RunFailed(RuntimeError):
    """The gateway ended a talk's stream with a fatal error."""


@dataclass(frozen=True)
class RecordedEvent:
    event: dict[str, Any]
    wall: float  # seconds since the session started
    sent: float  # seconds of audio sent when the event arrived

    def to_json(self) -> dict[str, Any]:
        return {"wall": round(self.wall, 4), "sent": round(self.sent, 3), "event": self.event}


@dataclass
class TalkRun:
    talk_id: str
    audio_seconds: float
    started: dict[str, Any]
    events: list[RecordedEvent] = field(default_factory=list)
    wall_seconds: float = 0.0

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [r.event for r in self.events if r.event.get("type") == kind]

    def write_jsonl(self, path: Path) -> None:
        with path.open("w", encoding="utf-8") as handle:
            for record in self.events:
                handle.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")


@dataclass(frozen=True)
class RunOptions:
    speed: float = 0.0  # × real time; 0 = as fast as allowed
    frame_seconds: float = 0.1
    max_ahead: float = 15.0  # audio seconds beyond the last finished chunk
    event_timeout: float = 300.0  # seconds without any event before giving up
    open_timeout: float = 30.0


async def stream_talk(
    url: str,
    talk_id: str,
    wav: Path,
    options: StreamOptions,
    run: RunOptions,
    *,
    on_progress: Callable[[float], None] | None = None,
) -> TalkRun:
    """Stream ``wav`` and return every event; ``on_progress`` gets audio seconds finished."""
    rate, samples = read_wav(wav)
    options = StreamOptions(**{**options.__dict__, "sample_rate": rate})
    audio_seconds = len(samples) / rate
    async with RasstStream(url, options, open_timeout=run.open_timeout) as stream:
        assert stream.started is not None
        t0 = time.monotonic()
        record = TalkRun(talk_id, audio_seconds, stream.started)
        state = _Progress()
        server_pace = float(stream.started.get("limits", {}).get("max_pace", 2.0))
        # Stay a little under the server's limit: its pace check has no slack beyond the burst.
        speed = min(run.speed or float("inf"), 0.9 * server_pace)

        async def send() -> None:
            frame = max(1, int(rate * run.frame_seconds))
            for offset in range(0, len(samples), frame):
                while state.sent - state.done >= run.max_ahead and not state.closed:
                    state.changed.clear()
                    await state.changed.wait()
                if state.closed:
                    return
                await stream.send_audio(samples[offset : offset + frame].tobytes())
                state.sent = min(offset + frame, len(samples)) / rate
                due = t0 + state.sent / speed
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await stream.end()

        sender = asyncio.create_task(send())
        try:
            while True:
                try:
                    async with asyncio.timeout(run.event_timeout):
                        message = await stream.ws.recv()
                except ConnectionClosed:
                    break
                event = json.loads(message)
                record.events.append(RecordedEvent(event, time.monotonic() - t0, state.sent))
                kind = event.get("type")
                if kind == "chunk.done":
                    state.done = float(event["end"])
                    state.changed.set()
                    if on_progress is not None:
                        on_progress(state.done)
                elif kind == "error" and event.get("fatal"):
                    state.closed = True
                    state.changed.set()
                elif kind == "session.summary":
                    break
        finally:
            state.closed = True
            state.changed.set()
            if not sender.done():
                sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
        record.wall_seconds = time.monotonic() - t0
    fatal = [e for e in record.of_type("error") if e.get("fatal")]
    if fatal:
        raise RunFailed(f"{talk_id}: {fatal[0].get('code')}: {fatal[0].get('message')}")
    if not record.of_type("session.summary"):
        # Every stream ends with a summary; without one the events are incomplete.
        raise RunFailed(f"{talk_id}: the gateway closed the stream without a summary")
    return record


@dataclass
class _Progress:
    sent: float = 0.0
    done: float = 0.0
    closed: bool = False
    changed: asyncio.Event = field(default_factory=asyncio.Event)


async def warm_up(url: str, options: StreamOptions, seconds: float, *, wait: float = 60.0) -> None:
    """Hold a quiet session open for ``seconds`` so the gateway prepares the glossaries.

    A session start makes the gateway build its glossary index and term pronunciations
    in the background (cached for later sessions); a measured run that started cold
    would score the first part of the talk without them. The protocol has no "ready"
    event, so the harness waits a fixed time, sending a little silence now and then so
    that idle timeouts never fire.
    """
    silence = bytes(2 * options.sample_rate // 10)  # 0.1 s
    async with RasstStream(url, options, open_timeout=wait) as stream:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            await stream.send_audio(silence)
            await asyncio.sleep(min(left, 5.0))
        await stream.end()
        async with asyncio.timeout(wait):
            async for event in stream.events(validate=False):
                if event.get("type") == "session.summary":
                    break
