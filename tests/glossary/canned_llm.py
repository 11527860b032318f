"""A scripted OpenAI-compatible chat endpoint on loopback, for the glossary LLM step.

A real HTTP server (``http.server``, one thread per connection) that answers
``POST /v1/chat/completions`` (non-streaming) from a script: a list of
:class:`Canned` answers taken in order (the last one repeats), or a function
of the request body. ``GET /v1/models`` lists one model. Every chat request
body is kept for assertions. For the real model path see test_extract_vllm.py.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "canned-llm"


@dataclass(frozen=True)
class Canned:
    # The assistant message content (ignored when ``status`` is not 200 or ``raw`` is set).
    content: str = ""
    status: int = 200
    finish_reason: str = "stop"
    # Seconds to wait before answering (to trip the client's read timeout).
    delay: float = 0.0
    # A whole response body instead of a chat completion.
    raw: bytes | None = None


Script = list[Canned] | Callable[[dict[str, Any]], Canned]


def judge_all(keep: Callable[[str], bool], translate: Callable[[str, str], str]) -> Script:
    """A well-behaved model: one judgement per candidate of the request's schema."""

    def answer(body: dict[str, Any]) -> Canned:
        schema = body["response_format"]["json_schema"]["schema"]
        item = schema["properties"]["terms"]["items"]
        terms = item["properties"]["term"]["enum"]
        languages = list(item["properties"].get("translations", {}).get("properties", {}))
        judgements = [
            {
                "term": term,
                "keep": keep(term),
                "translations": {lang: translate(term, lang) for lang in languages},
            }
            for term in terms
        ]
        return Canned(json.dumps({"terms": judgements}, ensure_ascii=False))

    return answer


class CannedLlm:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.bodies: list[dict[str, Any]] = []
        self.model_lookups = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def _next(self, body: dict[str, Any]) -> Canned:
        with self._lock:
            self.bodies.append(body)
            if callable(self.script):
                return self.script(body)
            index = min(len(self.bodies) - 1, len(self.script) - 1)
            return self.script[index]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                if self.path.rstrip("/") != "/v1/models":
                    self._send(404, b'{"error": "not found"}')
                    return
                owner.model_lookups += 1
                self._send(200, json.dumps({"data": [{"id": MODEL}]}).encode())

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                canned = owner._next(body)
                if canned.delay:
                    time.sleep(canned.delay)
                if canned.raw is not None:
                    self._send(canned.status, canned.raw)
                elif canned.status != 200:
                    self._send(canned.status, b'{"error": {"message": "canned failure"}}')
                else:
                    completion = {
                        "id": "chatcmpl-canned",
                        "object": "chat.completion",
                        "model": MODEL,
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": canned.content},
                                "finish_reason": canned.finish_reason,
                            }
                        ],
                    }
                    self._send(200, json.dumps(completion).encode())

            def _send(self, status: int, payload: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (read timeout)

        return Handler

    def start(self) -> CannedLlm:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@contextmanager
def canned_llm(script: Script) -> Iterator[CannedLlm]:
    server = CannedLlm(script).start()
    try:
        yield server
    finally:
        server.close()
