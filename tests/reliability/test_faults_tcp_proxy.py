"""The fault injector itself: the loopback TCP proxy pauses, resumes and cuts as promised."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.support.tcp_proxy import TcpProxy, tcp_proxy  # noqa: F401  (fixture)


class _Echo:
    """An echo server that closes every connection it still holds when it stops."""

    def __init__(self) -> None:
        self.writers: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._echo, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _echo(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        try:
            while data := await reader.read(1024):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.close()
        await asyncio.gather(*(w.wait_closed() for w in self.writers), return_exceptions=True)
        await self.server.wait_closed()


async def test_pause_holds_bytes_both_ways_resume_delivers_cut_closes(
    tcp_proxy: Any,  # noqa: F811
) -> None:
    echo = _Echo()
    proxy: TcpProxy = tcp_proxy(await echo.start())
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    clients = [writer]
    try:
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.readexactly(4), 5) == b"ping"

        proxy.pause()
        writer.write(b"held")
        await writer.drain()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(10), 0.5)
        # A connection opened during the pause is accepted but reaches nothing.
        late_reader, late_writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        clients.append(late_writer)
        late_writer.write(b"late")
        async with asyncio.timeout(5):
            while proxy.open_connections < 2:  # noqa: ASYNC110  (a thread's counter)
                await asyncio.sleep(0.01)

        proxy.resume()
        assert await asyncio.wait_for(reader.readexactly(4), 5) == b"held"
        assert await asyncio.wait_for(late_reader.readexactly(4), 5) == b"late"

        assert proxy.cut() == 4  # both clients and both upstream sockets
        assert await asyncio.wait_for(reader.read(10), 5) == b""
        assert await asyncio.wait_for(late_reader.read(10), 5) == b""
        # The proxy still listens: a new connection works.
        again_reader, again_writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        clients.append(again_writer)
        again_writer.write(b"again")
        assert await asyncio.wait_for(again_reader.readexactly(5), 5) == b"again"
        assert proxy.connections_total == 3
    finally:
        proxy.close()
        for client in clients:
            client.close()
        await asyncio.gather(*(c.wait_closed() for c in clients), return_exceptions=True)
        await echo.stop()
