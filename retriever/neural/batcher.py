"""Cross-session micro-batching: window encodes from all live sessions in one forward pass.

Sessions call :meth:`MicroBatcher.submit` (from worker threads) or
:meth:`MicroBatcher.run` (from the event loop); a single worker thread owns
the model. It takes the first waiting request, keeps collecting for
``window_seconds`` (or until ``max_batch`` items), runs one forward pass over
all of them and resolves each request's future. On a GPU one pass over 64
windows costs about as much as one over a single window, so the short wait
buys a large throughput gain once several sessions are live; a lone session
pays at most ``window_seconds``.

The forward pass runs in the worker thread, never on the event loop, and one
failing batch fails its own requests only.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

In = TypeVar("In")
Out = TypeVar("Out")


@dataclass(slots=True)
class BatchStats:
    batches: int = 0
    items: int = 0
    max_batch: int = 0
    sizes: list[int] = field(default_factory=list)  # the most recent batch sizes (bounded)

    def record(self, size: int) -> None:
        self.batches += 1
        self.items += size
        self.max_batch = max(self.max_batch, size)
        self.sizes.append(size)
        if len(self.sizes) > 1024:
            del self.sizes[:512]


@dataclass(slots=True)
class _Request(Generic[In, Out]):
    items: Sequence[In]
    future: Future[list[Out]]


class BatcherClosed(RuntimeError):
    pass


class MicroBatcher(Generic[In, Out]):
    """Runs ``forward(items) -> outputs`` (same length, same order) over pooled requests.

    A request carries one or more items (a session's windows of one chunk);
    its items are never split across batches, so ``max_batch`` may be exceeded
    by a single large request rather than delaying it.
    """

    def __init__(
        self,
        forward: Callable[[list[In]], list[Out]],
        window_seconds: float = 0.005,
        max_batch: int = 64,
        name: str = "encode-batcher",
    ) -> None:
        if window_seconds < 0 or max_batch < 1:
            raise ValueError("window_seconds must be ≥ 0 and max_batch ≥ 1")
        self._forward = forward
        self._window = window_seconds
        self._max = max_batch
        # Unbounded on purpose: each session has at most one request in flight
        # (it waits for its result), so the queue is bounded by the session count.
        self._queue: queue.SimpleQueue[_Request[In, Out] | None] = queue.SimpleQueue()
        self._closed = False
        self.stats = BatchStats()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, items: Sequence[In]) -> Future[list[Out]]:
        """Thread-safe; the future resolves to one output per item."""
        future: Future[list[Out]] = Future()
        if self._closed:
            future.set_exception(BatcherClosed("the encoder is shut down"))
            return future
        if not items:
            future.set_result([])
            return future
        self._queue.put(_Request(list(items), future))
        return future

    def __call__(self, items: Sequence[In]) -> list[Out]:
        """Blocking submit-and-wait, for worker threads (e.g. a session's retrieval thread)."""
        return self.submit(items).result()

    async def run(self, items: Sequence[In]) -> list[Out]:
        """Awaitable submit-and-wait for the event loop."""
        return await asyncio.wrap_future(self.submit(items))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join(timeout=30)

    # -- worker thread -------------------------------------------------------

    def _loop(self) -> None:
        pending: _Request[In, Out] | None = None
        while True:
            first = pending if pending is not None else self._queue.get()
            pending = None
            if first is None:
                break
            batch = [first]
            size = len(first.items)
            deadline = time.monotonic() + self._window
            stop = False
            while size < self._max:
                remaining = deadline - time.monotonic()
                try:
                    nxt = (
                        self._queue.get(timeout=remaining)
                        if remaining > 0
                        else self._queue.get_nowait()
                    )
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                if size + len(nxt.items) > self._max:
                    pending = nxt  # starts the next batch: it would overflow this one
                    break
                batch.append(nxt)
                size += len(nxt.items)
            self._run(batch, size)
            if stop:
                break
        # Shut down: whatever is still queued fails instead of hanging its caller.
        while True:
            try:
                req = self._queue.get_nowait()
            except queue.Empty:
                break
            if req is not None:
                req.future.set_exception(BatcherClosed("the encoder is shut down"))
        if pending is not None:
            pending.future.set_exception(BatcherClosed("the encoder is shut down"))

    def _run(self, batch: list[_Request[In, Out]], size: int) -> None:
        live = [r for r in batch if r.future.set_running_or_notify_cancel()]
        if not live:
            return
        items = [item for r in live for item in r.items]
        self.stats.record(len(items))
        try:
            outputs = self._forward(items)
            if len(outputs) != len(items):
                raise RuntimeError(
                    f"forward returned {len(outputs)} outputs for {len(items)} items"
                )
        except Exception as exc:  # delivered to every caller of this batch, not swallowed
            log.exception("batched forward pass failed (%d items)", len(items))
            for r in live:
                r.future.set_exception(exc)
            return
        at = 0
        for r in live:
            n = len(r.items)
            r.future.set_result(outputs[at : at + n])
            at += n
