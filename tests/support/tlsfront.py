"""A TLS front with a chosen certificate, relaying to a real node: for the certificates a
sandbox node does not present on demand (expired, not yet valid, for another host).  The
handshake fails or succeeds exactly as it would against a node with that certificate; what
follows it is the real node's."""

from __future__ import annotations

import asyncio
import ssl
import tempfile
from pathlib import Path

from tests.support.harness import LoopThread
from zdm.sandbox import certs


class TlsFront:
    def __init__(self, upstream: tuple[str, int], server: certs.Issued, *,
                 upstream_context: ssl.SSLContext | None = None) -> None:
        self.upstream = upstream
        self.upstream_context = upstream_context
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory() as tmp:
            chain = certs.write(Path(tmp) / "server.pem", server.keystore_pem, private=True)
            ctx.load_cert_chain(str(chain))
        self.thread = LoopThread()
        self.server = self.thread.call(asyncio.start_server(self._relay, "127.0.0.1", 0, ssl=ctx))
        self.port = self.server.sockets[0].getsockname()[1]

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(
                *self.upstream, ssl=self.upstream_context,
                server_hostname=self.upstream[0] if self.upstream_context else None)
        except (OSError, asyncio.CancelledError):
            writer.close()
            return

        async def pump(src, dst):
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, ssl.SSLError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        try:
            await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        except asyncio.CancelledError:
            pass

    def stop(self) -> None:
        async def close():
            self.server.close()
        self.thread.call(close())
        self.thread.stop()
