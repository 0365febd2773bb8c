"""CQL data types: the [option] type descriptions of result metadata and the
value serialization formats (v5 spec sections 4.2.5.2 and 5).

:class:`CqlType` describes a type (option id plus subtypes); ``.cql`` renders it
as CQL text ("set<text>", "map<uuid, blob>").  :func:`serialize` and
:func:`deserialize` convert between Python values and the bytes inside a
[bytes] cell for the types the proxy itself produces or reads (system.local,
system.peers): ascii, text, inet, uuid, timeuuid, int, bigint, counter,
smallint, tinyint, varint, boolean, blob, double, float, timestamp and
list/set/map/tuple/UDT of those.  ``deserialize`` returns the raw bytes for
types outside that list (decimal, date, time, duration, custom).
"""

from __future__ import annotations

import datetime
import ipaddress
import re
import struct
import uuid
from dataclasses import dataclass

from zdm.cql.errors import ProtocolError
from zdm.cql.primitives import INT, SHORT, read_short, read_string

CUSTOM, LIST, MAP, SET, UDT, TUPLE = 0x0000, 0x0020, 0x0021, 0x0022, 0x0030, 0x0031

# v5 spec section 4.2.5.2, option ids of native types.  0x000A was "text" in v1-v3
# specs; Cassandra sends 0x000D (varchar) for text columns.
NATIVE_TYPES = {
    0x0001: "ascii", 0x0002: "bigint", 0x0003: "blob", 0x0004: "boolean", 0x0005: "counter",
    0x0006: "decimal", 0x0007: "double", 0x0008: "float", 0x0009: "int", 0x000A: "text",
    0x000B: "timestamp", 0x000C: "uuid", 0x000D: "text", 0x000E: "varint", 0x000F: "timeuuid",
    0x0010: "inet", 0x0011: "date", 0x0012: "time", 0x0013: "smallint", 0x0014: "tinyint",
    0x0015: "duration",
}
_CODE_BY_NAME = {name: code for code, name in NATIVE_TYPES.items() if code != 0x000A}
_CODE_BY_NAME["varchar"] = 0x000D
_MAX_DEPTH = 32


@dataclass(frozen=True, slots=True)
class CqlType:
    """A CQL type as described by an [option]."""

    code: int
    subtypes: tuple[CqlType, ...] = ()
    custom: str | None = None             # class name, for CUSTOM
    keyspace: str | None = None           # for UDT
    name: str | None = None               # for UDT
    field_names: tuple[str, ...] = ()     # for UDT, parallel to subtypes

    @property
    def cql(self) -> str:
        if self.code in NATIVE_TYPES:
            return NATIVE_TYPES[self.code]
        if self.code == CUSTOM:
            return f"'{self.custom}'"
        if self.code == UDT:
            return f"{self.keyspace}.{self.name}"
        kind = {LIST: "list", SET: "set", MAP: "map", TUPLE: "tuple"}.get(self.code)
        if kind is None:
            return f"<unknown type 0x{self.code:04x}>"
        return f"{kind}<{', '.join(t.cql for t in self.subtypes)}>"

    def __str__(self) -> str:
        return self.cql


_TYPE_TOKEN = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*|[<>,])")


def parse_type(text: str) -> CqlType:
    """Parse simple CQL type text: native names, list/set/map/tuple, frozen<...>."""
    tokens = _TYPE_TOKEN.findall(text)
    if "".join(tokens).replace(" ", "") != re.sub(r"\s+", "", text):
        raise ValueError(f"cannot parse CQL type {text!r}")
    pos = 0

    def parse() -> CqlType:
        nonlocal pos
        if pos >= len(tokens):
            raise ValueError(f"cannot parse CQL type {text!r}")
        word = tokens[pos].lower()
        pos += 1
        if word in _CODE_BY_NAME:
            return CqlType(_CODE_BY_NAME[word])
        if word not in ("list", "set", "map", "tuple", "frozen"):
            raise ValueError(f"unknown CQL type {word!r} in {text!r}")
        expect("<")
        args = [parse()]
        while tokens[pos:pos + 1] == [","]:
            pos += 1
            args.append(parse())
        expect(">")
        if word == "frozen" and len(args) == 1:
            return args[0]
        arity = {"list": 1, "set": 1, "map": 2}.get(word)
        if arity is not None and len(args) != arity:
            raise ValueError(f"{word} takes {arity} type argument(s) in {text!r}")
        return CqlType({"list": LIST, "set": SET, "map": MAP, "tuple": TUPLE}[word], tuple(args))

    def expect(tok: str) -> None:
        nonlocal pos
        if tokens[pos:pos + 1] != [tok]:
            raise ValueError(f"expected {tok!r} in CQL type {text!r}")
        pos += 1

    result = parse()
    if pos != len(tokens):
        raise ValueError(f"trailing text in CQL type {text!r}")
    return result


def read_option(buf, offset: int, _depth: int = 0) -> tuple[CqlType, int]:
    """Read an [option] describing a type (v5 spec section 4.2.5.2)."""
    if _depth > _MAX_DEPTH:
        raise ProtocolError("type description nested too deeply")
    code, offset = read_short(buf, offset)
    if code in NATIVE_TYPES:
        return CqlType(code), offset
    if code == CUSTOM:
        name, offset = read_string(buf, offset)
        return CqlType(code, custom=name), offset
    if code in (LIST, SET):
        sub, offset = read_option(buf, offset, _depth + 1)
        return CqlType(code, (sub,)), offset
    if code == MAP:
        key, offset = read_option(buf, offset, _depth + 1)
        value, offset = read_option(buf, offset, _depth + 1)
        return CqlType(code, (key, value)), offset
    if code == UDT:
        ks, offset = read_string(buf, offset)
        name, offset = read_string(buf, offset)
        n, offset = read_short(buf, offset)
        names, subs = [], []
        for _ in range(n):
            field, offset = read_string(buf, offset)
            sub, offset = read_option(buf, offset, _depth + 1)
            names.append(field)
            subs.append(sub)
        return CqlType(code, tuple(subs), keyspace=ks, name=name, field_names=tuple(names)), offset
    if code == TUPLE:
        n, offset = read_short(buf, offset)
        subs = []
        for _ in range(n):
            sub, offset = read_option(buf, offset, _depth + 1)
            subs.append(sub)
        return CqlType(code, tuple(subs)), offset
    raise ProtocolError(f"unknown type option id 0x{code:04x}")


def write_option(t: CqlType) -> bytes:
    out = [SHORT.pack(t.code)]
    if t.code == CUSTOM:
        raw = (t.custom or "").encode()
        out.append(SHORT.pack(len(raw)) + raw)
    elif t.code == UDT:
        for s in (t.keyspace or "", t.name or ""):
            raw = s.encode()
            out.append(SHORT.pack(len(raw)) + raw)
        out.append(SHORT.pack(len(t.subtypes)))
        for field, sub in zip(t.field_names, t.subtypes):
            raw = field.encode()
            out.append(SHORT.pack(len(raw)) + raw + write_option(sub))
    elif t.code == TUPLE:
        out.append(SHORT.pack(len(t.subtypes)))
        out.extend(write_option(s) for s in t.subtypes)
    else:
        out.extend(write_option(s) for s in t.subtypes)
    return b"".join(out)


# --- values (v5 spec section 5) ----------------------------------------------

_FIXED = {
    0x0002: struct.Struct(">q"), 0x0005: struct.Struct(">q"), 0x0007: struct.Struct(">d"),
    0x0008: struct.Struct(">f"), 0x0009: struct.Struct(">i"), 0x000B: struct.Struct(">q"),
    0x0013: struct.Struct(">h"), 0x0014: struct.Struct(">b"),
}
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def serialize(t: CqlType, value) -> bytes | None:
    """The cell bytes of ``value`` (None stays None, i.e. null)."""
    if value is None:
        return None
    code = t.code
    if code in (0x000D, 0x000A):
        return value.encode("utf-8")
    if code == 0x0001:
        return value.encode("ascii")
    if code == 0x0003:
        return bytes(value)
    if code == 0x0004:
        return b"\x01" if value else b"\x00"
    if code in (0x000C, 0x000F):
        return (value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))).bytes
    if code == 0x0010:
        return ipaddress.ip_address(value).packed
    if code == 0x000B and isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        value = (value - _EPOCH) // datetime.timedelta(milliseconds=1)
    if code in _FIXED:
        return _FIXED[code].pack(value)
    if code == 0x000E:
        return value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True)
    if code in (LIST, SET):
        return _serialize_items(((t.subtypes[0], v) for v in value), len(value))
    if code == MAP:
        key_t, val_t = t.subtypes
        pairs = [x for k, v in value.items() for x in ((key_t, k), (val_t, v))]
        return _serialize_items(iter(pairs), len(value))
    if code == TUPLE:
        return b"".join(_cell(serialize(s, v)) for s, v in zip(t.subtypes, value))
    if code == UDT:
        return b"".join(_cell(serialize(s, value.get(f)))
                        for s, f in zip(t.subtypes, t.field_names))
    raise ValueError(f"serializing {t.cql} values is not supported")


def _cell(raw: bytes | None) -> bytes:
    return INT.pack(-1) if raw is None else INT.pack(len(raw)) + raw


def _serialize_items(items, count: int) -> bytes:
    return INT.pack(count) + b"".join(_cell(serialize(s, v)) for s, v in items)


def deserialize(t: CqlType, raw: bytes | None):
    """The Python value of cell bytes ``raw``; raises ProtocolError if malformed."""
    if raw is None:
        return None
    try:
        return _deserialize(t, raw)
    except ProtocolError:
        raise
    except (ValueError, struct.error, IndexError, OverflowError) as exc:
        raise ProtocolError(f"malformed {t.cql} value: {exc}") from None


def _deserialize(t: CqlType, raw: bytes):
    code = t.code
    if code in (0x000D, 0x000A):
        return raw.decode("utf-8")
    if code == 0x0001:
        return raw.decode("ascii")
    if code == 0x0003:
        return raw
    if code == 0x0004:
        if len(raw) != 1:
            raise ValueError("boolean must be 1 byte")
        return raw != b"\x00"
    if code in (0x000C, 0x000F):
        return uuid.UUID(bytes=raw)
    if code == 0x0010:
        if len(raw) not in (4, 16):
            raise ValueError("inet must be 4 or 16 bytes")
        return ipaddress.ip_address(raw)
    if code in _FIXED:
        value = _FIXED[code].unpack(raw)[0]
        if code == 0x000B:
            return _EPOCH + datetime.timedelta(milliseconds=value)
        return value
    if code == 0x000E:
        return int.from_bytes(raw, "big", signed=True)
    if code in (LIST, SET, MAP):
        count, off = _read_count(raw, 0)
        per = 2 if code == MAP else 1
        cells = []
        for _ in range(count * per):
            cell, off = _read_cell(raw, off)
            cells.append(cell)
        if code == MAP:
            key_t, val_t = t.subtypes
            return {deserialize(key_t, cells[i]): deserialize(val_t, cells[i + 1])
                    for i in range(0, len(cells), 2)}
        items = [deserialize(t.subtypes[0], c) for c in cells]
        if code == SET:
            try:
                return set(items)
            except TypeError:
                return items
        return items
    if code in (TUPLE, UDT):
        values, off = [], 0
        for sub in t.subtypes:
            if off >= len(raw):  # a UDT value may omit trailing fields (v5 spec section 6)
                values.append(None)
                continue
            cell, off = _read_cell(raw, off)
            values.append(deserialize(sub, cell))
        return tuple(values) if code == TUPLE else dict(zip(t.field_names, values))
    return raw


def _read_count(raw: bytes, off: int) -> tuple[int, int]:
    if off + 4 > len(raw):
        raise ValueError("truncated collection")
    n = INT.unpack_from(raw, off)[0]
    if n < 0 or n * 4 > len(raw) - off - 4:
        raise ValueError(f"invalid element count {n}")
    return n, off + 4


def _read_cell(raw: bytes, off: int) -> tuple[bytes | None, int]:
    if off + 4 > len(raw):
        raise ValueError("truncated collection element")
    n = INT.unpack_from(raw, off)[0]
    off += 4
    if n < 0:
        return None, off
    if off + n > len(raw):
        raise ValueError("truncated collection element")
    return raw[off:off + n], off + n
