"""The CQL primitives as zdm reads and writes them, plus the writers only tests need (the
node's side of the protocol, which zdm never encodes): one module for the tests to import."""

from __future__ import annotations

import ipaddress
import uuid
from typing import Mapping

from zdm.cql.primitives import *  # noqa: F403 - the codec itself; below, the test-only writers
from zdm.cql.primitives import BYTE, INT, LONG, SHORT, Buf, IPAddress, _take, write_bytes, write_string

def read_uuid(buf: Buf, offset: int) -> tuple[uuid.UUID, int]:
    raw, offset = _take(buf, offset, 16, "[uuid]")
    return uuid.UUID(bytes=raw), offset


def write_byte(n: int) -> bytes:
    return BYTE.pack(n)


def write_short(n: int) -> bytes:
    return SHORT.pack(n)


def write_int(n: int) -> bytes:
    return INT.pack(n)


def write_long(n: int) -> bytes:
    return LONG.pack(n)


def write_bytes_map(m: Mapping[str, bytes | None]) -> bytes:
    return SHORT.pack(len(m)) + b"".join(write_string(k) + write_bytes(v) for k, v in m.items())


def write_inet(address: str | IPAddress, port: int) -> bytes:
    raw = ipaddress.ip_address(address).packed
    return BYTE.pack(len(raw)) + raw + INT.pack(port)


def write_uuid(u: uuid.UUID) -> bytes:
    return u.bytes
