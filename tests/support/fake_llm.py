"""A canned OpenAI-compatible streaming endpoint on loopback, for load-shaped tests.

It answers every ``POST /v1/chat/completions`` at once with ``deltas`` SSE
deltas (then the finish chunk, usage and ``[DONE]``), so a session produces
many ``translation.delta`` events per chunk without a model: tests of event
backpressure (slow readers) need volume, not meaning. Use the real CPU vLLM
(tests/support/vllm_server.py) for anything about translation itself.

Raw HTTP/1.1 on asyncio, one request per connection (``Connection: close``),
in its own thread like :class:`tests.support.tcp_proxy.TcpProxy`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterator

MODEL = "fake-llm"


class FakeLlm:
    def __init__(self, *, deltas: int = 100, delta: str = "wort wort ") -> None:
        self.deltas = deltas
        self.delta = delta
        self.port = 0
        self.requests = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeLlm:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        handler.add_done_callback(self._handlers.discard)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            method, path, _ = request_line.split(" ", 2)
            headers = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in header_lines if line)
            }
            length = int(headers.get("content-length", "0"))
            if length:
                await reader.readexactly(length)
            if method == "POST" and path.endswith("/chat/completions"):
                self.requests += 1
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                    b"connection: close\r\n\r\n"
                )
                for chunk in self._events():
                    writer.write(chunk)
                    await writer.drain()
            elif path.endswith("/models"):
                body = json.dumps({"object": "list", "data": [{"id": MODEL}]}).encode()
                writer.write(_response(200, body))
            else:
                writer.write(_response(200 if path == "/health" else 404, b"{}"))
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()

    def _events(self) -> Iterator[bytes]:
        def data(obj: object) -> bytes:
            return f"data: {json.dumps(obj)}\n\n".encode()

        yield data({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
        for _ in range(self.deltas):
            yield data({"choices": [{"index": 0, "delta": {"content": self.delta}}]})
        yield data({"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]})
        usage = {"prompt_tokens": 10, "completion_tokens": self.deltas, "total_tokens": 0}
        yield data({"choices": [], "usage": usage})
        yield b"data: [DONE]\n\n"


def _response(status: int, body: bytes) -> bytes:
    return (
        f"HTTP/1.1 {status} OK\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body


@contextlib.contextmanager
def fake_llm(**options: object) -> Iterator[FakeLlm]:
    server = FakeLlm(**options).start()  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.close()
