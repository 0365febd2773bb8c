"""Run asyncio servers (the proxy, a fault-injecting TCP relay) beside blocking test code.

The DataStax driver is synchronous from a test's point of view, so each server here
runs on an event loop in a background thread; tests drive it through blocking calls.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future


class LoopThread:
    """An event loop in a daemon thread; ``call(coro)`` runs a coroutine on it and waits."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def call(self, coro, timeout: float = 60.0):
        future: Future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def stop(self) -> None:
        async def cancel_all():
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            self.call(cancel_all(), timeout=10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            if not self._thread.is_alive():
                self.loop.close()


class RunningProxy:
    """A :class:`~zdm.proxy.server.ProxyServer` serving on its own loop thread."""

    def __init__(self, config, *, store=None, name=None) -> None:
        from zdm.proxy.server import ProxyServer

        self.thread = LoopThread()

        async def make():
            server = ProxyServer(config, state_store=store, name=name)
            await server.start()
            return server

        try:
            self.server = self.thread.call(make())
        except BaseException:
            self.thread.stop()
            raise
        self.port = self.server.port

    def shutdown(self, drain_timeout: float = 5.0) -> None:
        self.thread.call(self.server.shutdown(drain_timeout))

    def stop(self) -> None:
        try:
            if not self.server.draining:
                self.shutdown(1.0)
        finally:
            self.thread.stop()


class FaultyRelay:
    """A TCP relay in front of a node that can cut or stall its connections on demand."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.thread = LoopThread()
        self.stalled = False
        self.connections: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []
        self.server = self.thread.call(asyncio.start_server(self._handle, "127.0.0.1", 0))
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

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

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
