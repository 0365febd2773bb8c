"""Protocol v5 outer framing ("segments"), v5 spec sections 2.1 to 2.3.

Theory of operation: once the v5 handshake is over (section 2.3.1) every byte
on the wire belongs to a segment::

    header  3 bytes  little-endian: payload length (17 bits) | self-contained (bit 17)
    crc24   3 bytes  little-endian CRC24 of the 3 header bytes
    payload n bytes  (n <= 131071)
    crc32   4 bytes  little-endian CRC32 of the payload

A self-contained payload holds one or more whole envelopes (the pre-v5
"frames"); a frame too big for one segment is split over consecutive
non-self-contained segments.  :class:`SegmentReader` only validates and
unwraps; turning payloads back into frames is ``frame.FrameReader``'s job.

With LZ4 negotiated (section 2.2) the header grows to 5 bytes::

    header  5 bytes  little-endian: payload length (17 bits) |
                     uncompressed length (17 bits) | self-contained (bit 34)
    crc24   3 bytes  of the 5 header bytes
    payload n bytes  one raw LZ4 block (its CRC32 is of these compressed bytes)

An uncompressed length of 0 means the payload was sent as it is: the writer does so
whenever compressing would not make it smaller (as Cassandra and the drivers do), and
for an empty payload.  Both lengths stay within 131071 bytes, so a payload is split on
the uncompressed size exactly as without compression.  Whether a connection's segments
are compressed is fixed by its STARTUP: the reader and writer are given the codec
(``zdm.cql.compression``), or None.
"""

from __future__ import annotations

import struct
import zlib

from zdm.cql.buffer import ReceiveBuffer
from zdm.cql.compression import Codec
from zdm.cql.constants import MAX_SEGMENT_PAYLOAD
from zdm.cql.errors import ProtocolError

HEADER_SIZE = 3
COMPRESSED_HEADER_SIZE = 5
HEADER_CRC_SIZE = 3
TRAILER_SIZE = 4
_SELF_CONTAINED = 1 << 17
_SELF_CONTAINED_COMPRESSED = 1 << 34
_UINT32_LE = struct.Struct("<I")
_FRAME_LENGTH = struct.Struct(">I")  # the [int] length at offset 5 of a frame header

# Section 2.1: "initializing the CRC24 algorithm with the value 0x875060 and
# using the polynomial 0x1974F0B" (MSB-first, no final xor).
CRC24_INIT = 0x875060
CRC24_POLY = 0x1974F0B


def _crc24_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= CRC24_POLY
        table.append(crc & 0xFFFFFF)
    return tuple(table)


_CRC24_TABLE = _crc24_table()


def crc24(data: bytes) -> int:
    """CRC24 of ``data`` as Cassandra computes it for segment headers."""
    crc = CRC24_INIT
    table = _CRC24_TABLE
    for b in data:
        crc = ((crc << 8) & 0xFFFFFF) ^ table[(crc >> 16) ^ b]
    return crc


# Cassandra's segment CRC32 is zlib's CRC32 seeded by first hashing these four
# bytes (python driver: CRC32_INITIAL = zlib.crc32(b"\xfa\x2d\x55\xca")).
_CRC32_SEED = zlib.crc32(b"\xfa\x2d\x55\xca")


def crc32(data: bytes | memoryview) -> int:
    """CRC32 of a segment payload."""
    return zlib.crc32(data, _CRC32_SEED)


def encode_segment(payload: bytes | memoryview, self_contained: bool,
                   codec: Codec | None = None) -> bytes:
    """One segment around ``payload`` (at most 131071 bytes), compressed by ``codec``
    (an LZ4 codec: ``codec.segments``) when it makes the payload smaller."""
    n = len(payload)
    if n > MAX_SEGMENT_PAYLOAD:
        raise ValueError(f"segment payload of {n} bytes exceeds {MAX_SEGMENT_PAYLOAD}")
    if codec is None:
        header = (n | (_SELF_CONTAINED if self_contained else 0)).to_bytes(3, "little")
    else:
        packed = codec.compress_block(payload) if n else b""
        if len(packed) < n:
            header_bits = len(packed) | (n << 17)
            payload = packed
        else:  # uncompressed length 0: the payload as it is
            header_bits = n
        if self_contained:
            header_bits |= _SELF_CONTAINED_COMPRESSED
        header = header_bits.to_bytes(COMPRESSED_HEADER_SIZE, "little")
    return b"".join((header, crc24(header).to_bytes(3, "little"), payload,
                     _UINT32_LE.pack(crc32(payload))))


def encode_segments(frames_bytes: bytes, codec: Codec | None = None) -> bytes:
    """Wrap whole frames (concatenated) into segments, compressed by ``codec`` if given.

    Consecutive frames are packed into self-contained segments of at most
    131071 bytes; a frame larger than that goes alone into a run of
    non-self-contained segments (section 2: a non-self-contained payload carries
    part of exactly one large envelope).
    """
    view = memoryview(frames_bytes)
    total = len(view)
    out: list[bytes] = []
    group_start = pos = 0
    while pos < total:
        if pos + 9 > total:
            raise ProtocolError("encode_segments: trailing bytes are not a whole frame")
        size = 9 + _FRAME_LENGTH.unpack_from(view, pos + 5)[0]
        if pos + size > total:
            raise ProtocolError("encode_segments: trailing bytes are not a whole frame")
        if size > MAX_SEGMENT_PAYLOAD:
            if pos > group_start:
                out.append(encode_segment(view[group_start:pos], True, codec))
            for chunk in range(pos, pos + size, MAX_SEGMENT_PAYLOAD):
                out.append(encode_segment(view[chunk:min(chunk + MAX_SEGMENT_PAYLOAD, pos + size)],
                                          False, codec))
            group_start = pos + size
        elif pos + size - group_start > MAX_SEGMENT_PAYLOAD:
            out.append(encode_segment(view[group_start:pos], True, codec))
            group_start = pos
        pos += size
    if pos > group_start:
        out.append(encode_segment(view[group_start:pos], True, codec))
    return b"".join(out)


class SegmentReader:
    """Sans-I/O decoder of v5 segments, uncompressed or (``codec``) compressed.

    ``receive_data`` buffers; ``next_payload`` returns ``(payload,
    self_contained)`` for the next complete segment (its payload decompressed), or
    ``None`` when more bytes are needed.  A CRC mismatch or a corrupt compressed
    payload raises :class:`ProtocolError` and poisons the reader: every later call
    re-raises it.
    """

    __slots__ = ("_buf", "_max_payload", "_error", "_codec")

    def __init__(self, max_payload: int = MAX_SEGMENT_PAYLOAD, *, codec: Codec | None = None) -> None:
        if codec is not None and not codec.segments:
            raise ValueError(f"{codec.name} cannot compress v5 segments")
        self._buf = ReceiveBuffer()
        self._max_payload = max_payload
        self._error: ProtocolError | None = None
        self._codec = codec

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        self._buf.feed(data)

    def __len__(self) -> int:
        """Bytes buffered and not yet returned as a payload."""
        return len(self._buf)

    def next_payload(self) -> tuple[bytes, bool] | None:
        if self._error is not None:
            raise self._error
        try:
            return self._next_payload()
        except ProtocolError as exc:
            self._error = exc
            raise

    def _next_payload(self) -> tuple[bytes, bool] | None:
        if self._codec is not None:
            return self._next_compressed()
        head = self._buf.peek(HEADER_SIZE + HEADER_CRC_SIZE)
        if head is None:
            return None
        header = int.from_bytes(head[:3], "little")
        expected = int.from_bytes(head[3:], "little")
        actual = crc24(head[:3])
        if actual != expected:
            raise ProtocolError(f"segment header CRC24 mismatch: received {expected:06x}, "
                                f"computed {actual:06x}")
        length = header & MAX_SEGMENT_PAYLOAD
        if length > self._max_payload:
            raise ProtocolError(f"segment payload of {length} bytes exceeds {self._max_payload}")
        if len(self._buf) < HEADER_SIZE + HEADER_CRC_SIZE + length + TRAILER_SIZE:
            return None
        return self._payload(HEADER_SIZE + HEADER_CRC_SIZE, length), bool(header & _SELF_CONTAINED)

    def _payload(self, header_size: int, length: int) -> bytes:
        """Past a whole segment's header: its payload, its CRC32 trailer checked (v5 spec 2.1)."""
        self._buf.discard(header_size)
        payload = self._buf.consume_exactly(length)
        (expected,) = _UINT32_LE.unpack(self._buf.consume_exactly(TRAILER_SIZE))
        actual = crc32(payload)
        if actual != expected:
            raise ProtocolError(f"segment payload CRC32 mismatch: received {expected:08x}, "
                                f"computed {actual:08x}")
        return payload

    def _next_compressed(self) -> tuple[bytes, bool] | None:
        head = self._buf.peek(COMPRESSED_HEADER_SIZE + HEADER_CRC_SIZE)
        if head is None:
            return None
        header = int.from_bytes(head[:COMPRESSED_HEADER_SIZE], "little")
        expected = int.from_bytes(head[COMPRESSED_HEADER_SIZE:], "little")
        actual = crc24(head[:COMPRESSED_HEADER_SIZE])
        if actual != expected:
            raise ProtocolError(f"segment header CRC24 mismatch: received {expected:06x}, "
                                f"computed {actual:06x}")
        length = header & MAX_SEGMENT_PAYLOAD
        size = (header >> 17) & MAX_SEGMENT_PAYLOAD
        if max(length, size) > self._max_payload:
            raise ProtocolError(f"segment payload of {max(length, size)} bytes exceeds "
                                f"{self._max_payload}")
        if len(self._buf) < COMPRESSED_HEADER_SIZE + HEADER_CRC_SIZE + length + TRAILER_SIZE:
            return None
        payload = self._payload(COMPRESSED_HEADER_SIZE + HEADER_CRC_SIZE, length)
        if size:  # 0: sent uncompressed
            payload = self._codec.decompress_block(payload, size)
        return payload, bool(header & _SELF_CONTAINED_COMPRESSED)
