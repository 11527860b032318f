"""Canned OpenAI-style SSE streams and a recording mock transport."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

from kernel.frames import AudioChunk, TermHit, TermHits
from server.stages import SessionContext


def sse_events(
    deltas: Sequence[str],
    *,
    finish_reason: str = "length",
    prompt_tokens: int = 100,
    cached_tokens: int = 0,
) -> list[bytes]:
    """The SSE byte events vLLM sends for a completion made of ``deltas``."""
    events: list[dict[str, Any]] = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
    ]
    events += [{"choices": [{"index": 0, "delta": {"content": d}}]} for d in deltas]
    events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": finish_reason}]})
    events.append(
        {
            "choices": [],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(deltas),
                "total_tokens": prompt_tokens + len(deltas),
                "prompt_tokens_details": {"cached_tokens": cached_tokens},
            },
        }
    )
    out = [f"data: {json.dumps(e, ensure_ascii=False)}\n\n".encode() for e in events]
    out.append(b"data: [DONE]\n\n")
    return out


class EventStream(httpx.AsyncByteStream):
    """Yields SSE events, optionally stalling or failing after some of them."""

    def __init__(
        self,
        events: Sequence[bytes],
        *,
        fail_after: int | None = None,
        stall_after: int | None = None,
    ) -> None:
        self.events = list(events)
        self.fail_after = fail_after
        self.stall_after = stall_after
        self.closed = False
        self.stalled = asyncio.Event()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for i, event in enumerate(self.events):
            if self.fail_after is not None and i == self.fail_after:
                raise httpx.ReadError("connection reset by peer")
            if self.stall_after is not None and i == self.stall_after:
                self.stalled.set()
                await asyncio.Event().wait()  # until cancelled
            yield event

    async def aclose(self) -> None:
        self.closed = True


@dataclass
class Recorder:
    """A MockTransport handler that records requests and answers from a script."""

    # Each call pops the next reply: a list of deltas, an exception, a status
    # code, or a callable building the response.
    replies: list[Any] = field(default_factory=list)
    default: Any = None
    requests: list[httpx.Request] = field(default_factory=list)
    streams: list[EventStream] = field(default_factory=list)

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests if r.url.path.endswith("/completions")]

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path.endswith("/v1/models"):
            return httpx.Response(200, json={"object": "list", "data": [{"id": "served-model"}]})
        reply = self.replies.pop(0) if self.replies else self.default
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(reply, int):
            return httpx.Response(reply, json={"error": {"message": "nope", "code": reply}})
        if callable(reply):
            built: httpx.Response = reply(request)
            return built
        if reply is None:
            reply = ["x"]
        stream = EventStream(sse_events(reply))
        self.streams.append(stream)
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=stream)


def stream_reply(stream: EventStream, streams: list[EventStream]) -> Callable[..., httpx.Response]:
    def build(request: httpx.Request) -> httpx.Response:
        streams.append(stream)
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=stream)

    return build


def context(*langs: str, lm: int = 1, tenant: str = "tenant-a") -> SessionContext:
    return SessionContext(
        session_id="sess-1",
        tenant=tenant,
        source_language="en",
        target_languages=langs or ("zh",),
        lm=lm,
        chunk_seconds=0.96 * lm,
    )


def chunk(index: int, seconds: float = 0.96) -> AudioChunk:
    samples = int(seconds * 16_000)
    rng = np.random.default_rng(index)
    pcm = rng.integers(-3000, 3000, samples, dtype=np.int16)
    return AudioChunk(index=index, start_sample=index * samples, pcm=pcm, received_at=0.0)


def hits(index: int, *terms: tuple[str, dict[str, str], float]) -> TermHits:
    return TermHits(
        chunk_index=index,
        hits=tuple(
            TermHit(source, targets, score, 0, 1, "glossary-1") for source, targets, score in terms
        ),
    )
