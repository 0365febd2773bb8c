"""Statement classification: kind and target of a CQL text, without a grammar."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zdm.cql.classify import (Statement, StatementKind, classify, is_system_peers_or_local,
                              resolve)

K = StatementKind

CASES = [
    # (id, query, kind, keyspace, table)
    ("select", "SELECT * FROM ks.t", K.SELECT, "ks", "t"),
    ("select-lowercase-unquoted", "select a from MyKs.MyTable", K.SELECT, "myks", "mytable"),
    ("select-quoted-case", 'SELECT * FROM "MyKs"."MyTable"', K.SELECT, "MyKs", "MyTable"),
    ("select-quoted-escape", 'SELECT * FROM "a""b".t', K.SELECT, 'a"b', "t"),
    ("select-unqualified", "SELECT * FROM t WHERE k = 1", K.SELECT, None, "t"),
    ("select-json", "SELECT JSON a, b FROM ks.t", K.SELECT, "ks", "t"),
    ("select-distinct", "SELECT DISTINCT k FROM ks.t", K.SELECT, "ks", "t"),
    ("select-quoted-from-column", 'SELECT "from" FROM ks.t', K.SELECT, "ks", "t"),
    ("select-functions", "SELECT token(k), writetime(v), cast(x AS text) FROM ks.t",
     K.SELECT, "ks", "t"),
    ("select-nested-parens", "SELECT f(g(a, (b)), 'from x') FROM ks.t", K.SELECT, "ks", "t"),
    ("select-string-with-from", "SELECT * FROM ks.t WHERE a = 'x FROM y.z'", K.SELECT, "ks", "t"),
    ("select-dollar-string", "SELECT $$ from a.b $$ FROM ks.t", K.SELECT, "ks", "t"),
    ("select-escaped-quote", "SELECT 'it''s FROM a.b' FROM ks.t", K.SELECT, "ks", "t"),
    ("select-spaces-around-dot", "SELECT * FROM ks . t", K.SELECT, "ks", "t"),
    ("select-system-local", "SELECT * FROM system.local WHERE key='local'", K.SELECT,
     "system", "local"),
    ("select-no-from", "SELECT now()", K.SELECT, None, None),
    ("line-comment", "-- a comment\nSELECT * FROM ks.t", K.SELECT, "ks", "t"),
    ("slash-comment", "// DELETE FROM x\nSELECT * FROM ks.t", K.SELECT, "ks", "t"),
    ("block-comment", "/* INSERT INTO x.y\n */ SELECT * FROM ks.t", K.SELECT, "ks", "t"),
    ("comment-in-select-list", "SELECT a /* FROM x.y */ FROM ks.t", K.SELECT, "ks", "t"),
    ("leading-whitespace", " \n\t SELECT * FROM ks.t", K.SELECT, "ks", "t"),
    ("insert", "INSERT INTO ks.t (a, b) VALUES (1, 'SELECT')", K.INSERT, "ks", "t"),
    ("insert-json", "insert into t JSON '{\"a\": 1}'", K.INSERT, None, "t"),
    ("insert-quoted", 'INSERT INTO "Ks"."T" (a) VALUES (?)', K.INSERT, "Ks", "T"),
    ("update", "UPDATE ks.t USING TTL 10 SET a = 1 WHERE k = 2", K.UPDATE, "ks", "t"),
    ("update-if", "UPDATE t SET a = 1 WHERE k = 2 IF a = 0", K.UPDATE, None, "t"),
    ("delete", "DELETE FROM ks.t WHERE k = 1", K.DELETE, "ks", "t"),
    ("delete-columns", "DELETE a, b[1], c['from'] FROM ks.t WHERE k = 1", K.DELETE, "ks", "t"),
    ("delete-using", "DELETE FROM t USING TIMESTAMP 5 WHERE k = 1", K.DELETE, None, "t"),
    ("batch", "BEGIN BATCH INSERT INTO a.b (k) VALUES (1); APPLY BATCH", K.BATCH, None, None),
    ("batch-unlogged", "begin unlogged batch update a.b set x=1 where k=1 apply batch",
     K.BATCH, None, None),
    ("batch-counter", "BEGIN COUNTER BATCH UPDATE c SET n = n + 1 WHERE k = 1; APPLY BATCH;",
     K.BATCH, None, None),
    ("begin-transaction", "BEGIN TRANSACTION SELECT * FROM a.b; COMMIT TRANSACTION",
     K.OTHER, None, None),
    ("use", "USE ks", K.USE, "ks", None),
    ("use-quoted", 'USE "Ks"', K.USE, "Ks", None),
    ("use-semicolon", "use MyKs;", K.USE, "myks", None),
    ("create-table", "CREATE TABLE IF NOT EXISTS ks.t (k int PRIMARY KEY)", K.DDL, "ks", "t"),
    ("create-keyspace", "CREATE KEYSPACE IF NOT EXISTS Ks WITH replication = {}", K.DDL,
     "ks", None),
    ("alter-table", "ALTER TABLE ks.t ADD c int", K.DDL, "ks", "t"),
    ("drop-table", "DROP TABLE IF EXISTS t", K.DDL, None, "t"),
    ("drop-keyspace", 'DROP KEYSPACE "Ks"', K.DDL, "Ks", None),
    ("truncate", "TRUNCATE ks.t", K.DDL, "ks", "t"),
    ("truncate-table", "TRUNCATE TABLE t", K.DDL, None, "t"),
    ("create-index", "CREATE INDEX ON ks.t (c)", K.DDL, None, None),
    ("create-mv", "CREATE MATERIALIZED VIEW ks.v AS SELECT * FROM ks.t", K.DDL, None, None),
    ("create-role", "CREATE ROLE alice WITH PASSWORD = 'x' AND LOGIN = true", K.DDL, None, None),
    ("alter-user", "ALTER USER bob WITH PASSWORD 'y'", K.DDL, None, None),
    ("drop-role", "DROP ROLE alice", K.DDL, None, None),
    ("grant", "GRANT SELECT ON KEYSPACE ks TO alice", K.AUTH, None, None),
    ("revoke", "REVOKE MODIFY ON ks.t FROM alice", K.AUTH, None, None),
    ("list-roles", "LIST ROLES", K.AUTH, None, None),
    ("empty", "", K.OTHER, None, None),
    ("only-comment", "-- nothing", K.OTHER, None, None),
    ("unterminated-comment", "/* SELECT * FROM a.b", K.OTHER, None, None),
    ("garbage", "(SELECT * FROM a.b)", K.OTHER, None, None),
    ("string-first", "'SELECT' FROM a.b", K.OTHER, None, None),
]


@pytest.mark.parametrize("query,kind,keyspace,table", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_classify(query, kind, keyspace, table):
    got = classify(query)
    assert (got.kind, got.keyspace, got.table) == (kind, keyspace, table)


LWT = [
    ("insert-if-not-exists", "INSERT INTO ks.t (k) VALUES (1) IF NOT EXISTS", True),
    ("update-if", "UPDATE t SET a = 1 WHERE k = 2 IF a = 0", True),
    ("update-if-exists", "UPDATE t USING TTL 5 SET a = 1 WHERE k = 2 IF EXISTS", True),
    ("delete-if", "DELETE FROM ks.t WHERE k = 1 IF v = 'x'", True),
    ("batch-with-condition", "BEGIN BATCH UPDATE a.b SET x = 1 WHERE k = 1 IF x = 0; APPLY BATCH",
     True),
    ("plain-insert", "INSERT INTO ks.t (k, v) VALUES (1, 'if')", False),
    ("quoted-column-named-if", 'UPDATE ks.t SET "if" = 1 WHERE k = 1', False),
    ("if-inside-a-function-call", "INSERT INTO ks.t (k, v) VALUES (1, f(if))", False),
    ("plain-batch", "BEGIN BATCH INSERT INTO a.b (k) VALUES (1); APPLY BATCH", False),
    ("create-if-not-exists", "CREATE TABLE IF NOT EXISTS ks.t (k int PRIMARY KEY)", False),
]


@pytest.mark.parametrize("query, conditional", [c[1:] for c in LWT], ids=[c[0] for c in LWT])
def test_lightweight_transactions_are_recognised(query, conditional):
    assert classify(query).conditional is conditional


READ_WRITE = [(K.SELECT, True, False), (K.INSERT, False, True), (K.UPDATE, False, True),
              (K.DELETE, False, True), (K.BATCH, False, True), (K.USE, False, False),
              (K.DDL, False, False), (K.AUTH, False, False), (K.OTHER, False, False)]


@pytest.mark.parametrize("kind,is_read,is_write", READ_WRITE, ids=[r[0].name for r in READ_WRITE])
def test_read_write(kind, is_read, is_write):
    stmt = Statement(kind)
    assert (stmt.is_read, stmt.is_write) == (is_read, is_write)


SYSTEM = [
    ("qualified-local", "SELECT * FROM system.local", None, "local"),
    ("qualified-peers", "SELECT peer, rpc_address FROM system.peers", "ks", "peers"),
    ("quoted", 'SELECT * FROM "system"."peers_v2"', None, "peers_v2"),
    ("unqualified-in-system", "SELECT * FROM local", "system", "local"),
    ("unqualified-elsewhere", "SELECT * FROM local", "app", None),
    ("other-system-table", "SELECT * FROM system.size_estimates", None, None),
    ("quoted-case-differs", 'SELECT * FROM system."Local"', None, None),
    ("schema-keyspace", "SELECT * FROM system_schema.tables", None, None),
    ("not-a-select", "DELETE FROM system.peers WHERE peer = '1.2.3.4'", None, None),
]


@pytest.mark.parametrize("query,session_keyspace,expected", [s[1:] for s in SYSTEM],
                         ids=[s[0] for s in SYSTEM])
def test_is_system_peers_or_local(query, session_keyspace, expected):
    assert is_system_peers_or_local(classify(query), session_keyspace) == expected


def test_resolve_fills_only_unqualified_tables():
    assert resolve(classify("SELECT * FROM t"), "ks") == Statement(K.SELECT, "ks", "t")
    assert resolve(classify("SELECT * FROM o.t"), "ks") == Statement(K.SELECT, "o", "t")
    assert resolve(classify("USE x"), "ks") == Statement(K.USE, "x", None)


def test_classify_is_cached():
    query = "SELECT * FROM cached.t"
    assert classify(query) is classify(query)


@given(st.text(max_size=80))
def test_arbitrary_text_never_crashes(text):
    assert isinstance(classify(text), Statement)

