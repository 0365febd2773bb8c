"""A proxy embedded in a synchronous program: its own event loop on a daemon thread.

For the demo and the tests, which drive the proxy next to blocking code (the
DataStax driver, the CLI's functions).  Production runs ``zdm proxy start``.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future

from zdm.config import Config
from zdm.proxy.server import ProxyServer


class LoopThread:
    """An event loop in a daemon thread; ``call(coro)`` runs a coroutine on it and waits."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                        name="zdm-event-loop")
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


class BackgroundProxy:
    """A :class:`~zdm.proxy.server.ProxyServer` serving on its own loop thread.  Its metrics
    endpoint takes a free port unless ``metrics_port`` says which (several run at once in
    tests); ``server.metrics_port`` tells which it took."""

    def __init__(self, config: Config, *, store=None, name: str | None = None,
                 metrics_port: int = 0) -> None:
        import dataclasses

        config = dataclasses.replace(config, proxy=dataclasses.replace(config.proxy, metrics_port=metrics_port))
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
        self.thread.call(self.server.shutdown(drain_timeout), timeout=drain_timeout + 30)

    def stop(self) -> None:
        try:
            if not self.server.draining:
                self.shutdown(1.0)
        finally:
            self.thread.stop()
