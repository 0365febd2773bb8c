"""A fake CQL node for what a real one will not do on demand (DSE's authenticator, odd
answers): it speaks the frame layer and answers each request with what a script says."""

from __future__ import annotations

import asyncio
from typing import Callable

from tests.support.harness import LoopThread
from zdm.cql.errors import ProtocolError
from zdm.cql.frame import Frame, FrameReader, encode_frame

#: script(request) -> [(opcode, body), ...] answers, in order
Script = Callable[[Frame], list[tuple[int, bytes]]]


class FakeNode:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.received: list[Frame] = []
        self._writers: list[tuple[asyncio.StreamWriter, int]] = []
        self.thread = LoopThread()
        self.server = self.thread.call(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        frames = FrameReader(1 << 20, expect_response=False)
        entry = None
        try:
            while data := await reader.read(65536):
                frames.receive_data(data)
                while (frame := frames.next_frame()) is not None:
                    self.received.append(frame)
                    if entry is None:
                        entry = (writer, frame.version)
                        self._writers.append(entry)
                    elif entry[1] != frame.version:
                        self._writers.remove(entry)
                        entry = (writer, frame.version)
                        self._writers.append(entry)
                    for opcode, body in self.script(frame):
                        writer.write(encode_frame(frame.version, opcode, body, stream=frame.stream,
                                                  response=True))
                await writer.drain()
        except (ConnectionError, ProtocolError, asyncio.CancelledError):
            pass
        finally:
            if entry in self._writers:
                self._writers.remove(entry)
            writer.close()

    def push(self, opcode: int, body: bytes) -> None:
        """Send an unsolicited frame (stream -1: an EVENT) on every open connection."""
        async def send():
            for writer, version in list(self._writers):
                writer.write(encode_frame(version, opcode, body, stream=-1, response=True))
        self.thread.call(send())

    def stop(self) -> None:
        async def close():
            self.server.close()
            await self.server.wait_closed()
        self.thread.call(close())
        self.thread.stop()
