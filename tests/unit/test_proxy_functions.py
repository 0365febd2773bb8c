"""CQL function replacement: finding the calls, generating one value, rewriting text and
prepared statements."""

import datetime
import struct
import uuid

import pytest
from hypothesis import given, strategies as st

from zdm.proxy import functions

NOW = 1_733_087_301_123_456  # 2024-12-01 21:08:21.123456 UTC


@pytest.mark.parametrize("query, kinds", [
    ("INSERT INTO t (k, v) VALUES (now(), 1)", ["timeuuid"]),
    ("INSERT INTO t (k, u, ts) VALUES (NOW( ), Uuid(), currentTimestamp())", ["timeuuid", "uuid", "timestamp"]),
    ("UPDATE t SET d = currentDate(), tm = currentTime() WHERE k = currentTimeUUID()",
     ["date", "time", "timeuuid"]),
    ("INSERT INTO t (k, v) VALUES (1, 'now()')", []),            # inside a string
    ('INSERT INTO t ("now", v) VALUES (1, 2)', []),               # a quoted column
    ("INSERT INTO t (k, v) VALUES (1, ks.now())", []),            # a user function
    ("INSERT INTO t (k, v) VALUES (1, now(5))", []),              # not the built-in's arity
    ("INSERT INTO t (k, v) VALUES (1, /* now() */ 2)", []),       # a comment
], ids=["now", "mixed-case-spaces", "all-kinds", "string", "quoted", "user-function", "arguments",
        "comment"])
def test_calls_are_found_by_the_lexer(query, kinds):
    assert [c.kind for c in functions.calls(query)] == kinds


def test_generated_values_agree_with_their_literals():
    timeuuid = functions.generate("timeuuid", NOW)
    u = uuid.UUID(timeuuid.literal)
    assert u.version == 1 and u.bytes == timeuuid.value
    assert (u.time - 0x01B21DD213814000) // 10 == NOW  # its time is the write's
    ts = functions.generate("timestamp", NOW)
    assert ts.literal == "'2024-12-01 21:08:21.123+0000'" and struct.unpack(">q", ts.value)[0] == NOW // 1000
    date = functions.generate("date", NOW)
    assert date.literal == "'2024-12-01'"
    assert struct.unpack(">I", date.value)[0] - 2**31 == (datetime.date(2024, 12, 1) -
                                                           datetime.date(1970, 1, 1)).days
    time_ = functions.generate("time", NOW)
    assert time_.literal == "'21:08:21.123456000'"
    assert struct.unpack(">q", time_.value)[0] == ((21 * 60 + 8) * 60 + 21) * 10**9 + 123_456_000
    assert functions.generate("uuid", NOW).value != functions.generate("uuid", NOW).value


def test_literals_replace_each_call_once():
    query = "INSERT INTO t (k, a, b) VALUES (now(), uuid(), 'uuid()')"
    out = functions.with_literals(query, functions.calls(query), NOW)
    k, a = out[out.index("(", out.index("VALUES")) + 1:].split(", ")[:2]
    assert uuid.UUID(k).version == 1 and uuid.UUID(a).version == 4
    assert out.endswith(", 'uuid()')") and "now()" not in out


@pytest.mark.parametrize("query, rewritten, slots", [
    ("INSERT INTO t (k, v) VALUES (now(), ?)", "INSERT INTO t (k, v) VALUES (?, ?)", ((0, "timeuuid"),)),
    ("INSERT INTO t (k, c, v) VALUES (?, now(), ?) USING TTL ?", "INSERT INTO t (k, c, v) VALUES (?, ?, ?) USING TTL ?",
     ((1, "timeuuid"),)),
    ("UPDATE t SET a = uuid(), b = ? WHERE k = now()", "UPDATE t SET a = ?, b = ? WHERE k = ?",
     ((0, "uuid"), (2, "timeuuid"))),
    ("INSERT INTO t (k, v) VALUES (:k, now())", "INSERT INTO t (k, v) VALUES (:k, :zdm_generated_0)",
     ((1, "timeuuid"),)),
], ids=["first", "middle", "two", "named"])
def test_prepared_statements_get_a_marker_per_call(query, rewritten, slots):
    assert functions.with_markers(query, functions.calls(query)) == (rewritten, slots)


@given(st.lists(st.binary(max_size=4), max_size=6), st.data())
def test_fill_puts_generated_values_where_their_markers_are(client_values, data):
    n = len(client_values)
    indexes = sorted(data.draw(st.lists(st.integers(0, n), max_size=3)))
    slots = tuple((i + j, "uuid") for j, i in enumerate(indexes))  # as with_markers numbers them
    filled = functions.fill(client_values, slots, NOW)
    assert len(filled) == n + len(slots)
    assert [v for i, v in enumerate(filled) if i not in {s for s, _ in slots}] == client_values
    assert all(len(filled[s]) == 16 for s, _ in slots)
