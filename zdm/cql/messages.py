"""Decoders and encoders for the message bodies the proxy routes on.

Theory of operation: frames keep their bodies as raw bytes and this module
decodes only the fields routing needs.  Rewrites (prepared ids, the default
timestamp) walk the body to find byte offsets and splice: everything they do
not change is copied through untouched, so unknown trailing fields and values
survive byte for byte.

Layouts differ by version (v5 spec sections 4.1.4 to 4.1.7, and "Changes from
v4"): query flags are a [byte] in v3/v4 and an [int] in v5; v5 adds
<result_metadata_id> to EXECUTE and Prepared results, PREPARE flags and the
WITH_KEYSPACE / WITH_NOW_IN_SECONDS parameters.

Body prefixes (v5 spec section 4): when the frame header has CUSTOM_PAYLOAD
set, a request body starts with a [bytes map]; a response body may start with
a tracing [uuid], a warnings [string list] and a custom payload.  Every
decoder therefore takes the frame's ``flags`` keyword (default 0) and skips
them; splices keep them.

Every decoder raises :class:`ProtocolError` on a malformed body.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from zdm.cql.constants import (CUSTOM_PAYLOAD, GLOBAL_TABLES_SPEC, HAS_MORE_PAGES,
                               METADATA_CHANGED, NO_METADATA, PAGE_SIZE, PREPARE_WITH_KEYSPACE,
                               TRACING, VALUES, WARNING, WITH_DEFAULT_TIMESTAMP, WITH_KEYSPACE,
                               WITH_NAMES_FOR_VALUES, WITH_NOW_IN_SECONDS, WITH_PAGING_STATE,
                               WITH_SERIAL_CONSISTENCY, BatchType, Consistency, ErrorCode, Opcode,
                               ResultKind)
from zdm.cql.errors import ProtocolError
from zdm.cql.primitives import (BYTE, INT, LONG, SHORT, UNSET, read_byte, read_bytes,
                                read_bytes_map, read_inet, read_int, read_long, read_long_string,
                                read_short, read_short_bytes, read_string, read_string_list,
                                read_string_map, read_string_multimap, read_value, skip_bytes,
                                skip_string,
                                write_bytes, write_long_string, write_short_bytes, write_string,
                                write_string_list, write_string_map, write_string_multimap,
                                write_value)
from zdm.cql.types import CqlType, deserialize, parse_type, read_option, serialize, write_option

__all__ = [
    "CqlType", "deserialize", "serialize", "parse_type",
    "ErrorInfo", "QueryInfo", "PrepareInfo", "ExecuteInfo", "BatchChild", "BatchInfo",
    "PreparedResult", "ColumnSpec", "RowsResult", "EventInfo",
    "request_body_offset", "response_body_offset",
    "decode_startup", "encode_startup", "decode_supported", "encode_supported",
    "decode_authenticate", "encode_authenticate", "decode_auth_token", "encode_auth_token",
    "plain_sasl_token", "parse_plain_sasl_token", "decode_error", "encode_error",
    "decode_query", "decode_prepare", "decode_execute", "execute_query_flags", "replace_execute_id",
    "decode_batch", "replace_query", "rebuild_execute", "rebuild_batch",
    "replace_batch_ids", "add_default_timestamp", "request_timestamp", "result_kind",
    "decode_prepared_result",
    "PreparedMetadata", "decode_prepared_metadata", "execute_values", "query_values",
    "replace_prepared_result_id",
    "decode_set_keyspace",
    "decode_schema_change", "decode_rows",
    "encode_rows", "encode_void_result", "encode_set_keyspace", "decode_event",
    "decode_register", "encode_register", "encode_query", "encode_prepare", "encode_execute",
]


def _decoder(fn):
    """Turn any slip of a decoder on malformed input into a ProtocolError."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ProtocolError:
            raise
        except (ValueError, IndexError, OverflowError, RecursionError) as exc:
            what = fn.__name__.lstrip("_").removeprefix("decode_")
            raise ProtocolError(f"malformed {what} body: "
                                f"{exc}") from None

    return wrapper


def _flags_struct(version: int):
    # v5 spec section 4.1.4: <flags> is an [int]; v4 spec section 4.1.4: a [byte].
    return INT if version >= 5 else BYTE


def request_body_offset(body: bytes, flags: int) -> int:
    """Where the message starts in a request body (after a custom payload)."""
    if flags & CUSTOM_PAYLOAD:
        return read_bytes_map(body, 0)[1]
    return 0


def response_body_offset(body: bytes, flags: int) -> int:
    """Where the message starts in a response body (v5 spec section 4)."""
    offset = 0
    if flags & TRACING:
        offset = 16
        if offset > len(body):
            raise ProtocolError("truncated tracing id")
    if flags & WARNING:
        offset = read_string_list(body, offset)[1]
    if flags & CUSTOM_PAYLOAD:
        offset = read_bytes_map(body, offset)[1]
    return offset


def _enum(enum, value):
    try:
        return enum(value)
    except ValueError:
        return value


# --- STARTUP, OPTIONS, REGISTER, authentication ------------------------------

@_decoder
def decode_startup(body: bytes) -> dict[str, str]:
    return read_string_map(body, 0)[0]


def encode_startup(options: Mapping[str, str]) -> bytes:
    return write_string_map(options)


@_decoder
def decode_supported(body: bytes) -> dict[str, list[str]]:
    return read_string_multimap(body, 0)[0]


def encode_supported(multimap: Mapping[str, Iterable[str]]) -> bytes:
    return write_string_multimap(multimap)


@_decoder
def decode_register(body: bytes) -> list[str]:
    return read_string_list(body, 0)[0]


def encode_register(event_types: Iterable[str]) -> bytes:
    return write_string_list(event_types)


@_decoder
def decode_authenticate(body: bytes) -> str:
    return read_string(body, 0)[0]


def encode_authenticate(authenticator_class: str) -> bytes:
    return write_string(authenticator_class)


@_decoder
def decode_auth_token(body: bytes) -> bytes | None:
    """The [bytes] token of AUTH_RESPONSE, AUTH_CHALLENGE or AUTH_SUCCESS."""
    return read_bytes(body, 0)[0]


def encode_auth_token(token: bytes | None) -> bytes:
    return write_bytes(token)


def plain_sasl_token(user: str, password: str) -> bytes:
    """SASL PLAIN initial response (RFC 4616) as drivers send it: empty authzid."""
    return b"\x00" + user.encode("utf-8") + b"\x00" + password.encode("utf-8")


def parse_plain_sasl_token(token: bytes | None) -> tuple[str, str]:
    parts = (token or b"").split(b"\x00", 2)
    if len(parts) != 3:
        raise ProtocolError("malformed SASL PLAIN token", code=ErrorCode.BAD_CREDENTIALS)
    try:
        return parts[1].decode("utf-8"), parts[2].decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("SASL PLAIN token is not valid UTF-8",
                            code=ErrorCode.BAD_CREDENTIALS) from None


# --- ERROR (v5 spec sections 4.2.1 and 8) --------------------------------------

class ErrorInfo(NamedTuple):
    code: ErrorCode | int
    message: str
    unprepared_id: bytes | None = None


# Codes whose body is just <code><message> (v5 spec section 8).
_PLAIN_ERRORS = frozenset({
    ErrorCode.SERVER_ERROR, ErrorCode.PROTOCOL_ERROR, ErrorCode.BAD_CREDENTIALS,
    ErrorCode.OVERLOADED, ErrorCode.IS_BOOTSTRAPPING, ErrorCode.TRUNCATE_ERROR,
    ErrorCode.SYNTAX_ERROR, ErrorCode.UNAUTHORIZED, ErrorCode.INVALID, ErrorCode.CONFIG_ERROR,
})


@_decoder
def decode_error(body: bytes, *, flags: int = 0) -> ErrorInfo:
    offset = response_body_offset(body, flags)
    code, offset = read_int(body, offset)
    message, offset = read_string(body, offset)
    unprepared_id = None
    if code == ErrorCode.UNPREPARED:
        unprepared_id, offset = read_short_bytes(body, offset)
    return ErrorInfo(_enum(ErrorCode, code), message, unprepared_id)


def encode_error(code: int, message: str, *, unprepared_id: bytes | None = None) -> bytes:
    """An ERROR body; only codes without extra fields, plus UNPREPARED."""
    head = INT.pack(code) + write_string(message)
    if code == ErrorCode.UNPREPARED:
        if unprepared_id is None:
            raise ValueError("an UNPREPARED error needs the unprepared_id")
        return head + write_short_bytes(unprepared_id)
    if code not in _PLAIN_ERRORS:
        raise ValueError(f"cannot encode error code {code:#06x}: it carries extra fields")
    return head


# --- query parameters (v5 spec section 4.1.4) ----------------------------------

class _Params(NamedTuple):
    consistency: int
    flags: int
    flags_at: int        # offset of <flags>
    timestamp_at: int    # offset where <timestamp> is, or would be inserted
    timestamp: int | None
    keyspace: str | None
    end: int


def _parse_params(body: bytes, offset: int, version: int, *, batch: bool = False) -> _Params:
    consistency, offset = read_short(body, offset)
    flags_at = offset
    if version >= 5:
        flags, offset = read_int(body, offset)
    else:
        flags, offset = read_byte(body, offset)
    if not batch:  # BATCH has no values/paging in its parameters (section 4.1.7)
        if flags & VALUES:
            n, offset = read_short(body, offset)
            named = flags & WITH_NAMES_FOR_VALUES
            for _ in range(n):
                if named:
                    offset = skip_string(body, offset)
                offset = skip_bytes(body, offset)
        if flags & PAGE_SIZE:
            offset = read_int(body, offset)[1]
        if flags & WITH_PAGING_STATE:
            offset = skip_bytes(body, offset)
    if flags & WITH_SERIAL_CONSISTENCY:
        offset = read_short(body, offset)[1]
    timestamp_at = offset
    timestamp = None
    if flags & WITH_DEFAULT_TIMESTAMP:
        timestamp, offset = read_long(body, offset)
    keyspace = None
    if version >= 5:
        if flags & WITH_KEYSPACE:
            keyspace, offset = read_string(body, offset)
        if flags & WITH_NOW_IN_SECONDS:
            offset = read_int(body, offset)[1]
    return _Params(consistency, flags, flags_at, timestamp_at, timestamp, keyspace, offset)


# --- QUERY, PREPARE, EXECUTE, BATCH ---------------------------------------------

class QueryInfo(NamedTuple):
    query: str
    consistency: Consistency | int
    flags: int
    keyspace: str | None
    has_timestamp: bool
    timestamp: int | None = None


@_decoder
def decode_query(body: bytes, version: int, *, flags: int = 0) -> QueryInfo:
    query, offset = read_long_string(body, request_body_offset(body, flags))
    p = _parse_params(body, offset, version)
    return QueryInfo(query, _enum(Consistency, p.consistency), p.flags, p.keyspace,
                     p.timestamp is not None, p.timestamp)


@_decoder
def query_values(body: bytes, version: int, *, flags: int = 0) -> list[bytes | None]:
    """The values a QUERY binds to its ``?`` markers, in order."""
    query_len, offset = read_int(body, request_body_offset(body, flags))
    return _values(body, offset + max(query_len, 0), version)


def _values(body: bytes, offset: int, version: int) -> list[bytes | None]:
    offset = read_short(body, offset)[1]  # <consistency>
    query_flags, offset = (read_int if version >= 5 else read_byte)(body, offset)
    values: list = []
    if query_flags & VALUES:
        n, offset = read_short(body, offset)
        for _ in range(n):
            if query_flags & WITH_NAMES_FOR_VALUES:
                offset = skip_string(body, offset)
            value, offset = read_value(body, offset)  # UNSET stays UNSET: it is no null
            values.append(value)
    return values


@_decoder
def replace_query(body: bytes, query: str, *, flags: int = 0) -> bytes:
    """QUERY ``body`` with another query text; its parameters are kept byte for byte."""
    start = request_body_offset(body, flags)
    length, offset = read_int(body, start)
    view = memoryview(body)
    return b"".join((view[:start], write_long_string(query), view[offset + max(length, 0):]))


class PrepareInfo(NamedTuple):
    query: str
    keyspace: str | None


@_decoder
def decode_prepare(body: bytes, version: int, *, flags: int = 0) -> PrepareInfo:
    query, offset = read_long_string(body, request_body_offset(body, flags))
    keyspace = None
    if version >= 5:  # v5 spec section 4.1.5: <query><flags>[<keyspace>]
        prepare_flags, offset = read_int(body, offset)
        if prepare_flags & PREPARE_WITH_KEYSPACE:
            keyspace, offset = read_string(body, offset)
    return PrepareInfo(query, keyspace)


class ExecuteInfo(NamedTuple):
    prepared_id: bytes
    result_metadata_id: bytes | None
    params_offset: int
    has_timestamp: bool
    consistency: Consistency | int = Consistency.ONE
    flags: int = 0


def _execute_ids(body: bytes, version: int, flags: int) -> tuple[int, bytes, bytes | None, int]:
    start = request_body_offset(body, flags)
    prepared_id, offset = read_short_bytes(body, start)
    result_metadata_id = None
    if version >= 5:  # v5 spec section 4.1.6: <id><result_metadata_id><query_parameters>
        result_metadata_id, offset = read_short_bytes(body, offset)
    return start, prepared_id, result_metadata_id, offset


@_decoder
def decode_execute(body: bytes, version: int, *, flags: int = 0) -> ExecuteInfo:
    _, prepared_id, result_metadata_id, offset = _execute_ids(body, version, flags)
    p = _parse_params(body, offset, version)
    return ExecuteInfo(prepared_id, result_metadata_id, offset, p.timestamp is not None,
                       _enum(Consistency, p.consistency), p.flags)


@_decoder
def execute_query_flags(body: bytes, version: int, *, flags: int = 0) -> int:
    """The <flags> of an EXECUTE's query parameters, read without walking its values."""
    offset = read_short(body, _execute_ids(body, version, flags)[3])[1]  # past <consistency>
    return (read_int if version >= 5 else read_byte)(body, offset)[0]


@_decoder
def rebuild_execute(body: bytes, version: int, prepared_id: bytes, result_metadata_id: bytes | None,
                    values: list[bytes | None], *, flags: int = 0) -> bytes:
    """EXECUTE ``body`` for another prepared id, binding ``values`` (positional) instead of the
    client's; consistency and every later parameter are kept byte for byte."""
    start, _, old_metadata_id, offset = _execute_ids(body, version, flags)
    params_at = offset
    offset = read_short(body, offset)[1]
    fmt = _flags_struct(version)
    query_flags, offset = (read_int if version >= 5 else read_byte)(body, offset)
    if query_flags & WITH_NAMES_FOR_VALUES:
        raise ProtocolError("named values cannot be rewritten; bind them by position")
    if query_flags & VALUES:
        n, offset = read_short(body, offset)
        for _ in range(n):
            offset = skip_bytes(body, offset)
    view = memoryview(body)
    parts = [view[:start], write_short_bytes(prepared_id)]
    if version >= 5:
        parts.append(write_short_bytes(result_metadata_id if result_metadata_id is not None
                                       else old_metadata_id))
    parts += [view[params_at:params_at + 2], fmt.pack(query_flags | VALUES),
              SHORT.pack(len(values)), b"".join(write_value(v) for v in values), view[offset:]]
    return b"".join(parts)


@_decoder
def replace_execute_id(body: bytes, version: int, prepared_id: bytes,
                       result_metadata_id: bytes | None = None, *, flags: int = 0) -> bytes:
    """EXECUTE ``body`` with another prepared id (and, v5, result metadata id)."""
    start, _, old_metadata_id, params_at = _execute_ids(body, version, flags)
    view = memoryview(body)
    parts = [view[:start], write_short_bytes(prepared_id)]
    if version >= 5:
        parts.append(write_short_bytes(old_metadata_id if result_metadata_id is None
                                       else result_metadata_id))
    parts.append(view[params_at:])
    return b"".join(parts)


class BatchChild(NamedTuple):
    kind: int                    # 0: query string, 1: prepared id
    query: str | None
    prepared_id: bytes | None
    values: tuple[bytes | None, ...] = ()  # decoded by decode_batch only


class BatchInfo(NamedTuple):
    batch_type: BatchType | int
    children: list[BatchChild]
    has_timestamp: bool
    consistency: Consistency | int = Consistency.ONE
    flags: int = 0
    keyspace: str | None = None


def _walk_batch(body: bytes, offset: int, decode_queries: bool):
    """Children of a BATCH (v5 spec section 4.1.7) and the offset after them.

    Yields (child, id_start, id_end) where the id span is set for prepared children.
    Values are skipped; named values in batches cannot be parsed (CASSANDRA-10246)
    and Cassandra itself never reads names there.
    """
    batch_type, offset = read_byte(body, offset)
    n, offset = read_short(body, offset)
    children = []
    for _ in range(n):
        kind, offset = read_byte(body, offset)
        if kind == 0:
            if decode_queries:
                query, offset = read_long_string(body, offset)
            else:
                length, offset = read_int(body, offset)
                if length < 0 or offset + length > len(body):
                    raise ProtocolError("truncated batch query string")
                query, offset = None, offset + length
            children.append((BatchChild(0, query, None), 0, 0))
        elif kind == 1:
            id_start = offset
            prepared_id, offset = read_short_bytes(body, offset)
            children.append((BatchChild(1, None, prepared_id), id_start, offset))
        else:
            raise ProtocolError(f"invalid batch child kind {kind}")
        count, offset = read_short(body, offset)
        if decode_queries:
            values = []
            for _ in range(count):
                value, offset = read_value(body, offset)  # UNSET stays UNSET: it is no null
                values.append(value)
            child, id_start, id_end = children[-1]
            children[-1] = (child._replace(values=tuple(values)), id_start, id_end)
        else:
            for _ in range(count):
                offset = skip_bytes(body, offset)
    return batch_type, children, offset


@_decoder
def decode_batch(body: bytes, version: int, *, flags: int = 0) -> BatchInfo:
    batch_type, children, offset = _walk_batch(body, request_body_offset(body, flags), True)
    p = _parse_params(body, offset, version, batch=True)
    return BatchInfo(_enum(BatchType, batch_type), [c for c, _, _ in children],
                     p.timestamp is not None, _enum(Consistency, p.consistency), p.flags,
                     p.keyspace)


@_decoder
def rebuild_batch(body: bytes, version: int, children: list[BatchChild], *, flags: int = 0) -> bytes:
    """BATCH ``body`` with other children (their queries or ids, and values); the batch type
    and the parameters are kept byte for byte."""
    start = request_body_offset(body, flags)
    end = _walk_batch(body, start, False)[2]
    out = [body[:start], body[start:start + 1], SHORT.pack(len(children))]
    for child in children:
        if child.kind == 0:
            out.append(b"\x00" + write_long_string(child.query))
        else:
            out.append(b"\x01" + write_short_bytes(child.prepared_id))
        out.append(SHORT.pack(len(child.values)) + b"".join(write_value(v) for v in child.values))
    out.append(body[end:])
    return b"".join(out)


@_decoder
def replace_batch_ids(body: bytes, version: int, mapping: Mapping[bytes, bytes], *,
                      flags: int = 0) -> bytes:
    """BATCH ``body`` with the ids of prepared children replaced per ``mapping``."""
    _, children, _ = _walk_batch(body, request_body_offset(body, flags), False)
    view = memoryview(body)
    parts, last = [], 0
    for child, id_start, id_end in children:
        if child.kind == 1 and child.prepared_id in mapping:
            parts.append(view[last:id_start])
            parts.append(write_short_bytes(mapping[child.prepared_id]))
            last = id_end
    if not parts:
        return body
    parts.append(view[last:])
    return b"".join(parts)


def add_default_timestamp(opcode: int, body: bytes, version: int, timestamp_us: int, *,
                          flags: int = 0) -> bytes:
    """QUERY/EXECUTE/BATCH ``body`` with WITH_DEFAULT_TIMESTAMP set to ``timestamp_us``.

    The [long] goes where section 4.1.4 puts <timestamp>: after
    <serial_consistency>, before the v5 <keyspace> and <now_in_seconds>.
    A body that already has a default timestamp is returned unchanged.
    """
    if opcode not in (Opcode.QUERY, Opcode.EXECUTE, Opcode.BATCH):
        raise ValueError(f"opcode {opcode!r} carries no query parameters")
    return _add_default_timestamp(opcode, body, version, timestamp_us, flags)


def _params_of(opcode: int, body: bytes, version: int, flags: int) -> _Params:
    """The query parameters of a QUERY, EXECUTE or BATCH body."""
    start = request_body_offset(body, flags)
    if opcode == Opcode.QUERY:
        length, offset = read_int(body, start)
        return _parse_params(body, offset + max(length, 0), version)
    if opcode == Opcode.EXECUTE:
        return _parse_params(body, _execute_ids(body, version, flags)[3], version)
    return _parse_params(body, _walk_batch(body, start, False)[2], version, batch=True)


@_decoder
def request_timestamp(opcode: int, body: bytes, version: int, *, flags: int = 0) -> int | None:
    """The default timestamp (microseconds) a QUERY, EXECUTE or BATCH carries, or None."""
    return _params_of(opcode, body, version, flags).timestamp


@_decoder
def _add_default_timestamp(opcode: int, body: bytes, version: int, timestamp_us: int,
                           flags: int) -> bytes:
    p = _params_of(opcode, body, version, flags)
    if p.timestamp is not None:
        return body
    fmt = _flags_struct(version)
    view = memoryview(body)
    return b"".join((view[:p.flags_at], fmt.pack(p.flags | WITH_DEFAULT_TIMESTAMP),
                     view[p.flags_at + fmt.size:p.timestamp_at], LONG.pack(timestamp_us),
                     view[p.timestamp_at:]))


# --- RESULT (v5 spec section 4.2.5) ---------------------------------------------

def _result_start(body: bytes, flags: int, expected: ResultKind | None = None) -> tuple[int, int]:
    kind, offset = read_int(body, response_body_offset(body, flags))
    if expected is not None and kind != expected:
        raise ProtocolError(f"expected a {expected.name} result, got kind {kind}")
    return kind, offset


@_decoder
def result_kind(body: bytes, *, flags: int = 0) -> ResultKind | int:
    return _enum(ResultKind, _result_start(body, flags)[0])


class PreparedResult(NamedTuple):
    prepared_id: bytes
    result_metadata_id: bytes | None


@_decoder
def decode_prepared_result(body: bytes, version: int, *, flags: int = 0) -> PreparedResult:
    _, offset = _result_start(body, flags, ResultKind.PREPARED)
    prepared_id, offset = read_short_bytes(body, offset)
    result_metadata_id = None
    if version >= 5:  # section 4.2.5.4: <id><result_metadata_id><metadata><result_metadata>
        result_metadata_id, offset = read_short_bytes(body, offset)
    return PreparedResult(prepared_id, result_metadata_id)


@_decoder
def replace_prepared_result_id(body: bytes, version: int, prepared_id: bytes, *,
                               flags: int = 0) -> bytes:
    _, start = _result_start(body, flags, ResultKind.PREPARED)
    end = read_short_bytes(body, start)[1]
    view = memoryview(body)
    return b"".join((view[:start], write_short_bytes(prepared_id), view[end:]))


@_decoder
def decode_set_keyspace(body: bytes, *, flags: int = 0) -> str:
    _, offset = _result_start(body, flags, ResultKind.SET_KEYSPACE)
    return read_string(body, offset)[0]


def encode_void_result() -> bytes:
    return INT.pack(ResultKind.VOID)


def encode_set_keyspace(keyspace: str) -> bytes:
    return INT.pack(ResultKind.SET_KEYSPACE) + write_string(keyspace)


class ColumnSpec(NamedTuple):
    keyspace: str
    table: str
    name: str
    type: CqlType


class RowsResult(NamedTuple):
    columns: list[ColumnSpec]    # empty when the server sent NO_METADATA
    rows: list[list[bytes | None]]
    paging_state: bytes | None
    new_metadata_id: bytes | None = None


@_decoder
def decode_rows(body: bytes, version: int, *, flags: int = 0) -> RowsResult:
    _, offset = _result_start(body, flags, ResultKind.ROWS)
    meta_flags, offset = read_int(body, offset)
    column_count, offset = read_int(body, offset)
    if column_count < 0:
        raise ProtocolError(f"negative column count {column_count}")
    paging_state = new_metadata_id = None
    if meta_flags & HAS_MORE_PAGES:
        paging_state, offset = read_bytes(body, offset)
    if version >= 5 and meta_flags & METADATA_CHANGED:
        new_metadata_id, offset = read_short_bytes(body, offset)
    columns: list[ColumnSpec] = []
    if not meta_flags & NO_METADATA:
        columns, offset = _read_column_specs(body, offset, meta_flags, column_count)
    row_count, offset = read_int(body, offset)
    # Each cell is at least a 4-byte length: that bounds the work a bogus count can cause.
    if (row_count < 0 or row_count * column_count * 4 > len(body) - offset
            or (column_count == 0 and row_count > 65536)):
        raise ProtocolError(f"row count {row_count} does not fit in the body")
    rows = []
    for _ in range(row_count):
        row = []
        for _ in range(column_count):
            cell, offset = read_bytes(body, offset)
            row.append(cell)
        rows.append(row)
    return RowsResult(columns, rows, paging_state, new_metadata_id)


def _read_column_specs(body: bytes, offset: int, meta_flags: int,
                       count: int) -> tuple[list[ColumnSpec], int]:
    """<global_table_spec>?<col_spec_1>...<col_spec_n> (section 4.2.5.2)."""
    columns = []
    if meta_flags & GLOBAL_TABLES_SPEC:
        keyspace, offset = read_string(body, offset)
        table, offset = read_string(body, offset)
    for _ in range(count):
        if not meta_flags & GLOBAL_TABLES_SPEC:
            keyspace, offset = read_string(body, offset)
            table, offset = read_string(body, offset)
        name, offset = read_string(body, offset)
        cql_type, offset = read_option(body, offset)
        columns.append(ColumnSpec(keyspace, table, name, cql_type))
    return columns, offset


class PreparedMetadata(NamedTuple):
    binds: list[ColumnSpec]      # the bind markers, in order
    pk_indexes: list[int]        # which markers are the partition key's components (v4+)
    columns: list[ColumnSpec]    # the result columns; empty for statements that return none


@_decoder
def decode_prepared_metadata(body: bytes, version: int, *, flags: int = 0) -> PreparedMetadata:
    """The metadata of a Prepared result (section 4.2.5.4).

    Layout: <id>[<result_metadata_id> v5]<metadata><result_metadata>, where <metadata>
    describes the bind markers (v4+ with <pk_count><pk_index...>) and <result_metadata>
    is a Rows metadata (NO_METADATA for statements that return nothing).
    """
    _, offset = _result_start(body, flags, ResultKind.PREPARED)
    offset = read_short_bytes(body, offset)[1]
    if version >= 5:
        offset = read_short_bytes(body, offset)[1]
    meta_flags, offset = read_int(body, offset)
    bind_count, offset = read_int(body, offset)
    pk_indexes = []
    if version >= 4:
        pk_count, offset = read_int(body, offset)
        for _ in range(pk_count):
            index, offset = read_short(body, offset)
            pk_indexes.append(index)
    binds, offset = _read_column_specs(body, offset, meta_flags, bind_count)
    meta_flags, offset = read_int(body, offset)
    column_count, offset = read_int(body, offset)
    if meta_flags & NO_METADATA:
        return PreparedMetadata(binds, pk_indexes, [])
    if meta_flags & HAS_MORE_PAGES:
        offset = read_bytes(body, offset)[1]
    return PreparedMetadata(binds, pk_indexes, _read_column_specs(body, offset, meta_flags, column_count)[0])


@_decoder
def execute_leading_values(body: bytes, version: int, count: int, *, flags: int = 0) -> list | None:
    """The first ``count`` values an EXECUTE binds by position, read no further (what
    token-aware routing needs of every request, so it reads the bytes in place); None when
    it binds them by name, or fewer; raises ProtocolError on a body too short for them."""
    try:
        offset = request_body_offset(body, flags)
        offset += 2 + int.from_bytes(body[offset:offset + 2], "big")  # <id>
        if version >= 5:
            offset += 2 + int.from_bytes(body[offset:offset + 2], "big")  # <result_metadata_id>
            query_flags = int.from_bytes(body[offset + 2:offset + 6], "big")  # past <consistency>
            offset += 6
        else:
            query_flags = body[offset + 2]
            offset += 3
        if not query_flags & VALUES or query_flags & WITH_NAMES_FOR_VALUES:
            return None
        n = int.from_bytes(body[offset:offset + 2], "big")
        offset += 2
        if n < count:
            return None
        values: list = []
        for _ in range(count):
            length = int.from_bytes(body[offset:offset + 4], "big", signed=True)
            offset += 4
            if length >= 0:
                values.append(body[offset:offset + length])
                offset += length
            else:
                values.append(None if length == -1 else UNSET)
        if offset > len(body):
            raise ProtocolError("malformed execute body: it ends inside its values")
        return values
    except IndexError:
        raise ProtocolError("malformed execute body: too short") from None


def execute_values(body: bytes, version: int, *, flags: int = 0) -> list[bytes | None]:
    """The bound values of an EXECUTE, in marker order (unset values read as None)."""
    return _values(body, _execute_ids(body, version, flags)[3], version)


def encode_rows(columns: list[tuple[str, str, str, CqlType]], rows: list[list], *,
                no_metadata: bool = False) -> bytes:
    """A RESULT Rows body (section 4.2.5.2) from Python values; ``no_metadata`` leaves the
    column specs out, as a node does for an EXECUTE that asked to skip them."""
    tables = {(ks, table) for ks, table, _, _ in columns}
    global_spec = len(tables) == 1
    if no_metadata:
        out = [INT.pack(ResultKind.ROWS), INT.pack(NO_METADATA), INT.pack(len(columns))]
    else:
        out = [INT.pack(ResultKind.ROWS), INT.pack(GLOBAL_TABLES_SPEC if global_spec else 0),
               INT.pack(len(columns))]
        if global_spec:
            ks, table = next(iter(tables))
            out.append(write_string(ks) + write_string(table))
        for ks, table, name, cql_type in columns:
            if not global_spec:
                out.append(write_string(ks) + write_string(table))
            out.append(write_string(name) + write_option(cql_type))
    out.append(INT.pack(len(rows)))
    for row in rows:
        if len(row) != len(columns):
            raise ValueError(f"row has {len(row)} values for {len(columns)} columns")
        out.extend(write_bytes(serialize(col[3], value)) for col, value in zip(columns, row))
    return b"".join(out)


# --- EVENT and Schema_change (sections 4.2.6, 4.2.5.5) ----------------------------

class EventInfo(NamedTuple):
    event_type: str              # TOPOLOGY_CHANGE, STATUS_CHANGE, SCHEMA_CHANGE
    change: str                  # NEW_NODE, UP, CREATED, ...
    address: tuple | None = None  # (ip_address, port) for topology/status events
    target: str | None = None    # KEYSPACE, TABLE, TYPE, FUNCTION, AGGREGATE
    keyspace: str | None = None
    name: str | None = None
    arguments: list[str] | None = None


def _schema_change(body: bytes, offset: int, event_type: str) -> EventInfo:
    change, offset = read_string(body, offset)
    target, offset = read_string(body, offset)
    keyspace, offset = read_string(body, offset)
    name = arguments = None
    if target != "KEYSPACE":
        name, offset = read_string(body, offset)
        if target in ("FUNCTION", "AGGREGATE"):
            arguments, offset = read_string_list(body, offset)
    return EventInfo(event_type, change, None, target, keyspace, name, arguments)


@_decoder
def decode_event(body: bytes, *, flags: int = 0) -> EventInfo:
    event_type, offset = read_string(body, response_body_offset(body, flags))
    if event_type == "SCHEMA_CHANGE":
        return _schema_change(body, offset, event_type)
    change, offset = read_string(body, offset)
    address, offset = read_inet(body, offset)
    return EventInfo(event_type, change, address)


@_decoder
def decode_schema_change(body: bytes, *, flags: int = 0) -> EventInfo:
    _, offset = _result_start(body, flags, ResultKind.SCHEMA_CHANGE)
    return _schema_change(body, offset, "SCHEMA_CHANGE")


# --- requests the proxy issues itself ------------------------------------------

def _encode_params(version: int, consistency: int, values, page_size, paging_state,
                   timestamp, keyspace, *, skip_metadata: bool = False) -> bytes:
    flags = 0
    tail = []
    if values is not None:
        flags |= VALUES
        tail.append(SHORT.pack(len(values)) + b"".join(write_value(v) for v in values))
    if skip_metadata:
        flags |= 0x02
    if page_size is not None:
        flags |= PAGE_SIZE
        tail.append(INT.pack(page_size))
    if paging_state is not None:
        flags |= WITH_PAGING_STATE
        tail.append(write_bytes(paging_state))
    if timestamp is not None:
        flags |= WITH_DEFAULT_TIMESTAMP
        tail.append(LONG.pack(timestamp))
    if keyspace is not None:
        if version < 5:
            raise ValueError("a per-query keyspace needs protocol v5")
        flags |= WITH_KEYSPACE
        tail.append(write_string(keyspace))
    return SHORT.pack(consistency) + _flags_struct(version).pack(flags) + b"".join(tail)


def encode_query(query: str, consistency: int = Consistency.ONE, version: int = 4, *,
                 page_size: int | None = None, values: list | None = None,
                 paging_state: bytes | None = None, timestamp: int | None = None,
                 keyspace: str | None = None) -> bytes:
    return write_long_string(query) + _encode_params(version, consistency, values, page_size,
                                                     paging_state, timestamp, keyspace)


def encode_prepare(query: str, version: int, *, keyspace: str | None = None) -> bytes:
    body = write_long_string(query)
    if version >= 5:
        if keyspace is None:
            return body + INT.pack(0)
        return body + INT.pack(PREPARE_WITH_KEYSPACE) + write_string(keyspace)
    if keyspace is not None:
        raise ValueError("a PREPARE keyspace needs protocol v5")
    return body


def encode_execute(prepared_id: bytes, values: list, version: int,
                   result_metadata_id: bytes | None = None, *,
                   consistency: int = Consistency.ONE, page_size: int | None = None,
                   paging_state: bytes | None = None, timestamp: int | None = None,
                   skip_metadata: bool = False) -> bytes:
    """EXECUTE body; ``values`` are serialized cells (bytes, None or UNSET)."""
    head = write_short_bytes(prepared_id)
    if version >= 5:
        if result_metadata_id is None:
            raise ValueError("protocol v5 EXECUTE needs the result_metadata_id")
        head += write_short_bytes(result_metadata_id)
    return head + _encode_params(version, consistency, values, page_size, paging_state,
                                 timestamp, None, skip_metadata=skip_metadata)


UNSET_VALUE = UNSET
