"""A bare CQL client over a blocking socket, for tests that need exact control of the wire
(which connection a request takes, what happens between frames)."""

from __future__ import annotations

import socket

from zdm.cql import messages as m
from zdm.cql.constants import Opcode
from zdm.cql.frame import Frame, FrameReader, encode_frame


class RawClient:
    def __init__(self, port: int, *, version: int = 4, host: str = "127.0.0.1",
                 timeout: float = 10.0) -> None:
        self.version = version
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.reader = FrameReader(256 * 1024 * 1024, expect_response=True)
        self._stream = 0

    def send(self, opcode: int, body: bytes, stream: int | None = None) -> int:
        if stream is None:
            self._stream = (self._stream + 1) % 32768
            stream = self._stream
        self.sock.sendall(encode_frame(self.version, opcode, body, stream=stream))
        return stream

    def receive(self) -> Frame:
        while True:
            frame = self.reader.next_frame()
            if frame is not None:
                return frame
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the proxy closed the connection")
            self.reader.receive_data(data)

    def request(self, opcode: int, body: bytes) -> Frame:
        stream = self.send(opcode, body)
        while True:
            frame = self.receive()
            if frame.stream == stream:
                return frame

    def startup(self) -> Frame:
        return self.request(Opcode.STARTUP, m.encode_startup({"CQL_VERSION": "3.0.0"}))

    def query(self, text: str) -> Frame:
        return self.request(Opcode.QUERY, m.encode_query(text, version=self.version))

    def prepare(self, text: str) -> Frame:
        return self.request(Opcode.PREPARE, m.encode_prepare(text, self.version))

    def execute(self, prepared_id: bytes, values: list) -> Frame:
        return self.request(Opcode.EXECUTE, m.encode_execute(prepared_id, values, self.version))

    def closed_by_peer(self, timeout: float = 5.0) -> bool:
        """True when the proxy closes the connection within ``timeout`` (nothing else arrives)."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "RawClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
