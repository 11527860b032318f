"""A loopback TCP proxy that can stall or cut the network for fault tests.

``TcpProxy(upstream_port)`` listens on a free loopback port and forwards every
connection to ``127.0.0.1:upstream_port``, byte for byte, both ways.

* :meth:`TcpProxy.pause`: stop forwarding in both directions. Connections stay
  open and new ones are accepted (as a sidecar or a stalled network path
  would), but no byte passes until :meth:`TcpProxy.resume`; what the peers
  send meanwhile waits in the kernel's socket buffers, so writers feel
  backpressure exactly as on a stalled network.
* :meth:`TcpProxy.cut`: close every open connection at once (both sides see a
  reset or EOF); the proxy keeps listening.

The proxy runs its own event loop in a daemon thread, so a test that blocks
its own loop (a synchronous call, a ``time.sleep``) never stalls the proxy by
accident, and the proxy can serve processes and in-process clients alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import pytest

_READ_SIZE = 64 * 1024


class TcpProxy:
    def __init__(self, upstream_port: int, *, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._open = threading.Event()
        self._open.set()
        # Created on the proxy's loop (asyncio primitives belong to one loop).
        self._gate: asyncio.Event | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._clients: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self.connections_total = 0

    # -- control (any thread) --------------------------------------------------------

    def start(self) -> TcpProxy:
        self._thread.start()
        self._call(self._start()).result(10)
        return self

    @property
    def paused(self) -> bool:
        return not self._open.is_set()

    @property
    def open_connections(self) -> int:
        """Client connections currently open through the proxy."""
        return self._call(self._count()).result(10)

    def pause(self) -> None:
        self._open.clear()
        self._call(self._set_gate(False)).result(10)

    def resume(self) -> None:
        self._open.set()
        self._call(self._set_gate(True)).result(10)

    def cut(self) -> int:
        """Close every open connection; returns how many sockets were closed."""
        return self._call(self._cut()).result(10)

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            self._call(self._stop()).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the proxy's loop ------------------------------------------------------------

    def _call(self, coro: Any) -> Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    async def _start(self) -> None:
        self._gate = asyncio.Event()
        self._gate.set()
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _count(self) -> int:
        return len(self._clients)

    async def _set_gate(self, open_: bool) -> None:
        assert self._gate is not None
        if open_:
            self._gate.set()
        else:
            self._gate.clear()

    async def _cut(self) -> int:
        writers = list(self._writers)
        for writer in writers:
            writer.transport.abort()
        self._writers.clear()
        self._clients.clear()
        return len(writers)

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._cut()
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        assert self._gate is not None
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        handler.add_done_callback(self._handlers.discard)
        self.connections_total += 1
        self._clients.add(client_w)
        self._writers.add(client_w)
        upstream_w: asyncio.StreamWriter | None = None
        try:
            # A connection made during a pause is held before it reaches upstream.
            await self._gate.wait()
            upstream_r, upstream_w = await asyncio.open_connection(*self.upstream)
            _nodelay(upstream_w)
            _nodelay(client_w)
            self._writers.add(upstream_w)
            await asyncio.gather(self._pump(client_r, upstream_w), self._pump(upstream_r, client_w))
        except OSError:
            pass
        finally:
            self._clients.discard(client_w)
            for writer in (client_w, upstream_w):
                if writer is not None:
                    self._writers.discard(writer)
                    writer.transport.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._gate is not None
        try:
            while True:
                # Paused: neither read nor write, so the peers' buffers fill up.
                await self._gate.wait()
                data = await reader.read(_READ_SIZE)
                if not data:
                    break
                await self._gate.wait()
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            # Half-close towards the other side; the other pump ends on its own EOF.
            with contextlib.suppress(OSError, RuntimeError):
                if writer.can_write_eof():
                    writer.write_eof()


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


@pytest.fixture
def tcp_proxy() -> Iterator[Any]:
    """A factory: ``tcp_proxy(upstream_port) -> TcpProxy``; every proxy closes after the test."""
    proxies: list[TcpProxy] = []

    def make(upstream_port: int) -> TcpProxy:
        proxy = TcpProxy(upstream_port).start()
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.close()
