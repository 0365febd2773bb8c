"""Reading the key of a write out of a request, for the proxy's records."""

import pytest

from zdm.cql.messages import ColumnSpec
from zdm.cql.types import parse_type
from zdm.proxy import keys

TEXT = [
    ("insert", "INSERT INTO ks.t (k, c, v) VALUES (1, 'a''b', 3.5)",
     {"k": ["1"], "c": ["'a''b'"], "v": ["3.5"]}),
    ("insert-if-not-exists-ttl", "insert into t (k, v) values (7, {1: 'x'}) IF NOT EXISTS USING TTL 9",
     {"k": ["7"], "v": ["{1: 'x'}"]}),
    ("insert-quoted-names", 'INSERT INTO ks."T" ("K", v) VALUES (uuid(), now())',
     {"K": ["uuid()"], "v": ["now()"]}),
    ("insert-uuid-literal", "INSERT INTO ks.t (k) VALUES (5f3c2a1e-0c9b-11ee-be56-0242ac120002)",
     {"k": ["5f3c2a1e-0c9b-11ee-be56-0242ac120002"]}),
    ("update", "UPDATE ks.t USING TTL 5 SET v = 'x', w = w + 1 WHERE k = 2 AND c = 'q' IF v = 'y'",
     {"k": ["2"], "c": ["'q'"]}),
    ("update-in", "UPDATE ks.t SET v = 1 WHERE k IN (1, 2, 3)", {"k": ["1", "2", "3"]}),
    ("delete", "DELETE v FROM ks.t WHERE k = -4", {"k": ["-4"]}),
    ("delete-if-exists", "DELETE FROM t WHERE k = 0x0a0b IF EXISTS", {"k": ["0x0a0b"]}),
    ("function-term", "UPDATE ks.t SET v = 1 WHERE k = blobAsInt(0x00000001)",
     {"k": ["blobAsInt(0x00000001)"]}),
]


@pytest.mark.parametrize("query, expected", [t[1:] for t in TEXT], ids=[t[0] for t in TEXT])
def test_keys_are_read_from_statement_text(query, expected):
    key = keys.from_text(query)
    assert {name: [v["cql"] for v in vs] for name, vs in key.columns.items()} == expected


def test_question_marks_take_the_requests_values_in_order():
    key = keys.from_text("UPDATE ks.t USING TTL ? SET v = ? WHERE k = ? AND c = ?",
                         [b"\x00\x00\x00\x05", b"x", b"\x00\x00\x00\x07", b"cc"])
    assert key.columns == {"k": [{"hex": "00000007"}], "c": [{"hex": "6363"}]}


def test_a_select_names_the_row_it_reads():
    key = keys.from_text("SELECT v FROM ks.t WHERE k = ? AND c = 'x' LIMIT 1", [b"\x00\x00\x00\x03"])
    assert key.columns == {"k": [{"hex": "00000003"}], "c": [{"cql": "'x'"}]}


@pytest.mark.parametrize("query", [
    "SELECT * FROM ks.t",
    "INSERT INTO ks.t JSON '{\"k\": 1}'",
    "UPDATE ks.t SET v = 1 WHERE k > 1",
    "UPDATE ks.t SET v = 1 WHERE (k, c) = (1, 2)",
    "DELETE FROM ks.t WHERE token(k) = 5",
    "UPDATE ks.t SET v = 1 WHERE k = :key",
    "INSERT INTO ks.t (k, v) VALUES (1)",
], ids=["read-everything", "json", "range", "tuple", "token", "named-marker", "mismatched-lists"])
def test_forms_that_are_not_read_give_no_key(query):
    assert keys.from_text(query) is None


def test_bound_values_are_named_by_their_markers():
    int_t, text_t = parse_type("int"), parse_type("text")
    binds = [ColumnSpec("ks", "t", "v", text_t), ColumnSpec("ks", "t", "k", int_t),
             ColumnSpec("ks", "t", "[ttl]", int_t), ColumnSpec("ks", "t", "v", text_t)]
    key = keys.from_bound_values("ks", "t", binds, [b"new", b"\x00\x00\x00\x02", b"\x00\x00\x00\x05", b"old"])
    assert key.columns == {"v": [{"type": "text", "hex": "6e6577"}, {"type": "text", "hex": "6f6c64"}],
                           "k": [{"type": "int", "hex": "00000002"}]}
    assert keys.render(key) == "ks.t: v IN ('new', 'old'), k=2"
