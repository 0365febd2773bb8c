"""The proxy's I/O edge: asyncio Protocols for client and cluster connections (see
:mod:`zdm.proxy.dialer` for opening them).

Theory of operation: each side of the proxy is an ``asyncio.Protocol`` whose
``data_received`` feeds a sans-I/O :class:`~zdm.cql.frame.FrameReader` and hands
whole frames to its owner's callbacks; nothing here decides routing.

* :class:`BackendConnection` is one connection to one cluster node.  Requests go
  out with a stream id from :class:`~zdm.proxy.streams.StreamIds`; the answer is
  handed to the callback registered with it -- no task per request.  A request
  unanswered by its deadline is failed by :meth:`sweep` (called periodically by
  the data plane), and its stream id stays reserved until the late answer arrives.
  EVENT frames (stream -1) go to ``on_event``.  Losing the connection fails every
  pending request.
* :class:`ClientConnection` is one application connection; its owner (the
  :class:`~zdm.proxy.session.ClientSession`) sets ``on_frame`` and
  ``on_protocol_error``, and swaps ``on_frame`` to the request handler once the
  handshake is done.
* Protocol v5 wraps frames in segments once the handshake is done (spec v5 section
  2.3.1); both classes switch their reader and writer at exactly that frame.
* Compression (:mod:`zdm.cql.compression`): each connection has its own, the one its
  STARTUP negotiated (``codec``; None: none).  Frames are handed on plain: a v3/v4
  frame with the COMPRESSION flag is inflated as it is read, and v5 segments are
  decompressed by the reader.  Writes compress again once the handshake answer is out
  (``deflate`` for v3/v4 frames; the segment writer for v5); a body forwarded unchanged
  leaves as the compressed bytes it arrived as when the algorithm is the same.  With no
  compression the cost is one flag test per frame read and one ``None`` test per write.

Buffers are created empty and grow with the traffic; a connection that only ever
holds a few requests costs a few kilobytes.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import struct
import time
from typing import Callable

from zdm.cql.compression import Codec, deflate_body, inflate_frame
from zdm.cql.constants import COMPRESSION, RESPONSE_BIT, Opcode
from zdm.cql.errors import ProtocolError
from zdm.cql.frame import Frame, FrameReader, starts_segment_framing
from zdm.cql.segment import encode_segments
from zdm.phases.model import Cluster
from zdm.proxy.aggregate import Failure, Outcome
from zdm.proxy.streams import StreamIds, StreamsExhausted

log = logging.getLogger("zdm.proxy")

Callback = Callable[[Outcome], None]
_HEADER = struct.Struct(">BBhBi")  # request header, v4 spec section 2
_LATE = object()  # marks a stream whose request timed out; its answer is dropped


class _Output:
    """Outgoing frames of one connection, coalesced into one write per loop iteration.

    Frames produced while handling one ``data_received`` (a burst of requests or
    answers) leave in a single send instead of one system call each; in v5 they
    share self-contained segments.  Over TLS they leave as one joined buffer: an
    SSL transport encrypts each buffer it is given as TLS records of its own, so a
    gathering write of headers and bodies would cost a record (and an encryption
    call) per part.
    """

    __slots__ = ("transport", "segmented", "codec", "joined", "_parts", "_scheduled", "_loop")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.segmented = False
        #: the LZ4 codec compressing v5 segments (None: uncompressed segments)
        self.codec: Codec | None = None
        #: join the parts into one buffer before writing (TLS transports)
        self.joined = False
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

    def attach(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.joined = transport.get_extra_info("ssl_object") is not None

    def flush(self) -> None:
        self._scheduled = False
        parts = self._parts
        if not parts:
            return
        self._parts = []
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self.segmented:
            transport.write(encode_segments(b"".join(parts), self.codec))
        elif self.joined:
            transport.write(parts[0] if len(parts) == 1 else b"".join(parts))
        else:
            transport.writelines(parts)  # one gathering write, no joined copy


class BackendConnection(asyncio.Protocol):
    __slots__ = ("cluster", "address", "name", "reader", "streams", "request_timeout", "on_event",
                 "on_lost", "transport", "out", "in_handshake", "version", "closed", "last_activity",
                 "connected", "node_stats", "endpoint", "max_frame_bytes", "codec", "deflate")

    def __init__(self, cluster: Cluster, address: tuple[str, int], *, max_frame_bytes: int,
                 request_timeout: float, on_event: Callable[[Frame], None] | None = None,
                 on_lost: Callable[["BackendConnection", str], None] | None = None,
                 node_stats=None) -> None:
        self.cluster = cluster
        self.address = address
        self.name = f"{cluster.value} {address[0]}:{address[1]}"
        self.reader = FrameReader(max_frame_bytes, expect_response=True)
        self.max_frame_bytes = max_frame_bytes
        #: the compression the STARTUP sent on this connection asks for (set before sending it)
        self.codec: Codec | None = None
        #: compresses v3/v4 request bodies, once the handshake is done (start_compression)
        self.deflate: Codec | None = None
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
        #: this node's latency and failures (zdm.proxy.stats.NodeStats), when metrics are on
        self.node_stats = node_stats
        #: where the dialer connected it (a zdm.proxy.dialer.Endpoint)
        self.endpoint = None

    # -- asyncio.Protocol --------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport
        self.out.attach(transport)
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
                if frame.flags & COMPRESSION:  # Cassandra compresses even its READY
                    frame = inflate_frame(frame, self.codec, self.max_frame_bytes)
                if self.in_handshake and starts_segment_framing(frame):
                    # everything after this frame, both ways, is inside segments
                    reader.start_segments(self.codec)
                    self.out.flush()  # anything queued before the switch goes out bare
                    self.out.segmented = True
                    self.out.codec = self.codec
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
        if self.node_stats is not None:
            self.node_stats.answered(self.last_activity - entry[2], frame)
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
        for callback, _, _ in pending:
            callback(Failure(reason))
        on_lost = self.on_lost
        self.on_event = self.on_lost = None  # nothing more comes; let the owner go
        if on_lost is not None:
            on_lost(self, reason)

    # -- requests ------------------------------------------------------------------
    def send(self, version: int, flags: int, opcode: int, body: bytes, callback: Callback,
             timeout: float | None = None) -> None:
        if self.closed:
            callback(Failure(f"connection to {self.name} is closed"))
            return
        now = time.monotonic()
        try:
            stream = self.streams.acquire((callback, now + (timeout or self.request_timeout), now))
        except StreamsExhausted:
            callback(Failure(f"too many requests in flight on {self.name}"))
            return
        if self.deflate is not None and body:
            body = deflate_body(self.deflate, body)
            flags |= COMPRESSION
        self.write(_HEADER.pack(version, flags, stream, opcode, len(body)), body)

    def start_compression(self) -> None:
        """The handshake is done: v3/v4 requests from now on are compressed as negotiated
        (v5 compresses segments, switched on by the handshake answer)."""
        if self.codec is not None and self.version < 5:
            self.deflate = self.codec

    def sender(self, version: int) -> Callable[[int, int, bytes, Callback], None]:
        """``send`` bound to ``version``: what a request handler is given."""
        return functools.partial(self.send, version)

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
            callback, deadline, sent = pending[stream]
            pending[stream] = _LATE
            if self.node_stats is not None:
                self.node_stats.failed("client_timeout")
            callback(Failure(f"no answer from {self.name} within {deadline - sent:g}s"))

    def close(self) -> None:
        self.out.flush()
        if self.transport is not None:
            self.transport.close()


class ClientConnection(asyncio.Protocol):
    """One application connection; its owner decides, this class moves bytes."""

    __slots__ = ("reader", "make_owner", "on_frame", "on_protocol_error", "on_lost", "transport",
                 "out", "peer", "max_frame_bytes", "codec", "deflate")

    def __init__(self, make_owner: Callable[["ClientConnection"], object], *,
                 max_frame_bytes: int) -> None:
        self.reader = FrameReader(max_frame_bytes, expect_response=False)
        self.max_frame_bytes = max_frame_bytes
        #: the compression the client's STARTUP negotiated (frames read are inflated with it)
        self.codec: Codec | None = None
        #: compresses v3/v4 answers, once the handshake answer is out
        self.deflate: Codec | None = None
        self.make_owner = make_owner
        self.on_frame: Callable[[Frame], None] | None = None
        self.on_protocol_error: Callable[[ProtocolError], None] | None = None
        self.on_lost: Callable[[], None] | None = None
        self.transport: asyncio.Transport | None = None
        self.out = _Output()
        self.peer = "?"

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.out.attach(transport)
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.make_owner(self)
        self.make_owner = None

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        reader.receive_data(data)
        try:
            while True:
                frame = reader.next_frame()
                if frame is None:
                    return
                if frame.flags & COMPRESSION:
                    frame = inflate_frame(frame, self.codec, self.max_frame_bytes)
                on_frame = self.on_frame
                if on_frame is None:  # closed while handling this burst
                    return
                on_frame(frame)
        except ProtocolError as exc:
            if self.on_protocol_error is not None:
                self.on_protocol_error(exc)

    def connection_lost(self, exc) -> None:
        on_lost = self.on_lost
        self.on_frame = self.on_protocol_error = self.on_lost = None
        if on_lost is not None:
            on_lost()

    def start_segments(self, codec: Codec | None = None) -> None:
        """Call right after writing the v5 READY/AUTHENTICATE that ends the bare handshake;
        ``codec``: the compression its STARTUP negotiated."""
        self.codec = codec
        self.reader.start_segments(codec)
        self.out.flush()  # the READY/AUTHENTICATE itself goes out bare
        self.out.segmented = True
        self.out.codec = codec

    def start_compression(self, codec: Codec) -> None:
        """Call right after writing the v3/v4 READY/AUTHENTICATE answering a STARTUP that
        negotiated ``codec``: later frames both ways may be compressed."""
        self.codec = self.deflate = codec

    def write(self, header: bytes, body: bytes = b"") -> None:
        """Write bytes as they are (frames of the handshake, before any compression)."""
        self.out.write(header, body)

    def reply(self, stream: int, frame: Frame) -> None:
        """Write ``frame`` as the answer on ``stream`` (compressed as negotiated)."""
        body = frame.body
        if self.deflate is None or not body:
            self.out.write(frame.header(stream), body)
            return
        body = deflate_body(self.deflate, body)
        self.out.write(_HEADER.pack(frame.version | RESPONSE_BIT, frame.flags | COMPRESSION, stream,
                                    frame.opcode, len(body)), body)

    def close(self) -> None:
        self.out.flush()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
