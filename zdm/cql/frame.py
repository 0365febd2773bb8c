"""CQL frames ("envelopes" in v5): the 9-byte header and an opaque body.

Theory of operation: a :class:`FrameReader` is fed raw bytes with
``receive_data`` and hands out one :class:`Frame` per ``next_frame`` call, or
``None`` when it needs more bytes.  Bodies stay undecoded ``bytes``; routing
code decodes only what it needs (``messages``).

Header, v4 spec section 2 / v5 spec section 2.4.1 (big-endian)::

    version (1, top bit = response) | flags (1) | stream ([short], signed) |
    opcode (1) | length ([int], body size)

Invariants:

* The version byte is checked as soon as it arrives, before the rest of the
  header: v1/v2 use a shorter header, so waiting for 9 bytes could wait forever.
  A version outside 3..5 raises :class:`UnsupportedVersion` (with the stream id
  when enough of the header is there to read it).
* A declared length above ``max_frame_bytes`` raises :class:`FrameTooLarge`
  before any of the body is buffered.
* Errors poison the reader: after one, every call re-raises it.
* v5 segment framing (spec section 2.3.1): the handshake (OPTIONS/SUPPORTED,
  STARTUP and its READY or AUTHENTICATE answer) travels as bare frames; every
  later byte in *both* directions is inside segments.  ``next_frame`` consumes
  exactly one frame, so calling :meth:`FrameReader.start_segments` between two
  ``next_frame`` calls switches at exactly the right byte: on the server->client
  reader right after it returned the READY/AUTHENTICATE
  (:func:`starts_segment_framing`), on the client->server reader when that
  answer to its STARTUP is seen.  Bytes already buffered past the switch point
  are decoded as segments.
* Compression: the reader hands out frames as they are on the wire, a v3/v4
  frame's COMPRESSION flag still set (``zdm.cql.compression.inflate_frame``
  decompresses it); v5 segments are decompressed by the segment reader when
  :meth:`FrameReader.start_segments` is given the negotiated codec.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from zdm.cql.buffer import ReceiveBuffer
from zdm.cql.compression import Codec
from zdm.cql.constants import (MAX_FRAME_BYTES_DEFAULT, MAX_VERSION, MIN_VERSION, RESPONSE_BIT,
                               SUPPORTED_VERSIONS, VERSION_MASK, ErrorCode, Opcode)
from zdm.cql.errors import FrameTooLarge, ProtocolError, UnsupportedVersion
from zdm.cql.segment import SegmentReader

HEADER_SIZE = 9
_HEADER = struct.Struct(">BBhBi")
_BYTE = struct.Struct(">B")
_STREAM_V3 = struct.Struct(">xxh")     # [short] stream at offset 2 (v3+)
_STREAM_V1 = struct.Struct(">xxb")     # 1-byte stream at offset 2 (v1/v2)
_HEADER_V1 = struct.Struct(">BBbBi")   # v1/v2 8-byte header, only to answer them
_OPCODES = {int(op): op for op in Opcode}


class Frame(NamedTuple):
    """One frame; ``version`` has the direction bit stripped, ``body`` is raw."""

    version: int
    is_response: bool
    flags: int
    stream: int
    opcode: Opcode | int
    body: bytes

    def header(self, stream: int | None = None) -> bytes:
        """The 9-byte header, optionally with another stream id."""
        return _HEADER.pack(self.version | (RESPONSE_BIT if self.is_response else 0), self.flags,
                            self.stream if stream is None else stream, self.opcode,
                            len(self.body))

    def to_bytes(self, stream: int | None = None) -> bytes:
        return self.header(stream) + self.body


def encode_frame(version: int, opcode: int, body: bytes, *, stream: int = 0, flags: int = 0,
                 response: bool = False) -> bytes:
    return _HEADER.pack(version | (RESPONSE_BIT if response else 0), flags, stream, opcode,
                        len(body)) + body


def encode_unsupported_version(version: int, stream: int | None = None,
                               supported: tuple[int, ...] = SUPPORTED_VERSIONS) -> bytes:
    """The ERROR frame answering a client that spoke an unsupported ``version``.

    Like Cassandra (``ProtocolVersion.decode``), v1/v2 clients are answered in
    their own (8-byte header) format so they can read it; any other version is
    answered in v4, as zdm-proxy does, which every driver that can downgrade
    understands.  The message wording makes drivers retry with a lower version;
    ``supported`` lists what the peer may use instead (fewer when a cluster behind
    the proxy speaks fewer).
    """
    raw = UnsupportedVersion(version, supported=supported).message.encode("utf-8")
    body = struct.pack(">iH", ErrorCode.PROTOCOL_ERROR, len(raw)) + raw
    stream = stream or 0
    if version in (1, 2):
        return _HEADER_V1.pack(version | RESPONSE_BIT, 0, stream, Opcode.ERROR, len(body)) + body
    return encode_frame(4, Opcode.ERROR, body, stream=stream, response=True)


def starts_segment_framing(frame: Frame) -> bool:
    """True for the v5 handshake answer after which both directions use segments.

    Only meaningful during the handshake: READY also answers REGISTER later on.
    """
    return (frame.version == 5 and frame.is_response
            and frame.opcode in (Opcode.READY, Opcode.AUTHENTICATE))


class FrameReader:
    """Sans-I/O frame decoder for one direction of one connection."""

    __slots__ = ("_max", "_expect_response", "_raw", "_segments", "_frames", "_error")

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES_DEFAULT, *,
                 expect_response: bool) -> None:
        self._max = max_frame_bytes
        self._expect_response = expect_response
        self._raw = ReceiveBuffer()
        self._segments: SegmentReader | None = None
        self._frames: ReceiveBuffer | None = None  # frame bytes unwrapped from segments
        self._error: ProtocolError | None = None

    @property
    def segmented(self) -> bool:
        return self._segments is not None

    def __len__(self) -> int:
        """Bytes received and not yet returned as frames."""
        if self._segments is None:
            return len(self._raw)
        return len(self._segments) + len(self._frames)

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        if self._segments is None:
            self._raw.feed(data)
        else:
            self._segments.receive_data(data)

    def start_segments(self, codec: Codec | None = None) -> None:
        """From now on decode v5 segments, compressed by ``codec`` (an LZ4 codec) if given;
        already buffered bytes are segment bytes."""
        if self._segments is not None:
            return
        self._segments = SegmentReader(codec=codec)
        self._frames = ReceiveBuffer()
        if self._raw:
            self._segments.receive_data(self._raw.consume_all())

    def next_frame(self) -> Frame | None:
        if self._error is not None:
            raise self._error
        try:
            if self._segments is None:
                return self._parse(self._raw)
            return self._next_segmented()
        except ProtocolError as exc:
            self._error = exc
            raise

    def _next_segmented(self) -> Frame | None:
        frames = self._frames
        while True:
            frame = self._parse(frames)
            if frame is not None:
                if frame.version != 5:
                    raise ProtocolError(f"protocol v{frame.version} frame inside a v5 segment",
                                        stream=frame.stream, version=frame.version)
                return frame
            item = self._segments.next_payload()
            if item is None:
                return None
            payload, self_contained = item
            if self_contained and frames:
                raise ProtocolError("self-contained segment received while a frame is incomplete",
                                    version=5)
            frames.feed(payload)

    def _parse(self, buf: ReceiveBuffer) -> Frame | None:
        # the hot path: reads the buffer's bytes in place (one copy, the body's)
        data, start = buf._data, buf._start
        avail = len(data) - start
        if avail < 1:
            return None
        first = data[start]
        version = first & VERSION_MASK
        if not MIN_VERSION <= version <= MAX_VERSION:
            raise UnsupportedVersion(version, stream=self._stream_of(buf, version))
        if bool(first & RESPONSE_BIT) != self._expect_response:
            raise ProtocolError(
                f"expected a {'response' if self._expect_response else 'request'} frame, "
                f"got a {'request' if self._expect_response else 'response'}",
                stream=self._stream_of(buf, version), version=version)
        if avail < HEADER_SIZE:
            return None
        _, flags, stream, opcode, length = _HEADER.unpack_from(data, start)
        if length < 0 or length > self._max:
            raise FrameTooLarge(f"frame body of {length} bytes exceeds the limit of "
                                f"{self._max} bytes", stream=stream, version=version)
        if avail < HEADER_SIZE + length:
            return None
        body_at = start + HEADER_SIZE
        if not length:
            body = b""
        elif type(data) is bytes:
            body = data[body_at:body_at + length]
        else:
            body = bytes(memoryview(data)[body_at:body_at + length])
        buf._advance(HEADER_SIZE + length)
        return Frame(version, self._expect_response, flags, stream, _OPCODES.get(opcode, opcode), body)

    @staticmethod
    def _stream_of(buf: ReceiveBuffer, version: int) -> int | None:
        found = buf.unpack_from(_STREAM_V1 if version in (1, 2) else _STREAM_V3)
        return None if found is None else found[0]
