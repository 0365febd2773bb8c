"""Reading the primary key of a write out of a request, for the proxy's records."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zdm.cql.messages import ColumnSpec
from zdm.cql.types import parse_type
from zdm.proxy import keys
from zdm.proxy.schema import KeySchema, TableKey, from_rows, key_of

INT = parse_type("int")
TEXT_T = parse_type("text")
#: ks.t (pk, ck) v, s static; ks.p ((a, b), c, d)
PK_CK = TableKey(("pk",), ("ck",))
COMPOSITE = TableKey(("a", "b"), ("c", "d"))


def i32(n: int) -> bytes:
    return n.to_bytes(4, "big", signed=True)


def spec(name: str, t=INT) -> ColumnSpec:
    return ColumnSpec("ks", "t", name, t)


def shown(key: keys.RowKey) -> dict:
    """column -> values as written: literal text, or the bound value's hex."""
    return {name: [v.get("cql", v.get("hex")) for v in vs] for name, vs in key.columns.items()}


# (id, statement, bound values, bind markers (a PREPARED result's), primary key, expected key)
CASES = [
    ("literal-where-bound-if", "UPDATE ks.t SET v = 2 WHERE pk = 7 AND ck = 8 IF v = ?",
     [i32(1)], [spec("v")], PK_CK, {"pk": ["7"], "ck": ["8"]}),
    ("bound-where-bound-if", "UPDATE ks.t SET v = ? WHERE pk = ? AND ck = ? IF v = ?",
     [i32(2), i32(7), i32(8), i32(1)], [spec("v"), spec("pk"), spec("ck"), spec("v")], PK_CK,
     {"pk": ["00000007"], "ck": ["00000008"]}),
    ("mixed", "UPDATE ks.t USING TTL ? SET v = ? WHERE pk = 7 AND ck = ? IF v = 'x'",
     [i32(60), i32(2), i32(8)], [spec("[ttl]"), spec("v"), spec("ck")], PK_CK,
     {"pk": ["7"], "ck": ["00000008"]}),
    ("if-marker-named-like-a-key-column", "UPDATE ks.t SET v = :pk WHERE pk = :a AND ck = :b IF v = :ck",
     [i32(100), i32(7), i32(8), i32(200)], [spec("pk"), spec("a"), spec("b"), spec("ck")], PK_CK,
     {"pk": ["00000007"], "ck": ["00000008"]}),
    ("in-literal", "UPDATE ks.t SET v = 1 WHERE pk IN (1, 2) AND ck = 3 IF v = 0", [], [], PK_CK,
     {"pk": ["1", "2"], "ck": ["3"]}),
    ("in-bound", "UPDATE ks.t SET v = ? WHERE pk IN (?, ?) AND ck = 3 IF v = ?",
     [i32(9), i32(1), i32(2), i32(0)], [], PK_CK, {"pk": ["00000001", "00000002"], "ck": ["3"]}),
    ("in-one-marker-for-the-list", "UPDATE ks.t SET v = 1 WHERE pk = 5 AND ck IN ? IF v = 0",
     [b"\x00"], [spec("ck", parse_type("list<int>"))], PK_CK, {"pk": ["5"]}),
    ("static-condition-partition-only", "UPDATE ks.t SET s = ? WHERE pk = ? IF s = ?",
     [i32(1), i32(7), i32(0)], [spec("s"), spec("pk"), spec("s")], PK_CK, {"pk": ["00000007"]}),
    ("static-condition-row", "UPDATE ks.t SET s = 1, v = 2 WHERE pk = 7 AND ck = 8 IF s = 0", [], [],
     PK_CK, {"pk": ["7"], "ck": ["8"]}),
    ("insert-if-not-exists", "INSERT INTO ks.t (v, ck, pk) VALUES ('new', 8, 7) IF NOT EXISTS", [], [],
     PK_CK, {"pk": ["7"], "ck": ["8"]}),
    ("insert-if-not-exists-bound-ttl", "INSERT INTO ks.t (pk, ck, v) VALUES (?, ?, ?) IF NOT EXISTS USING TTL ?",
     [i32(7), i32(8), b"x", i32(5)], [spec("pk"), spec("ck"), spec("v", TEXT_T), spec("[ttl]")], PK_CK,
     {"pk": ["00000007"], "ck": ["00000008"]}),
    ("insert-json-literal", """INSERT INTO ks.t JSON '{"pk": 7, "ck": 8, "v": "it''s"}' IF NOT EXISTS""",
     [], [], PK_CK, {"pk": ["7"], "ck": ["8"]}),
    ("insert-json-bound", "INSERT INTO ks.t JSON ? IF NOT EXISTS",
     [b'{"PK": "x", "ck": 8}'], [spec("[json]", TEXT_T)], PK_CK,
     {"pk": ["fromJson('\"x\"')"], "ck": ["8"]}),
    ("delete-if-exists", "DELETE FROM ks.t WHERE pk = 7 AND ck = ? IF EXISTS", [i32(8)], [spec("ck")], PK_CK,
     {"pk": ["7"], "ck": ["00000008"]}),
    ("delete-partition-if", "DELETE FROM ks.t USING TIMESTAMP ? WHERE pk = ? IF s = ?",
     [i32(1), i32(7), i32(0)], [spec("[timestamp]"), spec("pk"), spec("s")], PK_CK, {"pk": ["00000007"]}),
    ("composite-partition-tuple-clustering", "UPDATE ks.p SET v = 1 WHERE b = 2 AND a = 1 AND (c, d) = (3, ?) IF v = 0",
     [i32(4)], [], COMPOSITE, {"a": ["1"], "b": ["2"], "c": ["3"], "d": ["00000004"]}),
    ("clustering-prefix", "DELETE FROM ks.p WHERE a = 1 AND b = 2 AND c = 3 AND d > 4 IF EXISTS", [], [],
     COMPOSITE, {"a": ["1"], "b": ["2"], "c": ["3"]}),
    ("partition-incomplete", "DELETE FROM ks.p WHERE a = 1 IF EXISTS", [], [], COMPOSITE, {"a": ["1"]}),
    ("quoted-names", 'UPDATE ks."T" SET v = 1 WHERE "Pk" = 1 AND ck = \'a\'\'b\' IF v = 0', [], [],
     TableKey(("Pk",), ("ck",)), {"Pk": ["1"], "ck": ["'a''b'"]}),
    ("quoted-named-marker", 'UPDATE ks.t SET v = 1 WHERE pk = :"Key" AND ck = 2 IF v = :v',
     [i32(7), i32(0)], [spec("Key"), spec("v")], PK_CK, {"pk": ["00000007"], "ck": ["2"]}),
    ("function-term", "UPDATE ks.t SET v = 1 WHERE pk = blobAsInt(0x00000001) AND ck = 2 IF v = 0",
     [], [], PK_CK, {"pk": ["blobAsInt(0x00000001)"], "ck": ["2"]}),
    ("marker-in-a-function", "UPDATE ks.t SET v = 1 WHERE pk = blobAsInt(?) AND ck = 2 IF v = 0",
     [i32(1)], [], PK_CK, {}),
]


#: statements that restrict their rows further than their key says (too wide to delete by)
WIDER_THAN_THE_KEY = {"in-one-marker-for-the-list", "clustering-prefix", "partition-incomplete",
                      "marker-in-a-function"}


@pytest.mark.parametrize("case, query, values, binds, primary_key, expected", CASES, ids=[c[0] for c in CASES])
def test_the_key_is_the_where_clauses_primary_key_columns(case, query, values, binds, primary_key, expected):
    key = keys.from_text(query, values, binds=binds, primary_key=primary_key)
    assert key.exact is (case not in WIDER_THAN_THE_KEY)
    assert ("exact" in key.to_json()) is (case in WIDER_THAN_THE_KEY)
    assert shown(key) == expected
    assert key.primary_key == primary_key
    assert list(key.columns) == [c for c in primary_key.partition + primary_key.clustering if c in expected]
    # without its whole partition key, a record stands for the whole table
    assert keys.complete_partition(key) is all(c in expected for c in primary_key.partition)


def test_bound_values_carry_the_markers_types():
    key = keys.from_text("UPDATE ks.t SET v = ? WHERE pk = ? AND ck = ? IF v = ?",
                         [b"new", i32(2), b"a", b"old"],
                         binds=[spec("v", TEXT_T), spec("pk"), spec("ck", TEXT_T), spec("v", TEXT_T)],
                         primary_key=PK_CK)
    assert key.columns == {"pk": [{"type": "int", "hex": "00000002"}], "ck": [{"type": "text", "hex": "61"}]}
    assert keys.render(key) == "ks.t: pk=2, ck='a'"
    assert key.to_json()["partition_key"] == ["pk"] and key.to_json()["clustering_key"] == ["ck"]


# without the table's key: every column the statement pins (never SET, IF or USING values)
UNKNOWN = [
    ("insert", "INSERT INTO ks.t (k, c, v) VALUES (1, 'a''b', 3.5)", [],
     {"k": ["1"], "c": ["'a''b'"], "v": ["3.5"]}),
    ("insert-quoted-names", 'INSERT INTO ks."T" ("K", v) VALUES (uuid(), now())', [],
     {"K": ["uuid()"], "v": ["now()"]}),
    ("insert-uuid-literal", "INSERT INTO ks.t (k) VALUES (5f3c2a1e-0c9b-11ee-be56-0242ac120002)", [],
     {"k": ["5f3c2a1e-0c9b-11ee-be56-0242ac120002"]}),
    ("update-if", "UPDATE ks.t USING TTL 5 SET v = 'x', w = w + 1 WHERE k = 2 AND c = 'q' IF v = 'y'", [],
     {"k": ["2"], "c": ["'q'"]}),
    ("update-bound-if", "UPDATE ks.t SET v = 2 WHERE k = 7 AND c = 8 IF v = ?", [i32(1)],
     {"k": ["7"], "c": ["8"]}),
    ("delete-if-exists", "DELETE FROM t WHERE k = 0x0a0b IF EXISTS", [], {"k": ["0x0a0b"]}),
    ("select", "SELECT v FROM ks.t WHERE k = ? AND c = 'x' LIMIT ?", [i32(3), i32(10)],
     {"k": ["00000003"], "c": ["'x'"]}),
]


@pytest.mark.parametrize("query, values, expected", [c[1:] for c in UNKNOWN], ids=[c[0] for c in UNKNOWN])
def test_without_the_tables_key_every_pinned_column_is_kept(query, values, expected):
    key = keys.from_text(query, values)
    assert shown(key) == expected and key.primary_key is None


@pytest.mark.parametrize("query, values", [
    ("SELECT * FROM ks.t", []),
    ("INSERT INTO ks.t (k, v) VALUES (1)", []),
    ("UPDATE ks.t SET v = ? WHERE k = ?", [i32(1)]),
], ids=["no-where", "mismatched-lists", "fewer-values-than-markers"])
def test_forms_that_are_not_read_give_no_key(query, values):
    assert keys.from_text(query, values) is None


@pytest.mark.parametrize("query", [
    "UPDATE ks.t SET v = 1 WHERE pk > 1",
    "DELETE FROM ks.t WHERE token(pk) = 5",
    "UPDATE ks.t SET v = null WHERE pk = null AND ck = 1",
], ids=["range", "token", "null"])
def test_a_statement_without_its_partition_key_covers_the_whole_table(query):
    key = keys.from_text(query, primary_key=PK_CK)
    assert "pk" not in key.columns
    assert not keys.complete_partition(key)
    assert keys.render(key) == "ks.t (whole table)"


def test_the_schema_snapshot_is_read_from_system_schema_columns():
    rows = [("ks", "t", "ck", "clustering", 0), ("ks", "t", "pk", "partition_key", 0),
            ("ks", "t", "v", "regular", -1), ("ks", "t", "s", "static", -1),
            ("ks", "p", "b", "partition_key", 1), ("ks", "p", "a", "partition_key", 0),
            ("ks", "p", "d", "clustering", 1), ("ks", "p", "c", "clustering", 0),
            ("system", "local", "key", "partition_key", 0),
            ("old", "t", "k", "partition_key", None), ("old", "t", "c", "clustering_key", 0)]
    schema = from_rows(rows)
    assert key_of(schema, "ks", "t") == PK_CK and key_of(schema, "ks", "p") == COMPOSITE
    assert key_of(schema, "old", "t") == TableKey(("k",), ("c",))
    assert key_of(schema, "system", "local") is None and key_of(None, "ks", "t") is None


def test_a_fresher_read_replaces_only_what_it_covers():
    schema = KeySchema({("ks", "t"): PK_CK, ("ks", "p"): COMPOSITE, ("other", "x"): PK_CK})
    altered = schema.replaced(KeySchema({("ks", "t"): TableKey(("pk",))}), keyspace="ks", table="t")
    assert altered.tables == {("ks", "t"): TableKey(("pk",)), ("ks", "p"): COMPOSITE, ("other", "x"): PK_CK}
    dropped = schema.replaced(KeySchema(), keyspace="ks")
    assert dropped.tables == {("other", "x"): PK_CK}
    assert schema.tables[("ks", "t")] == PK_CK  # snapshots never change


_PIECES = ["INSERT", "INTO", "UPDATE", "DELETE", "FROM", "ks.t", "SET", "WHERE", "IF", "AND", "IN",
           "VALUES", "JSON", "USING", "TTL", "EXISTS", "NOT", "pk", "ck", "v", '"Q"', "(", ")", ",", "=",
           "?", ":x", ":", "'s'", "1", "{", "}", "[", "]", ">", ";", "token"]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["UPDATE ks.t SET v = 1 WHERE", "DELETE FROM ks.t WHERE", "INSERT INTO ks.t",
                        "SELECT * FROM ks.t WHERE", ""]),
       st.lists(st.sampled_from(_PIECES), max_size=16), st.lists(st.sampled_from([None, b"", b"\x00\x00\x00\x01"]),
                                                               max_size=4))
def test_any_statement_text_gives_a_key_or_none_never_an_error(prefix, pieces, values):
    query = " ".join([prefix, *pieces])
    key = keys.from_text(query, values, primary_key=PK_CK)
    assert key is None or set(key.columns) <= {"pk", "ck"}
