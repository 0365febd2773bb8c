"""A client the proxy will not serve, told why in its own protocol: the first frame it sends
is answered with an error frame (OVERLOADED past the connection limit, PROTOCOL_ERROR for
plaintext on the TLS port), then the connection is closed.  A client that sends nothing is
closed after a few seconds."""

from __future__ import annotations

import asyncio

from zdm.cql.constants import MAX_VERSION, MIN_VERSION
from zdm.cql.errors import ProtocolError
from zdm.cql.frame import Frame, FrameReader, encode_unsupported_version
from zdm.proxy.handler import error_frame

TIMEOUT = 5.0


class Refusal(asyncio.Protocol):
    def __init__(self, code: int, message: str) -> None:
        self.code = code
        self.message = message
        self.reader = FrameReader(64 * 1024, expect_response=False)
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        asyncio.get_running_loop().call_later(TIMEOUT, transport.close)

    def data_received(self, data: bytes) -> None:
        self.reader.receive_data(data)
        try:
            frame: Frame | None = self.reader.next_frame()
        except ProtocolError as exc:
            if exc.version is not None and not MIN_VERSION <= exc.version <= MAX_VERSION:
                self.transport.write(encode_unsupported_version(exc.version, exc.stream))
            self.transport.close()
            return
        if frame is None:
            return
        answer = error_frame(frame.version, frame.stream, self.code, self.message)
        self.transport.write(answer.header() + answer.body)
        self.transport.close()
