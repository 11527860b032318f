"""Streaming chat completions from an OpenAI-compatible server (vLLM), over httpx.

One :class:`ChatClient` per service, holding one ``httpx.AsyncClient`` (a shared
connection pool) and the circuit breaker. :meth:`ChatClient.stream` yields the
text deltas of one completion as they arrive (Server-Sent Events), then one
:class:`StreamEnd` with the usage figures (``cached_tokens`` proves the prefix
cache works).

Faults: connect errors are retried with exponential backoff (nothing was
generated yet, so a retry is safe); read timeouts and broken streams are not
(the server may still be working, and a chunk's translation is worthless if
late). Besides the per-read timeout (the longest silence between two SSE
events), a whole completion has a deadline (``FaultParams.request_deadline``):
a stalled network or a server trickling tokens ends the chunk's request on
time instead of holding the session's finisher, and with it every later
chunk, for up to ``max_tokens`` × ``read_timeout``. Every failure is an
:class:`LlmError`; server-side faults (deadline included) count against the
breaker, request faults (4xx) do not.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from server.translator.breaker import CircuitBreaker, CircuitOpenError
from server.translator.params import FaultParams


class LlmError(Exception):
    """A chat request failed; ``outage`` says whether the endpoint itself looks down."""

    def __init__(self, message: str, *, outage: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.outage = outage
        self.status = status


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class StreamEnd:
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cached_tokens: int | None


StreamItem = TextDelta | StreamEnd

# Errors raised before the server saw the request: safe to retry.
_CONNECT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def api_base(url: str) -> str:
    """``http://host:8000`` for ``http://host:8000``, ``…/v1`` or ``…/v1/``."""
    url = url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


def build_http_client(
    faults: FaultParams, *, max_connections: int, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The pooled client the service keeps for its lifetime (explicit timeouts)."""
    timeout = httpx.Timeout(
        connect=faults.connect_timeout,
        read=faults.read_timeout,
        write=faults.write_timeout,
        pool=faults.connect_timeout,
    )
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    return httpx.AsyncClient(timeout=timeout, limits=limits, transport=transport)


class ChatClient:
    """Sends chat-completion requests to one endpoint; shared by all sessions."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        url: str,
        api_key: str | None,
        faults: FaultParams,
        breaker: CircuitBreaker,
    ) -> None:
        self._http = http
        self._base = api_base(url)
        self._faults = faults
        self._breaker = breaker
        self._headers = {"Accept": "text/event-stream"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"

    @property
    def breaker(self) -> CircuitBreaker:
        return self._breaker

    @property
    def chat_url(self) -> str:
        return f"{self._base}/v1/chat/completions"

    async def list_models(self) -> list[str]:
        """Served model ids (``GET /v1/models``); raises :class:`LlmError`."""
        return [str(item["id"]) for item in await self.model_entries()]

    async def model_entries(self) -> list[dict[str, Any]]:
        """The ``GET /v1/models`` entries that have an id (``owned_by`` names the server kind)."""
        try:
            response = await self._http.get(f"{self._base}/v1/models", headers=self._headers)
            response.raise_for_status()
            data = response.json().get("data", [])
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            raise LlmError(f"cannot list models: {exc!r}", outage=True) from exc
        return [item for item in data if isinstance(item, dict) and "id" in item]

    async def stream(
        self, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> AsyncIterator[StreamItem]:
        """Stream one completion; ``body`` is sent as is with ``"stream": true``.

        Raises :class:`LlmError` (also mid-stream); cancelling the iteration
        closes the HTTP response, which aborts the request in vLLM.
        """
        try:
            probe = self._breaker.acquire()
        except CircuitOpenError as exc:
            raise LlmError(str(exc), outage=True) from exc
        verdict: bool | None = None
        # One deadline for the whole completion, applied to each await on the
        # network separately (never across a yield, where the consumer runs).
        deadline = asyncio.get_running_loop().time() + self._faults.request_deadline
        try:
            async with asyncio.timeout_at(deadline):
                response = await self._send(body, headers)
            try:
                async for item in _parse_sse(response, deadline):
                    yield item
            finally:
                await response.aclose()
            verdict = True
        except LlmError as exc:
            verdict = not exc.outage
            raise
        except TimeoutError as exc:
            verdict = False
            raise LlmError(
                f"LLM did not finish within {self._faults.request_deadline:g} s", outage=True
            ) from exc
        except httpx.TimeoutException as exc:
            verdict = False
            raise LlmError(f"LLM timed out: {type(exc).__name__}", outage=True) from exc
        except httpx.HTTPError as exc:
            verdict = False
            raise LlmError(f"LLM connection failed: {exc!r}", outage=True) from exc
        finally:
            if verdict is True:
                self._breaker.success(probe)
            elif verdict is False:
                self._breaker.failure(probe)
            else:
                self._breaker.release(probe)

    async def _send(
        self, body: Mapping[str, Any], headers: Mapping[str, str] | None
    ) -> httpx.Response:
        """Send the request, retrying connect failures; returns a 200 streaming response."""
        payload = json.dumps({**body, "stream": True}, ensure_ascii=False).encode("utf-8")
        all_headers = {**self._headers, "Content-Type": "application/json", **(headers or {})}
        attempt = 0
        while True:
            request = self._http.build_request(
                "POST", self.chat_url, content=payload, headers=all_headers
            )
            try:
                response = await self._http.send(request, stream=True)
            except _CONNECT_ERRORS as exc:
                if attempt >= self._faults.connect_retries:
                    raise LlmError(
                        f"LLM unreachable at {self._base}: {type(exc).__name__}", outage=True
                    ) from exc
                await asyncio.sleep(self._backoff(attempt))
                attempt += 1
                continue
            if response.status_code == 200:
                return response
            try:
                detail = (await response.aread()).decode("utf-8", "replace")[:500]
            finally:
                await response.aclose()
            status = response.status_code
            # 408/429/5xx: the endpoint is struggling; other 4xx: this request is wrong.
            outage = status >= 500 or status in (408, 429)
            raise LlmError(f"LLM answered {status}: {detail}", outage=outage, status=status)

    def _backoff(self, attempt: int) -> float:
        delay = min(self._faults.backoff_seconds * 2**attempt, self._faults.backoff_max_seconds)
        # Full jitter: sessions that failed together do not retry together.
        return random.uniform(0, delay)


async def _parse_sse(response: httpx.Response, deadline: float) -> AsyncIterator[StreamItem]:
    """OpenAI streaming chunks → :class:`TextDelta`s, then one :class:`StreamEnd`.

    Each read must complete before ``deadline`` (event-loop time), else
    :class:`TimeoutError`.
    """
    finish_reason: str | None = None
    usage: Mapping[str, Any] = {}
    done = False
    lines = response.aiter_lines()
    while True:
        try:
            async with asyncio.timeout_at(deadline):
                line = await anext(lines)
        except StopAsyncIteration:
            break
        if not line.startswith("data:"):
            # Comments (":"), "event:"/"id:" fields and blank separators.
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            done = True
            break
        try:
            chunk = json.loads(data)
        except ValueError as exc:
            raise LlmError(f"malformed SSE data: {data[:200]!r}", outage=True) from exc
        if "error" in chunk:
            # vLLM reports failures after the stream started as an error object.
            raise LlmError(f"LLM stream error: {chunk['error']}", outage=True)
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            text = (choice.get("delta") or {}).get("content")
            if text:
                yield TextDelta(text)
            if choice.get("finish_reason"):
                finish_reason = choice["finish_reason"]
    if not done and finish_reason is None:
        raise LlmError("LLM stream ended early", outage=True)
    details = usage.get("prompt_tokens_details") or {}
    yield StreamEnd(
        finish_reason=finish_reason,
        prompt_tokens=usage.get("prompt_tokens"),
        completion_tokens=usage.get("completion_tokens"),
        cached_tokens=details.get("cached_tokens"),
    )
