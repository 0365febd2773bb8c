"""Compression of frame bodies (v3/v4) and segment payloads (v5): LZ4 and Snappy.

Theory of operation: a client names an algorithm in its STARTUP (``COMPRESSION``);
:func:`negotiate` turns that name into a :class:`Codec`, or raises the PROTOCOL_ERROR a
Cassandra node answers.  From then on:

* v3/v4 (v4 spec section 5): each frame whose COMPRESSION flag (0x01) is set carries a
  compressed body.  LZ4: a 4-byte big-endian uncompressed length, then one LZ4 block;
  Snappy: one raw Snappy buffer (it opens with its own varint length).
  :func:`inflate_frame` turns such a frame into the same frame with its flag cleared and
  its body plain; :func:`deflate_body` does the reverse for a body about to be sent.
* v5 (v5 spec section 2.2): frames are never compressed on their own; whole segment
  payloads are, as raw LZ4 blocks whose lengths are in the segment header
  (``zdm.cql.segment``).  Snappy is not defined for v5.

Invariant (pass-through): a body inflated here is an :class:`Inflated` ``bytes`` that
remembers the compressed bytes it came from and the codec that made them.  Routing code
sees plain ``bytes``; rewriting a body (a slice, a splice) yields a plain ``bytes``
again, so :func:`deflate_body` can send an unchanged body in its original compressed
form without compressing it again, and compresses only what was changed or made here
(once, when the same body goes to both clusters).

A declared uncompressed size above the frame limit is refused before any work is done,
so a small compressed frame cannot make the proxy allocate a huge buffer.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Iterable

import cramjam
import lz4.block

from zdm.cql.constants import COMPRESSION
from zdm.cql.errors import FrameTooLarge, ProtocolError

if TYPE_CHECKING:  # frame.py imports segment.py, which imports this module
    from zdm.cql.frame import Frame


_new_frame = tuple.__new__
_LENGTH = struct.Struct(">I")  # the uncompressed length before an LZ4 frame body
_lz4_compress = lz4.block.compress
_lz4_decompress = lz4.block.decompress
_snappy_compress = cramjam.snappy.compress_raw
_snappy_decompress = cramjam.snappy.decompress_raw
_snappy_length = cramjam.snappy.decompress_raw_len


class Inflated(bytes):
    """A body decompressed by a :class:`Codec`, with the bytes it was sent as."""

    # bytes subclasses cannot have non-empty __slots__; the two attributes live in a dict
    packed: bytes
    codec: "Codec"


class Codec:
    """One compression algorithm, as the CQL protocol frames it."""

    __slots__ = ("name", "segments", "last")

    def __init__(self, name: str, *, segments: bool) -> None:
        self.name = name
        #: usable for v5 segment payloads (LZ4 only)
        self.segments = segments
        #: (body, compressed) of the last body :func:`deflate_body` compressed: a write sent
        #: to both clusters is one body object sent twice, compressed once (one tuple, so a
        #: reader on another thread never pairs one body with another's bytes)
        self.last: tuple[bytes, bytes] = (b"", b"")

    def __repr__(self) -> str:
        return f"Codec({self.name!r})"

    def compress(self, body: bytes) -> bytes:
        """A frame body in this algorithm's v4 format."""
        raise NotImplementedError

    def uncompressed_size(self, packed: bytes) -> int:
        """The size ``packed`` declares it decompresses to (raises ProtocolError if unreadable)."""
        raise NotImplementedError

    def decompress(self, packed: bytes, size: int) -> bytes:
        """The body ``packed`` holds, exactly ``size`` bytes (from :meth:`uncompressed_size`)."""
        raise NotImplementedError

    # v5 segment payloads (only when ``segments``): bare blocks, sizes in the segment header
    def compress_block(self, payload: bytes | memoryview) -> bytes:
        raise NotImplementedError

    def decompress_block(self, block: bytes | memoryview, size: int) -> bytes:
        raise NotImplementedError


class Lz4(Codec):
    __slots__ = ()

    def __init__(self) -> None:
        super().__init__("lz4", segments=True)

    def compress(self, body: bytes) -> bytes:
        return _LENGTH.pack(len(body)) + _lz4_compress(body, store_size=False)

    def uncompressed_size(self, packed: bytes) -> int:
        if len(packed) < 4:
            raise ProtocolError(f"LZ4 frame body of {len(packed)} bytes lacks its 4-byte length")
        return _LENGTH.unpack_from(packed)[0]

    def decompress(self, packed: bytes, size: int) -> bytes:
        return self.decompress_block(memoryview(packed)[4:], size)

    def compress_block(self, payload: bytes | memoryview) -> bytes:
        return _lz4_compress(payload, store_size=False)

    def decompress_block(self, block: bytes | memoryview, size: int) -> bytes:
        if not size:
            return b""
        try:
            plain = _lz4_decompress(block, uncompressed_size=size)
        except lz4.block.LZ4BlockError as exc:
            raise ProtocolError(f"corrupt LZ4 data: {exc}") from None
        if len(plain) != size:
            raise ProtocolError(f"corrupt LZ4 data: {len(plain)} bytes where {size} were declared")
        return plain


class Snappy(Codec):
    __slots__ = ()

    def __init__(self) -> None:
        super().__init__("snappy", segments=False)

    def compress(self, body: bytes) -> bytes:
        return bytes(_snappy_compress(body))

    def uncompressed_size(self, packed: bytes) -> int:
        try:
            return _snappy_length(packed)
        except Exception as exc:  # cramjam raises its own DecompressionError
            raise ProtocolError(f"corrupt Snappy data: {exc}") from None

    def decompress(self, packed: bytes, size: int) -> bytes:
        try:
            plain = bytes(_snappy_decompress(packed))
        except Exception as exc:
            raise ProtocolError(f"corrupt Snappy data: {exc}") from None
        if len(plain) != size:
            raise ProtocolError(f"corrupt Snappy data: {len(plain)} bytes where {size} were declared")
        return plain


LZ4 = Lz4()
SNAPPY = Snappy()
#: what the proxy implements, in the order it prefers them
CODECS: dict[str, Codec] = {"lz4": LZ4, "snappy": SNAPPY}


def usable(name: str, version: int) -> bool:
    """Whether the proxy can speak algorithm ``name`` (lower case) on protocol ``version``."""
    codec = CODECS.get(name)
    return codec is not None and (version < 5 or codec.segments)


def offered(version: int, *supported_by: Iterable[str]) -> list[str]:
    """The algorithms to advertise on ``version``: those the proxy speaks there and every
    one of ``supported_by`` (each cluster's SUPPORTED ``COMPRESSION`` list) offers."""
    names = [n for n in CODECS if usable(n, version)]
    for offer in supported_by:
        lowered = {o.lower() for o in offer}
        names = [n for n in names if n in lowered]
    return names


def negotiate(requested: str | None, version: int) -> Codec | None:
    """The codec a STARTUP's ``COMPRESSION`` option asks for (None: no compression).

    Refusals are Cassandra 5.0's (``StartupMessage``), code and wording, so a driver
    reports the same thing through the proxy as against a node.
    """
    if requested is None:
        return None
    name = requested.lower()  # Cassandra accepts "LZ4"
    codec = CODECS.get(name)
    if codec is None:
        raise ProtocolError(f"Unknown compression algorithm: {requested}", version=version)
    if version >= 5 and not codec.segments:
        raise ProtocolError(f"{name.capitalize()} compression is not supported in protocol V{version}",
                            version=version)
    return codec


def inflate_frame(frame: Frame, codec: Codec | None, max_bytes: int) -> Frame:
    """``frame`` (its COMPRESSION flag set) with its body decompressed and the flag cleared."""
    version, is_response, flags, stream, opcode, packed = frame
    if version >= 5:
        # v5 compresses segments, never a frame; the Java driver 4 still sets the flag on the
        # frames inside compressed segments, and Cassandra ignores it: so does the proxy
        return _new_frame(type(frame), (version, is_response, flags & ~COMPRESSION, stream, opcode, packed))
    if codec is None:
        raise ProtocolError("compressed frame on a connection that negotiated no compression",
                            stream=stream, version=version)
    try:
        size = codec.uncompressed_size(packed)
        if size > max_bytes:
            raise FrameTooLarge(f"frame body decompresses to {size} bytes, above the limit of "
                                f"{max_bytes} bytes")
        body = Inflated(codec.decompress(packed, size))
    except ProtocolError as exc:
        exc.stream, exc.version = stream, version
        raise
    body.packed = packed
    body.codec = codec
    # tuple.__new__: a Frame without NamedTuple's argument handling (this is per frame)
    return _new_frame(type(frame), (version, is_response, flags & ~COMPRESSION, stream, opcode, body))


def deflate_body(codec: Codec, body: bytes) -> bytes:
    """``body`` compressed by ``codec``: the bytes it arrived as when it is unchanged."""
    if type(body) is Inflated and body.codec is codec:
        return body.packed
    last = codec.last
    if last[0] is body:
        return last[1]
    packed = codec.compress(body)
    if type(body) is bytes:  # immutable: the same object always holds the same bytes
        codec.last = (body, packed)
    return packed

