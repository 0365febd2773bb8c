"""Run asyncio servers (the proxy, a fault-injecting TCP relay) beside blocking test code.

The DataStax driver is synchronous from a test's point of view, so each server here
runs on an event loop in a background thread; tests drive it through blocking calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses

from zdm.proxy.background import BackgroundProxy as RunningProxy, LoopThread

__all__ = ["FaultyRelay", "LoopThread", "RunningProxy", "client_of", "proxy_of"]


class FaultyRelay:
    """A TCP relay in front of a node that can cut or stall its connections on demand."""

    def __init__(self, upstream: tuple[str, int], listen: tuple[str, int] = ("127.0.0.1", 0)) -> None:
        self.upstream = upstream
        self.thread = LoopThread()
        self.stalled = False
        self.connections: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []
        self.server = self.thread.call(asyncio.start_server(self._handle, *listen))
        self.host = self.server.sockets[0].getsockname()[0]
        self.port = self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader, writer) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        pair = (writer, up_writer)
        self.connections.append(pair)

        async def pump(src, dst):
            try:
                while data := await src.read(65536):
                    while self.stalled:
                        await asyncio.sleep(0.05)
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        try:
            await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        except asyncio.CancelledError:
            pass  # the relay is stopping

    def stop_accepting(self) -> None:
        """Close the listening socket: new connections are refused, as by a node that is down."""
        async def close():
            self.server.close()
            await self.server.wait_closed()
        self.thread.call(close())

    def cut(self) -> None:
        """Drop every current connection (both directions), as a crashed node would."""
        async def cut():
            for a, b in self.connections:
                for w in (a, b):
                    w.transport.abort()
            self.connections.clear()
        self.thread.call(cut())

    def stop(self) -> None:
        self.cut()
        self.server.close()
        self.thread.stop()


@contextlib.contextmanager
def proxy_of(config, **proxy_settings):
    """A RunningProxy of ``config`` on a free port (10 s request timeout, and
    ``proxy_settings``), stopped afterwards."""
    from tests.support.net import free_port
    from zdm.config import ProxyConfig

    settings = {"listen_port": free_port(), "request_timeout_s": 10, **proxy_settings}
    running = RunningProxy(dataclasses.replace(config, proxy=ProxyConfig(**settings)))
    try:
        yield running
    finally:
        running.stop()


@contextlib.contextmanager
def client_of(proxy, protocol_version: int):
    """A driver session through ``proxy`` at exactly ``protocol_version``, shut down afterwards."""
    from tests.support.net import driver_cluster

    cluster = driver_cluster(proxy.port, protocol_version)
    try:
        session = cluster.connect()
        assert cluster.protocol_version == protocol_version
        yield session
    finally:
        cluster.shutdown()
