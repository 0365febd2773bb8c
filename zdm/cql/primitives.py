"""The notations of v5 spec section 3 ([short], [string], [bytes], ...).

Readers take ``(buf, offset)`` and return ``(value, new_offset)``; ``buf`` is
``bytes`` or a ``memoryview`` and is never copied except for the value itself.
Any read past the end or any invalid content (bad UTF-8, [value] length < -2,
odd [inet] size) raises :class:`ProtocolError`, never ``IndexError``,
``struct.error`` or ``UnicodeDecodeError``.  Writers return ``bytes``.
All integers are big-endian (v5 spec section 2.4).
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Mapping

from zdm.cql.errors import ProtocolError

Buf = bytes | bytearray | memoryview

BYTE = struct.Struct(">B")
SHORT = struct.Struct(">H")
INT = struct.Struct(">i")
UINT = struct.Struct(">I")
LONG = struct.Struct(">q")


class _Unset:
    """[value] of length -2: "not set", leave the column unchanged (v4+)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNSET"


UNSET = _Unset()


def _short_read(what: str, offset: int) -> ProtocolError:
    return ProtocolError(f"truncated message: not enough bytes for {what} at offset {offset}")


def _fixed(fmt: struct.Struct, what: str):
    size = fmt.size
    unpack_from = fmt.unpack_from

    def read(buf: Buf, offset: int) -> tuple[int, int]:
        if offset + size > len(buf):
            raise _short_read(what, offset)
        return unpack_from(buf, offset)[0], offset + size

    read.__name__ = f"read_{what.strip('[]').replace(' ', '_')}"
    read.__doc__ = f"Read a {what}."
    return read


read_byte = _fixed(BYTE, "[byte]")
read_short = _fixed(SHORT, "[short]")
read_int = _fixed(INT, "[int]")
read_long = _fixed(LONG, "[long]")


def _take(buf: Buf, offset: int, n: int, what: str) -> tuple[bytes, int]:
    end = offset + n
    if end > len(buf):
        raise _short_read(what, offset)
    return bytes(buf[offset:end]), end


def _utf8(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"{what} is not valid UTF-8: {exc.reason}") from None


def read_string(buf: Buf, offset: int) -> tuple[str, int]:
    n, offset = read_short(buf, offset)
    raw, offset = _take(buf, offset, n, "[string]")
    return _utf8(raw, "[string]"), offset


def read_long_string(buf: Buf, offset: int) -> tuple[str, int]:
    n, offset = read_int(buf, offset)
    if n < 0:
        raise ProtocolError(f"[long string] with negative length {n}")
    raw, offset = _take(buf, offset, n, "[long string]")
    return _utf8(raw, "[long string]"), offset


def skip_string(buf: Buf, offset: int) -> int:
    """Offset after a [string] without decoding it."""
    n, offset = read_short(buf, offset)
    if offset + n > len(buf):
        raise _short_read("[string]", offset)
    return offset + n


def read_short_bytes(buf: Buf, offset: int) -> tuple[bytes, int]:
    n, offset = read_short(buf, offset)
    return _take(buf, offset, n, "[short bytes]")


def read_bytes(buf: Buf, offset: int) -> tuple[bytes | None, int]:
    n, offset = read_int(buf, offset)
    if n < 0:
        return None, offset
    return _take(buf, offset, n, "[bytes]")


def skip_bytes(buf: Buf, offset: int) -> int:
    """Offset after a [bytes] / [value] without copying it."""
    n, offset = read_int(buf, offset)
    if n < -2:
        raise ProtocolError(f"[value] with invalid length {n}")
    if n > 0:
        offset += n
        if offset > len(buf):
            raise _short_read("[bytes]", offset - n)
    return offset


def read_value(buf: Buf, offset: int) -> tuple[bytes | None | _Unset, int]:
    n, offset = read_int(buf, offset)
    if n == -1:
        return None, offset
    if n == -2:
        return UNSET, offset
    if n < 0:
        raise ProtocolError(f"[value] with invalid length {n}")
    return _take(buf, offset, n, "[value]")


def read_string_list(buf: Buf, offset: int) -> tuple[list[str], int]:
    n, offset = read_short(buf, offset)
    out = []
    for _ in range(n):
        s, offset = read_string(buf, offset)
        out.append(s)
    return out, offset


def read_string_map(buf: Buf, offset: int) -> tuple[dict[str, str], int]:
    n, offset = read_short(buf, offset)
    out = {}
    for _ in range(n):
        k, offset = read_string(buf, offset)
        out[k], offset = read_string(buf, offset)
    return out, offset


def read_string_multimap(buf: Buf, offset: int) -> tuple[dict[str, list[str]], int]:
    n, offset = read_short(buf, offset)
    out = {}
    for _ in range(n):
        k, offset = read_string(buf, offset)
        out[k], offset = read_string_list(buf, offset)
    return out, offset


def read_bytes_map(buf: Buf, offset: int) -> tuple[dict[str, bytes | None], int]:
    n, offset = read_short(buf, offset)
    out = {}
    for _ in range(n):
        k, offset = read_string(buf, offset)
        out[k], offset = read_bytes(buf, offset)
    return out, offset


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def read_inet(buf: Buf, offset: int) -> tuple[tuple[IPAddress, int], int]:
    n, offset = read_byte(buf, offset)
    if n not in (4, 16):
        raise ProtocolError(f"[inet] with invalid address size {n}")
    raw, offset = _take(buf, offset, n, "[inet]")
    port, offset = read_int(buf, offset)
    return (ipaddress.ip_address(raw), port), offset




# --- writers -----------------------------------------------------------------









def _utf8_bytes(s: str | bytes) -> bytes:
    return s if isinstance(s, bytes) else s.encode("utf-8")


def write_string(s: str | bytes) -> bytes:
    raw = _utf8_bytes(s)
    return SHORT.pack(len(raw)) + raw


def write_long_string(s: str | bytes) -> bytes:
    raw = _utf8_bytes(s)
    return INT.pack(len(raw)) + raw


def write_short_bytes(b: bytes) -> bytes:
    return SHORT.pack(len(b)) + b


def write_bytes(b: bytes | None) -> bytes:
    if b is None:
        return INT.pack(-1)
    return INT.pack(len(b)) + b


def write_value(b: bytes | None | _Unset) -> bytes:
    if b is UNSET:
        return INT.pack(-2)
    return write_bytes(b)  # type: ignore[arg-type]


def write_string_list(items: Iterable[str]) -> bytes:
    items = list(items)
    return SHORT.pack(len(items)) + b"".join(write_string(s) for s in items)


def write_string_map(m: Mapping[str, str]) -> bytes:
    return SHORT.pack(len(m)) + b"".join(write_string(k) + write_string(v) for k, v in m.items())


def write_string_multimap(m: Mapping[str, Iterable[str]]) -> bytes:
    return SHORT.pack(len(m)) + b"".join(write_string(k) + write_string_list(v)
                                         for k, v in m.items())





