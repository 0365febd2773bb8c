"""The proxy's I/O edge: asyncio Protocols for client and cluster connections.

Theory of operation: each side of the proxy is an ``asyncio.Protocol`` whose
``data_received`` feeds a sans-I/O :class:`~zdm.cql.frame.FrameReader` and
dispatches whole frames; nothing here decides routing.

* :class:`BackendConnection` is one connection to one cluster node.  Requests go
  out with a stream id from :class:`~zdm.proxy.streams.StreamIds`; the answer is
  handed to the callback registered with it -- no task per request.  A request
  unanswered by its deadline is failed by :meth:`sweep` (called periodically by
  the server), and its stream id stays reserved until the late answer arrives.
  EVENT frames (stream -1) go to ``on_event``.  Losing the connection fails every
  pending request.
* :class:`ClientConnection` is one application connection; it hands frames to its
  :class:`~zdm.proxy.session.ClientSession` and writes whatever that returns.
* Protocol v5 wraps frames in segments once the handshake is done (spec v5 section
  2.3.1); both classes switch their reader and writer at exactly that frame.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from typing import Callable

from zdm.cql.constants import COMPRESSION, Opcode
from zdm.cql.errors import ProtocolError
from zdm.cql.frame import Frame, FrameReader, starts_segment_framing
from zdm.cql.segment import encode_segments
from zdm.phases.model import Cluster
from zdm.proxy.streams import StreamIds, StreamsExhausted

log = logging.getLogger("zdm.proxy")


class Failure:
    """No answer from a cluster: the reason, to be turned into an error for the client."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message

    def __repr__(self) -> str:
        return f"Failure({self.message!r})"


Outcome = Frame | Failure
Callback = Callable[[Outcome], None]
_HEADER = struct.Struct(">BBhBi")  # request header, v4 spec section 2
_LATE = object()  # marks a stream whose request timed out; its answer is dropped


class _Output:
    """Outgoing frames of one connection, coalesced into one write per loop iteration.

    Frames produced while handling one ``data_received`` (a burst of requests or
    answers) leave in a single send instead of one system call each; in v5 they
    share self-contained segments.
    """

    __slots__ = ("transport", "segmented", "_parts", "_scheduled", "_loop")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.segmented = False
        self._parts: list[bytes] = []
        self._scheduled = False
        self._loop = asyncio.get_running_loop()

    def write(self, header: bytes, body: bytes) -> None:
        parts = self._parts
        parts.append(header)
        if body:
            parts.append(body)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        parts = self._parts
        if not parts:
            return
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        parts.clear()
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(encode_segments(data) if self.segmented else data)


class BackendConnection(asyncio.Protocol):
    def __init__(self, cluster: Cluster, address: tuple[str, int], *, max_frame_bytes: int,
                 request_timeout: float, on_event: Callable[[Frame], None] | None = None,
                 on_lost: Callable[["BackendConnection", str], None] | None = None) -> None:
        self.cluster = cluster
        self.address = address
        self.name = f"{cluster.value} {address[0]}:{address[1]}"
        self.reader = FrameReader(max_frame_bytes, expect_response=True)
        self.streams = StreamIds()
        self.request_timeout = request_timeout
        self.on_event = on_event
        self.on_lost = on_lost
        self.transport: asyncio.Transport | None = None
        self.out = _Output()
        self.in_handshake = True
        self.version = 4  # the protocol version spoken once the handshake is done
        self.closed = False
        self.last_activity = time.monotonic()
        self.connected = asyncio.get_running_loop().create_future()

    # -- asyncio.Protocol --------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport
        self.out.transport = transport
        if not self.connected.done():
            self.connected.set_result(None)

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        reader.receive_data(data)
        self.last_activity = time.monotonic()
        try:
            while True:
                frame = reader.next_frame()
                if frame is None:
                    return
                if self.in_handshake and starts_segment_framing(frame):
                    # everything after this frame, both ways, is inside segments
                    reader.start_segments()
                    self.out.flush()  # anything queued before the switch goes out bare
                    self.out.segmented = True
                self._dispatch(frame)
        except ProtocolError as exc:
            self._fail(f"malformed data from {self.name}: {exc.message}")
            self.transport.close()

    def _dispatch(self, frame: Frame) -> None:
        stream = frame.stream
        if stream < 0:
            if self.on_event is not None and frame.opcode == Opcode.EVENT:
                self.on_event(frame)
            return
        entry = self.streams.release(stream)
        if entry is None or entry is _LATE:
            return
        entry[0](frame)

    def connection_lost(self, exc) -> None:
        reason = f"connection to {self.name} lost" + (f": {exc}" if exc else "")
        if not self.connected.done():
            self.connected.set_exception(ConnectionError(reason))
        self._fail(reason)

    def _fail(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        pending = [e for e in self.streams.pending.values() if e is not _LATE]
        self.streams.pending.clear()
        for callback, _ in pending:
            callback(Failure(reason))
        if self.on_lost is not None:
            self.on_lost(self, reason)

    # -- requests ------------------------------------------------------------------
    def send(self, version: int, flags: int, opcode: int, body: bytes, callback: Callback,
             timeout: float | None = None) -> None:
        if self.closed:
            callback(Failure(f"connection to {self.name} is closed"))
            return
        deadline = time.monotonic() + (timeout or self.request_timeout)
        try:
            stream = self.streams.acquire((callback, deadline))
        except StreamsExhausted:
            callback(Failure(f"too many requests in flight on {self.name}"))
            return
        self.write(_HEADER.pack(version, flags, stream, opcode, len(body)), body)

    def request(self, version: int, opcode: int, body: bytes, *, flags: int = 0,
                timeout: float | None = None) -> "asyncio.Future[Outcome]":
        """``send`` as an awaitable, for the handshake and the proxy's own requests."""
        future = asyncio.get_running_loop().create_future()

        def done(outcome: Outcome) -> None:
            if not future.done():
                future.set_result(outcome)

        self.send(version, flags, opcode, body, done, timeout)
        return future

    def write(self, header: bytes, body: bytes = b"") -> None:
        self.last_activity = time.monotonic()
        self.out.write(header, body)

    def sweep(self, now: float) -> None:
        """Fail the requests whose deadline has passed."""
        pending = self.streams.pending
        expired = [s for s, e in pending.items() if e is not _LATE and e[1] < now]
        for stream in expired:
            callback, _ = pending[stream]
            pending[stream] = _LATE
            callback(Failure(f"no answer from {self.name} within {self.request_timeout:g}s"))

    def close(self) -> None:
        self.out.flush()
        if self.transport is not None:
            self.transport.close()


class ClientConnection(asyncio.Protocol):
    """One application connection; the session decides, this class moves bytes."""

    def __init__(self, make_session: Callable[["ClientConnection"], "object"], *,
                 max_frame_bytes: int) -> None:
        self.reader = FrameReader(max_frame_bytes, expect_response=False)
        self.make_session = make_session
        self.session = None
        self.transport: asyncio.Transport | None = None
        self.out = _Output()
        self.peer = "?"

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.out.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.session = self.make_session(self)

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        reader.receive_data(data)
        session = self.session
        try:
            while True:
                frame = reader.next_frame()
                if frame is None:
                    return
                if frame.flags & COMPRESSION:
                    raise ProtocolError("compressed frames are not supported: the proxy offers "
                                        "no compression", stream=frame.stream, version=frame.version)
                session.frame_received(frame)
        except ProtocolError as exc:
            session.protocol_error(exc)

    def connection_lost(self, exc) -> None:
        if self.session is not None:
            self.session.client_closed()

    def start_segments(self) -> None:
        """Call right after writing the v5 READY/AUTHENTICATE that ends the bare handshake."""
        self.reader.start_segments()
        self.out.flush()  # the READY/AUTHENTICATE itself goes out bare
        self.out.segmented = True

    def write(self, header: bytes, body: bytes = b"") -> None:
        self.out.write(header, body)

    def close(self) -> None:
        self.out.flush()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
