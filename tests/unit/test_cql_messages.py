"""Message bodies (v5 spec section 4), with the python driver as an independent oracle."""

import ipaddress
import uuid

import pytest
from cassandra import ConsistencyLevel
from cassandra.protocol import (AuthResponseMessage, BatchMessage, ExecuteMessage,
                                PrepareMessage, QueryMessage, RegisterMessage, StartupMessage)
from cassandra.protocol import ProtocolHandler as Driver
from cassandra.query import BatchType as DriverBatchType
from hypothesis import given, settings
from hypothesis import strategies as st

from zdm.cql import messages as m
from tests.support import primitives as p
from zdm.cql.constants import (CUSTOM_PAYLOAD, TRACING, WARNING, WITH_DEFAULT_TIMESTAMP,
                               BatchType, Consistency, ErrorCode, Opcode, ResultKind)
from zdm.cql.errors import ProtocolError
from zdm.cql.types import CqlType, parse_type, read_option, write_option

VERSIONS = [3, 4, 5]


def driver_body(msg, version):
    """The body the python driver sends, and the header flags it set."""
    raw = Driver.encode_message(msg, 0, version, None, False)
    return raw[9:], raw[1]


def query_msg(query, consistency, query_params=None, **kwargs):
    msg = QueryMessage(query, consistency, **kwargs)
    msg.query_params = query_params  # the driver sets bound values after construction
    return msg


def driver_decode(opcode, body, version=4, flags=0):
    return Driver.decode_message(version, {}, 0, flags, opcode, body, None, None)


# --- requests the driver encodes, we decode ------------------------------------------

QUERIES = [
    ("plain", dict(), None),
    ("values-paging-serial", dict(query_params=[b"\x00\x01", None], fetch_size=50,
                                  paging_state=b"\x07" * 9, serial_consistency_level=9), None),
    ("with-timestamp", dict(timestamp=1_700_000_000_000_000), None),
    ("v5-keyspace", dict(keyspace="Ks", serial_consistency_level=8), "Ks"),
]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("kwargs,keyspace", [q[1:] for q in QUERIES], ids=[q[0] for q in QUERIES])
def test_decode_driver_query(version, kwargs, keyspace):
    if keyspace and version < 5:
        pytest.skip("keyspace flag is v5 only")
    body, flags = driver_body(query_msg("SELECT * FROM t", ConsistencyLevel.LOCAL_QUORUM,
                                           **kwargs), version)
    info = m.decode_query(body, version, flags=flags)
    assert info.query == "SELECT * FROM t"
    assert info.consistency is Consistency.LOCAL_QUORUM
    assert info.keyspace == keyspace
    assert info.has_timestamp == ("timestamp" in kwargs)
    assert info.timestamp == kwargs.get("timestamp")


@pytest.mark.parametrize("version", [4, 5])
def test_custom_payload_prefix_is_skipped(version):
    msg = QueryMessage("SELECT 1", ConsistencyLevel.ONE)
    msg.custom_payload = {"k": b"v"}
    body, flags = driver_body(msg, version)
    assert flags & CUSTOM_PAYLOAD
    assert m.decode_query(body, version, flags=flags).query == "SELECT 1"
    stamped = m.add_default_timestamp(Opcode.QUERY, body, version, 42, flags=flags)
    assert m.decode_query(stamped, version, flags=flags).timestamp == 42
    assert stamped.startswith(p.write_bytes_map({"k": b"v"}))


@pytest.mark.parametrize("version", VERSIONS)
def test_decode_driver_prepare(version):
    keyspace = "ks" if version == 5 else None
    body, _ = driver_body(PrepareMessage("SELECT x FROM t WHERE k=?", keyspace=keyspace), version)
    assert m.decode_prepare(body, version) == m.PrepareInfo("SELECT x FROM t WHERE k=?", keyspace)
    assert m.encode_prepare("SELECT x FROM t WHERE k=?", version, keyspace=keyspace) == body


@pytest.mark.parametrize("version", VERSIONS)
def test_decode_driver_execute_and_replace_id(version):
    metadata_id = b"\xaa\xbb" if version >= 5 else None
    msg = ExecuteMessage(b"\x01\x02\x03", [b"v1", None], ConsistencyLevel.QUORUM, fetch_size=10,
                         result_metadata_id=metadata_id)
    body, _ = driver_body(msg, version)
    info = m.decode_execute(body, version)
    assert (info.prepared_id, info.result_metadata_id, info.has_timestamp) == (
        b"\x01\x02\x03", metadata_id, False)
    assert info.consistency is Consistency.QUORUM

    new_metadata = b"\xcc" if version >= 5 else None
    replaced = m.replace_execute_id(body, version, b"\x09" * 16, new_metadata)
    expected, _ = driver_body(ExecuteMessage(b"\x09" * 16, [b"v1", None], ConsistencyLevel.QUORUM,
                                             fetch_size=10, result_metadata_id=new_metadata),
                              version)
    assert replaced == expected
    assert replaced[m.decode_execute(replaced, version).params_offset:] == body[info.params_offset:]
    if version >= 5:  # without a new metadata id the old one is kept
        kept = m.decode_execute(m.replace_execute_id(body, version, b"\x05"), version)
        assert kept.result_metadata_id == metadata_id
    assert m.encode_execute(b"\x01\x02\x03", [b"v1", None], version, metadata_id,
                            consistency=Consistency.QUORUM, page_size=10) == body
    assert m.execute_values(body, version) == [b"v1", None]
    assert m.execute_query_flags(body, version) & 0x04  # PAGE_SIZE


def _batch(version, ids=(b"p1", b"p2"), **kwargs):
    queries = [(False, "INSERT INTO t (a) VALUES (?)", [b"\x00"]), (True, ids[0], [None, b"x"]),
               (False, "UPDATE t SET a = 1 WHERE k = 2", []), (True, ids[1], [b"y"])]
    return BatchMessage(DriverBatchType.UNLOGGED, queries, ConsistencyLevel.TWO, **kwargs)


@pytest.mark.parametrize("version", VERSIONS)
def test_decode_driver_batch_and_replace_ids(version):
    body, _ = driver_body(_batch(version, serial_consistency_level=9), version)
    info = m.decode_batch(body, version)
    assert info.batch_type is BatchType.UNLOGGED
    assert info.children == [
        m.BatchChild(0, "INSERT INTO t (a) VALUES (?)", None, (b"\x00",)),
        m.BatchChild(1, None, b"p1", (None, b"x")),
        m.BatchChild(0, "UPDATE t SET a = 1 WHERE k = 2", None, ()),
        m.BatchChild(1, None, b"p2", (b"y",))]
    assert info.consistency is Consistency.TWO and not info.has_timestamp

    replaced = m.replace_batch_ids(body, version, {b"p2": b"longer-id-2", b"zz": b"unused"})
    expected, _ = driver_body(_batch(version, ids=(b"p1", b"longer-id-2"),
                                     serial_consistency_level=9), version)
    assert replaced == expected
    assert m.replace_batch_ids(body, version, {}) is body


# --- add_default_timestamp: our splice must equal the driver's own encoding ----------

TS = 1_712_345_678_901_234


def _stamp_cases():
    yield "query-plain", Opcode.QUERY, lambda **kw: QueryMessage("SELECT 1", 1, **kw)
    yield "query-everything", Opcode.QUERY, lambda **kw: query_msg(
        "INSERT INTO t (a) VALUES (?)", 1, query_params=[b"\x01"], fetch_size=5,
        paging_state=b"ps", serial_consistency_level=9, **kw)
    yield "execute", Opcode.EXECUTE, lambda **kw: ExecuteMessage(
        b"id", [b"a", None], 1, serial_consistency_level=8, result_metadata_id=b"rm", **kw)
    yield "batch", Opcode.BATCH, lambda **kw: _batch(0, serial_consistency_level=9, **kw)
    yield "batch-no-serial", Opcode.BATCH, lambda **kw: _batch(0, **kw)


STAMP_CASES = list(_stamp_cases())


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("opcode,make", [c[1:] for c in STAMP_CASES],
                         ids=[c[0] for c in STAMP_CASES])
def test_add_default_timestamp_matches_driver_encoding(version, opcode, make):
    without, _ = driver_body(make(), version)
    with_ts, _ = driver_body(make(timestamp=TS), version)
    assert m.add_default_timestamp(opcode, without, version, TS) == with_ts
    assert m.add_default_timestamp(opcode, with_ts, version, TS + 1) is with_ts


@pytest.mark.parametrize("opcode,make", [c[1:] for c in STAMP_CASES],
                         ids=[c[0] for c in STAMP_CASES])
def test_add_default_timestamp_v5_keyspace_stays_after_the_timestamp(opcode, make):
    if opcode == Opcode.EXECUTE:
        pytest.skip("EXECUTE has no keyspace")
    without, _ = driver_body(make(keyspace="ks"), 5)
    with_ts, _ = driver_body(make(keyspace="ks", timestamp=TS), 5)
    assert m.add_default_timestamp(opcode, without, 5, TS) == with_ts


def test_add_default_timestamp_before_now_in_seconds():
    # v5 section 4.1.4: ...[<timestamp>][<keyspace>][<now_in_seconds>]; built by hand,
    # the driver cannot send now_in_seconds.
    head = p.write_long_string("SELECT 1") + p.write_short(1)
    tail = p.write_string("ks") + p.write_int(99)
    body = head + p.write_int(0x180) + tail
    expected = head + p.write_int(0x1A0) + p.write_long(TS) + tail
    assert m.add_default_timestamp(Opcode.QUERY, body, 5, TS) == expected


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("opcode,make", [c[1:] for c in STAMP_CASES],
                         ids=[c[0] for c in STAMP_CASES])
def test_request_timestamp_reads_what_add_default_timestamp_wrote(version, opcode, make):
    body, flags = driver_body(make(), version)
    assert m.request_timestamp(opcode, body, version, flags=flags) is None
    stamped = m.add_default_timestamp(opcode, body, version, TS, flags=flags)
    assert m.request_timestamp(opcode, stamped, version, flags=flags) == TS
    body, flags = driver_body(make(timestamp=42), version)
    assert m.request_timestamp(opcode, body, version, flags=flags) == 42


def test_add_default_timestamp_refuses_other_opcodes():
    with pytest.raises(ValueError):
        m.add_default_timestamp(Opcode.PREPARE, p.write_long_string("x"), 4, TS)


@settings(max_examples=60)
@given(version=st.sampled_from(VERSIONS), values=st.lists(st.none() | st.binary(max_size=5),
                                                          max_size=4),
       fetch=st.none() | st.integers(1, 5000), serial=st.sampled_from([None, 8, 9]),
       ts=st.integers(0, 2**62))
def test_add_default_timestamp_property(version, values, fetch, serial, ts):
    kwargs = dict(query_params=values or None, fetch_size=fetch, serial_consistency_level=serial)
    without, _ = driver_body(query_msg("SELECT ?", 1, **kwargs), version)
    with_ts, _ = driver_body(query_msg("SELECT ?", 1, timestamp=ts, **kwargs), version)
    out = m.add_default_timestamp(Opcode.QUERY, without, version, ts)
    assert out == with_ts
    assert m.decode_query(out, version).flags & WITH_DEFAULT_TIMESTAMP


# --- connection set-up messages -------------------------------------------------------

def test_startup_register_and_auth_from_driver():
    body, _ = driver_body(StartupMessage("3.0.0", {"DRIVER_NAME": "x"}), 4)
    assert m.decode_startup(body) == {"CQL_VERSION": "3.0.0", "DRIVER_NAME": "x"}
    assert m.encode_startup(m.decode_startup(body)) == body
    body, _ = driver_body(RegisterMessage(["SCHEMA_CHANGE", "STATUS_CHANGE"]), 4)
    assert m.decode_register(body) == ["SCHEMA_CHANGE", "STATUS_CHANGE"]
    assert m.encode_register(["SCHEMA_CHANGE", "STATUS_CHANGE"]) == body
    body, _ = driver_body(AuthResponseMessage(b"\x00cassandra\x00secret"), 4)
    token = m.decode_auth_token(body)
    assert m.parse_plain_sasl_token(token) == ("cassandra", "secret")
    assert m.plain_sasl_token("cassandra", "secret") == token


def test_supported_authenticate_and_success_decoded_by_driver():
    supported = {"CQL_VERSION": ["3.4.5"], "COMPRESSION": []}
    msg = driver_decode(Opcode.SUPPORTED, m.encode_supported(supported))
    assert msg.cql_versions == ["3.4.5"]
    assert m.decode_supported(m.encode_supported(supported)) == supported
    cls = "org.apache.cassandra.auth.PasswordAuthenticator"
    assert driver_decode(Opcode.AUTHENTICATE, m.encode_authenticate(cls)).authenticator == cls
    assert m.decode_authenticate(m.encode_authenticate(cls)) == cls
    # The driver reads the token as text.
    assert driver_decode(Opcode.AUTH_SUCCESS, m.encode_auth_token(b"tok")).token == "tok"
    assert m.decode_auth_token(m.encode_auth_token(None)) is None


SASL = [("no-authzid-part", b"user"), ("one-separator", b"\x00user"), ("none", None),
        ("bad-utf8", b"\x00\xff\x00pw")]


@pytest.mark.parametrize("token", [s[1] for s in SASL], ids=[s[0] for s in SASL])
def test_malformed_sasl_token(token):
    with pytest.raises(ProtocolError) as info:
        m.parse_plain_sasl_token(token)
    assert info.value.code == ErrorCode.BAD_CREDENTIALS


def test_sasl_password_may_contain_nul():
    assert m.parse_plain_sasl_token(m.plain_sasl_token("u", "p\x00w")) == ("u", "p\x00w")


# --- ERROR ------------------------------------------------------------------------------

ERRORS = [
    (ErrorCode.SERVER_ERROR, None, "ServerError"),
    (ErrorCode.PROTOCOL_ERROR, None, "ProtocolException"),
    (ErrorCode.OVERLOADED, None, "OverloadedErrorMessage"),
    (ErrorCode.BAD_CREDENTIALS, None, "BadCredentials"),
    (ErrorCode.INVALID, None, "InvalidRequestException"),
    (ErrorCode.UNPREPARED, b"\x01\x02", "PreparedQueryNotFound"),
]


@pytest.mark.parametrize("code,unprepared_id,driver_class", ERRORS, ids=[e[0].name for e in ERRORS])
def test_errors_round_trip_and_driver_reads_them(code, unprepared_id, driver_class):
    body = m.encode_error(code, "what happened", unprepared_id=unprepared_id)
    assert m.decode_error(body) == m.ErrorInfo(code, "what happened", unprepared_id)
    msg = driver_decode(Opcode.ERROR, body)
    assert type(msg).__name__ == driver_class and msg.message == "what happened"
    if unprepared_id:
        assert msg.info == unprepared_id


def test_encode_error_refuses_codes_with_extra_fields():
    with pytest.raises(ValueError):
        m.encode_error(ErrorCode.WRITE_TIMEOUT, "x")
    with pytest.raises(ValueError):
        m.encode_error(ErrorCode.UNPREPARED, "x")


def test_decode_error_with_extra_fields_and_unknown_code():
    body = p.write_int(ErrorCode.WRITE_TIMEOUT) + p.write_string("t/o") + b"\x00\x01rest"
    assert m.decode_error(body) == m.ErrorInfo(ErrorCode.WRITE_TIMEOUT, "t/o", None)
    assert m.decode_error(p.write_int(0x7777) + p.write_string("?")).code == 0x7777


def test_response_prefix_tracing_and_warnings_is_skipped():
    prefix = uuid.uuid4().bytes + p.write_string_list(["careful"])
    body = prefix + m.encode_error(ErrorCode.INVALID, "bad")
    assert m.decode_error(body, flags=TRACING | WARNING).message == "bad"
    void = prefix + m.encode_void_result()
    assert m.result_kind(void, flags=TRACING | WARNING) == ResultKind.VOID


# --- RESULT -------------------------------------------------------------------------------

def prepared_body(version, prepared_id=b"\x11" * 16, metadata_id=b"\x22" * 16):
    out = p.write_int(ResultKind.PREPARED) + p.write_short_bytes(prepared_id)
    if version >= 5:
        out += p.write_short_bytes(metadata_id)
    out += p.write_int(1) + p.write_int(1)  # Global_tables_spec, one bind marker
    if version >= 4:
        out += p.write_int(1) + p.write_short(0)  # pk_count, pk_index
    out += p.write_string("ks") + p.write_string("t") + p.write_string("k") + p.write_short(9)
    return out + p.write_int(4) + p.write_int(0)  # result metadata: No_metadata


@pytest.mark.parametrize("version", VERSIONS)
def test_prepared_result_decode_and_replace(version):
    body = prepared_body(version)
    assert m.result_kind(body) is ResultKind.PREPARED
    expected_metadata_id = b"\x22" * 16 if version >= 5 else None
    assert m.decode_prepared_result(body, version) == m.PreparedResult(b"\x11" * 16,
                                                                       expected_metadata_id)
    replaced = m.replace_prepared_result_id(body, version, b"\x33" * 8)
    assert replaced == prepared_body(version, prepared_id=b"\x33" * 8)
    msg = driver_decode(Opcode.RESULT, replaced, version)
    assert msg.query_id == b"\x33" * 8
    assert [c[2] for c in msg.bind_metadata] == ["k"]


@pytest.mark.parametrize("version", VERSIONS)
def test_prepared_result_columns_match_the_driver(version):
    from tests.support.cql import prepared_result

    body = prepared_result(version, b"\x11" * 16, binds=("k",),
                           columns=(("host_id", "uuid"), ("tokens", "set<text>")),
                           keyspace="system", table="local")
    meta = m.decode_prepared_metadata(body, version)
    assert [c.name for c in meta.binds] == ["k"]
    columns = meta.columns
    assert [(c.keyspace, c.table, c.name, c.type.cql) for c in columns] == [
        ("system", "local", "host_id", "uuid"), ("system", "local", "tokens", "set<text>")]
    msg = driver_decode(Opcode.RESULT, body, version)
    assert [c[2] for c in msg.column_metadata] == ["host_id", "tokens"]
    plain = m.decode_prepared_metadata(prepared_body(version), version)
    assert plain.columns == []  # No_metadata
    assert plain.pk_indexes == ([0] if version >= 4 else [])  # prepared_body's one pk marker


def test_set_keyspace_and_schema_change():
    assert m.decode_set_keyspace(m.encode_set_keyspace("MyKs")) == "MyKs"
    body = (p.write_int(ResultKind.SCHEMA_CHANGE) + p.write_string("CREATED")
            + p.write_string("TABLE") + p.write_string("ks") + p.write_string("t"))
    assert m.decode_schema_change(body) == m.EventInfo("SCHEMA_CHANGE", "CREATED", None, "TABLE",
                                                       "ks", "t", None)
    with pytest.raises(ProtocolError, match="SET_KEYSPACE"):
        m.decode_set_keyspace(body)


SYSTEM_LOCAL_COLUMNS = [
    ("key", "text"), ("bootstrapped", "ascii"), ("broadcast_address", "inet"),
    ("rpc_port", "int"), ("gossip_generation", "bigint"), ("host_id", "uuid"),
    ("schema_version", "timeuuid"), ("tokens", "set<text>"), ("peers", "list<text>"),
    ("props", "map<text, text>"), ("ok", "boolean"), ("raw", "blob"), ("load", "double"),
    ("missing", "text"),
]
SYSTEM_LOCAL_ROW = [
    "local", "COMPLETED", ipaddress.ip_address("10.0.0.1"), 9042, 2**40,
    uuid.UUID("6ab09bec-e68e-48d9-a5f8-97e6fb4c9b47"),
    uuid.UUID("a3a6ee60-0a35-11ef-8000-000000000000"), {"-9", "0", "42"}, ["a", "b"],
    {"k": "v"}, True, b"\x00\x01", 0.25, None,
]


def _system_local():
    return [("system", "local", name, parse_type(t)) for name, t in SYSTEM_LOCAL_COLUMNS]


def test_encode_rows_is_read_by_the_driver():
    body = m.encode_rows(_system_local(), [SYSTEM_LOCAL_ROW])
    msg = driver_decode(Opcode.RESULT, body)
    assert msg.column_names == [name for name, _ in SYSTEM_LOCAL_COLUMNS]
    (row,) = msg.parsed_rows
    normalized = [set(v) if name == "tokens" else dict(v) if name == "props" else v
                  for (name, _), v in zip(SYSTEM_LOCAL_COLUMNS, row)]
    assert normalized == [str(v) if isinstance(v, ipaddress.IPv4Address) else v
                          for v in SYSTEM_LOCAL_ROW]


@pytest.mark.parametrize("version", VERSIONS)
def test_decode_rows_and_deserialize(version):
    body = m.encode_rows(_system_local(), [SYSTEM_LOCAL_ROW, [None] * len(SYSTEM_LOCAL_ROW)])
    result = m.decode_rows(body, version)
    assert [(c.keyspace, c.table, c.name, c.type.cql) for c in result.columns] == [
        ("system", "local", name, t) for name, t in SYSTEM_LOCAL_COLUMNS]
    assert [m.deserialize(c.type, v) for c, v in zip(result.columns, result.rows[0])] == \
        SYSTEM_LOCAL_ROW
    assert result.rows[1] == [None] * len(SYSTEM_LOCAL_ROW)
    assert result.paging_state is None


def test_encode_rows_per_column_table_spec():
    cols = [("ks", "a", "x", parse_type("int")), ("ks", "b", "y", parse_type("text"))]
    result = m.decode_rows(m.encode_rows(cols, [[1, "one"]]), 4)
    assert [(c.table, c.name) for c in result.columns] == [("a", "x"), ("b", "y")]
    assert driver_decode(Opcode.RESULT, m.encode_rows(cols, [[1, "one"]])).parsed_rows == \
        [(1, "one")]


def test_decode_rows_metadata_flags():
    udt = CqlType(0x30, (parse_type("int"), parse_type("text")), keyspace="ks", name="addr",
                  field_names=("n", "street"))
    tup = CqlType(0x31, (parse_type("int"), parse_type("list<blob>")))
    custom = CqlType(0x00, custom="org.example.MyType")
    meta = b"".join([
        p.write_int(1 | 2 | 8), p.write_int(3), p.write_bytes(b"page"),
        p.write_short_bytes(b"newmeta"), p.write_string("ks"), p.write_string("t"),
        p.write_string("u") + write_option(udt), p.write_string("tp") + write_option(tup),
        p.write_string("c") + write_option(custom)])
    udt_value = p.write_bytes(b"\x00\x00\x00\x07") + p.write_bytes(b"Main")
    body = p.write_int(2) + meta + p.write_int(1) + p.write_bytes(udt_value) + \
        p.write_bytes(None) + p.write_bytes(b"?")
    result = m.decode_rows(body, 5)
    assert result.paging_state == b"page" and result.new_metadata_id == b"newmeta"
    assert [c.type.cql for c in result.columns] == ["ks.addr", "tuple<int, list<blob>>",
                                                    "'org.example.MyType'"]
    assert m.deserialize(udt, result.rows[0][0]) == {"n": 7, "street": "Main"}
    assert m.deserialize(custom, b"?") == b"?"
    # v4 has no Metadata_changed: the bytes after the paging state are the table spec.
    no_meta = p.write_int(2) + p.write_int(4) + p.write_int(2) + p.write_int(1) + \
        p.write_bytes(b"a") + p.write_bytes(None)
    assert m.decode_rows(no_meta, 4) == m.RowsResult([], [[b"a", None]], None)


types = st.recursive(
    st.sampled_from(["ascii", "bigint", "blob", "boolean", "double", "float", "int", "text",
                     "timestamp", "uuid", "timeuuid", "inet", "smallint", "tinyint", "varint",
                     "decimal", "date", "time", "duration", "counter"]).map(parse_type),
    lambda inner: st.one_of(
        st.builds(lambda t: CqlType(0x20, (t,)), inner),
        st.builds(lambda t: CqlType(0x22, (t,)), inner),
        st.builds(lambda k, v: CqlType(0x21, (k, v)), inner, inner),
        st.builds(lambda ts: CqlType(0x31, tuple(ts)), st.lists(inner, max_size=3)),
        st.builds(lambda ts: CqlType(0x30, tuple(ts), keyspace="k", name="u",
                                     field_names=tuple(f"f{i}" for i in range(len(ts)))),
                  st.lists(inner, max_size=3)),
    ), max_leaves=6)


@given(types)
def test_type_options_round_trip(cql_type):
    raw = write_option(cql_type)
    assert read_option(raw, 0) == (cql_type, len(raw))
    if _parsable(cql_type):
        assert parse_type(cql_type.cql) == cql_type


def _parsable(t):
    """parse_type reads native and collection types; not UDTs nor empty tuples."""
    if t.code == 0x30 or (t.code == 0x31 and not t.subtypes):
        return False
    return all(_parsable(s) for s in t.subtypes)


VALUES = [
    ("ascii", st.text(st.characters(max_codepoint=127))), ("text", st.text()),
    ("int", st.integers(-2**31, 2**31 - 1)), ("bigint", st.integers(-2**63, 2**63 - 1)),
    ("varint", st.integers(-2**100, 2**100)), ("boolean", st.booleans()),
    ("blob", st.binary()), ("double", st.floats(allow_nan=False)), ("uuid", st.uuids()),
    ("inet", st.ip_addresses()), ("set<text>", st.sets(st.text(), max_size=4)),
    ("list<int>", st.lists(st.integers(-5, 5), max_size=4)),
    ("map<text, text>", st.dictionaries(st.text(), st.text(), max_size=4)),
    ("map<uuid, blob>", st.dictionaries(st.uuids(), st.binary(), max_size=3)),
]


@pytest.mark.parametrize("type_text,strategy", VALUES, ids=[v[0] for v in VALUES])
@given(data=st.data())
def test_values_round_trip(type_text, strategy, data):
    cql_type = parse_type(type_text)
    value = data.draw(strategy)
    assert m.deserialize(cql_type, m.serialize(cql_type, value)) == value


@pytest.mark.parametrize("type_text,raw", [("int", b"\x00"), ("boolean", b""),
                                           ("set<text>", b"\x00\x00\x00\x05"),
                                           ("text", b"\xff"), ("inet", b"\x01\x02")],
                         ids=["int-short", "bool-empty", "set-count", "text-utf8", "inet-3"])
def test_deserialize_malformed(type_text, raw):
    with pytest.raises(ProtocolError):
        m.deserialize(parse_type(type_text), raw)


# --- EVENT --------------------------------------------------------------------------------

EVENTS = [
    ("topology", p.write_string("TOPOLOGY_CHANGE") + p.write_string("NEW_NODE")
     + p.write_inet("10.0.0.2", 9042),
     m.EventInfo("TOPOLOGY_CHANGE", "NEW_NODE", (ipaddress.ip_address("10.0.0.2"), 9042))),
    ("status", p.write_string("STATUS_CHANGE") + p.write_string("DOWN")
     + p.write_inet("::1", 9042),
     m.EventInfo("STATUS_CHANGE", "DOWN", (ipaddress.ip_address("::1"), 9042))),
    ("keyspace", p.write_string("SCHEMA_CHANGE") + p.write_string("DROPPED")
     + p.write_string("KEYSPACE") + p.write_string("ks"),
     m.EventInfo("SCHEMA_CHANGE", "DROPPED", None, "KEYSPACE", "ks")),
    ("function", p.write_string("SCHEMA_CHANGE") + p.write_string("CREATED")
     + p.write_string("FUNCTION") + p.write_string("ks") + p.write_string("f")
     + p.write_string_list(["int", "text"]),
     m.EventInfo("SCHEMA_CHANGE", "CREATED", None, "FUNCTION", "ks", "f", ["int", "text"])),
]


@pytest.mark.parametrize("body,expected", [e[1:] for e in EVENTS], ids=[e[0] for e in EVENTS])
def test_decode_event(body, expected):
    assert m.decode_event(body) == expected


# --- proxy's own requests are understood by our decoders (and by the driver format) ---------

@pytest.mark.parametrize("version", VERSIONS)
def test_encode_query_matches_driver(version):
    ours = m.encode_query("SELECT * FROM system.local", Consistency.LOCAL_ONE, version,
                          page_size=100)
    theirs, _ = driver_body(QueryMessage("SELECT * FROM system.local", ConsistencyLevel.LOCAL_ONE,
                                         fetch_size=100), version)
    assert ours == theirs


# --- malformed bodies ---------------------------------------------------------------------

DECODERS = [
    ("startup", lambda b, v: m.decode_startup(b)),
    ("supported", lambda b, v: m.decode_supported(b)),
    ("authenticate", lambda b, v: m.decode_authenticate(b)),
    ("auth-token", lambda b, v: m.decode_auth_token(b)),
    ("error", lambda b, v: m.decode_error(b, flags=TRACING | WARNING | CUSTOM_PAYLOAD)),
    ("query", lambda b, v: m.decode_query(b, v)),
    ("prepare", lambda b, v: m.decode_prepare(b, v)),
    ("execute", lambda b, v: m.decode_execute(b, v, flags=CUSTOM_PAYLOAD)),
    ("replace-execute", lambda b, v: m.replace_execute_id(b, v, b"x")),
    ("batch", lambda b, v: m.decode_batch(b, v)),
    ("replace-batch", lambda b, v: m.replace_batch_ids(b, v, {b"a": b"b"})),
    ("stamp-query", lambda b, v: m.add_default_timestamp(Opcode.QUERY, b, v, 1)),
    ("stamp-execute", lambda b, v: m.add_default_timestamp(Opcode.EXECUTE, b, v, 1)),
    ("stamp-batch", lambda b, v: m.add_default_timestamp(Opcode.BATCH, b, v, 1)),
    ("result-kind", lambda b, v: m.result_kind(b)),
    ("prepared", lambda b, v: m.decode_prepared_result(b, v)),
    ("replace-prepared", lambda b, v: m.replace_prepared_result_id(b, v, b"x")),
    ("set-keyspace", lambda b, v: m.decode_set_keyspace(b)),
    ("schema-change", lambda b, v: m.decode_schema_change(b)),
    ("rows", lambda b, v: m.decode_rows(b, v)),
    ("event", lambda b, v: m.decode_event(b)),
    ("register", lambda b, v: m.decode_register(b)),
]


@pytest.mark.parametrize("decode", [d[1] for d in DECODERS], ids=[d[0] for d in DECODERS])
@settings(max_examples=150)
@given(body=st.binary(max_size=80), version=st.sampled_from(VERSIONS))
def test_arbitrary_bodies_only_raise_protocol_error(decode, body, version):
    try:
        decode(body, version)
    except ProtocolError:
        pass


def _prefixes(body):
    """Body with its tail cut and a few bytes flipped: realistic near-misses."""
    return st.one_of(st.integers(0, len(body)).map(lambda n: body[:n]),
                     st.tuples(st.integers(0, max(len(body) - 1, 0)), st.integers(1, 255)).map(
                         lambda t: body[:t[0]] + bytes([body[t[0]] ^ t[1]]) + body[t[0] + 1:]
                         if body else body))


@pytest.mark.parametrize("decode", [d[1] for d in DECODERS], ids=[d[0] for d in DECODERS])
@settings(max_examples=80)
@given(data=st.data(), version=st.sampled_from(VERSIONS))
def test_corrupted_real_bodies_only_raise_protocol_error(decode, data, version):
    sources = [driver_body(_batch(version, serial_consistency_level=9), version)[0],
               driver_body(query_msg("SELECT 1", 1, query_params=[b"1"]), version)[0],
               m.encode_rows(_system_local(), [SYSTEM_LOCAL_ROW]), prepared_body(version)]
    body = data.draw(_prefixes(data.draw(st.sampled_from(sources))))
    try:
        decode(body, version)
    except ProtocolError:
        pass
