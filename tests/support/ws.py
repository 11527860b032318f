"""Raw WebSocket helpers for protocol tests: send exactly what a (mis)behaving client sends."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from server.protocol import SERVER_EVENT_ADAPTER


@dataclass
class Transcript:
    events: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]

    @property
    def types(self) -> list[str]:
        return [e["type"] for e in self.events]

    def error_codes(self) -> list[str]:
        return [e["code"] for e in self.of_type("error")]


def start_message(**fields: Any) -> str:
    return json.dumps({"type": "session.start", **fields})


END = json.dumps({"type": "session.end"})


async def read_all(
    ws: ClientConnection, transcript: Transcript, within: float = 120.0
) -> Transcript:
    """Read events until the server closes; every event must match the protocol models."""
    try:
        async with asyncio.timeout(within):
            async for message in ws:
                event = json.loads(message)
                SERVER_EVENT_ADAPTER.validate_python(event)
                transcript.events.append(event)
    except ConnectionClosed:
        pass
    transcript.close_code = ws.close_code
    return transcript


async def exchange(url: str, *messages: str | bytes, within: float = 120.0) -> Transcript:
    """Send the messages as fast as possible, then read until the server closes."""
    transcript = Transcript()
    async with connect(url, max_size=2**22) as ws:
        try:
            for message in messages:
                await ws.send(message)
        except ConnectionClosed:
            pass
        return await read_all(ws, transcript, within)
