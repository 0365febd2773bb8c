"""Builders of the CQL messages a node sends, for tests that play the node."""

from __future__ import annotations

from zdm.cql import messages as m
from tests.support import primitives as p
from zdm.cql.constants import GLOBAL_TABLES_SPEC, NO_METADATA, ErrorCode, Opcode, ResultKind
from zdm.cql.frame import Frame
from zdm.cql.types import parse_type, write_option


def prepared_result(version: int, prepared_id: bytes, *, metadata_id: bytes = b"\x22" * 16,
                    binds: tuple[str, ...] = (), columns: tuple[tuple[str, str], ...] = (),
                    keyspace: str = "ks", table: str = "t", pk_indexes: tuple[int, ...] = ()) -> bytes:
    """A RESULT Prepared body (section 4.2.5.4): bind markers ``binds`` (ints), result
    ``columns`` as (name, cql type) pairs, ``pk_indexes`` the markers of the partition key."""
    out = p.write_int(ResultKind.PREPARED) + p.write_short_bytes(prepared_id)
    if version >= 5:
        out += p.write_short_bytes(metadata_id)
    out += p.write_int(GLOBAL_TABLES_SPEC) + p.write_int(len(binds))
    if version >= 4:
        out += p.write_int(len(pk_indexes)) + b"".join(p.write_short(i) for i in pk_indexes)
    out += p.write_string(keyspace) + p.write_string(table)
    for name in binds:
        out += p.write_string(name) + write_option(parse_type("int"))
    if not columns:
        return out + p.write_int(NO_METADATA) + p.write_int(0)
    out += p.write_int(GLOBAL_TABLES_SPEC) + p.write_int(len(columns))
    out += p.write_string(keyspace) + p.write_string(table)
    for name, cql_type in columns:
        out += p.write_string(name) + write_option(parse_type(cql_type))
    return out


def response(request: Frame, opcode: int, body: bytes) -> Frame:
    return Frame(request.version, True, 0, request.stream, opcode, body)


def void(request: Frame) -> Frame:
    return response(request, Opcode.RESULT, m.encode_void_result())


def error(request: Frame, code: int, message: str, **kw) -> Frame:
    return response(request, Opcode.ERROR, m.encode_error(code, message, **kw))


def unprepared(request: Frame, prepared_id: bytes) -> Frame:
    return error(request, ErrorCode.UNPREPARED, "Prepared query with ID not found",
                 unprepared_id=prepared_id)
