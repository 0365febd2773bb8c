"""The instance's HTTP listener: ``/metrics`` for Prometheus, ``/health/liveness`` and
``/health/readiness`` for load balancers and Kubernetes (zdm-proxy's paths and semantics).

Theory of operation: a small HTTP/1.1 server on the instance's event loop; each request is
one GET answered by a route (an async function returning status, content type and body),
and the connection is closed after it.  Nothing here knows what the routes report.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

log = logging.getLogger("zdm.proxy")

Route = Callable[[], Awaitable[tuple[int, str, bytes]]]
_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error",
            503: "Service Unavailable"}


class HttpEndpoint:
    def __init__(self, host: str, port: int, routes: dict[str, Route]) -> None:
        self.host, self.port = host, port
        self.routes = routes
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            method, path, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            route = self.routes.get(path.split("?", 1)[0])
            if route is None:
                status, kind, body = 404, "text/plain", b"not found\n"
            elif method != "GET":
                status, kind, body = 405, "text/plain", b"only GET\n"
            else:
                status, kind, body = await route()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError, ValueError,
                ConnectionError):
            writer.close()
            return
        except Exception:  # noqa: BLE001 - a failing route answers 500, the listener goes on
            log.exception("HTTP endpoint: route failed")
            status, kind, body = 500, "text/plain", b"internal error\n"
        writer.write(f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\nContent-Type: {kind}\r\n"
                     f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode("latin-1") + body)
        try:
            await writer.drain()
        except ConnectionError:
            pass
        writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
