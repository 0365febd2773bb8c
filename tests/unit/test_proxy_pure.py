"""The proxy's pure parts: routing decision, response aggregation, prepared-id cache,
stream ids and the virtual topology."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from zdm.cql import messages as m
from zdm.cql.classify import classify
from zdm.cql.constants import ErrorCode, Opcode
from zdm.cql.frame import Frame
from zdm.phases.model import Phase, routing_for
from zdm.proxy import aggregate
from zdm.proxy.prepared import PreparedCache, PreparedEntry
from zdm.proxy.routing import Destination, decide
from zdm.proxy.streams import StreamIds, StreamsExhausted
from zdm.proxy.topology import Instance, VirtualTopology, selected_columns
from zdm.scope import Scope

ORIGIN_PRIMARY = routing_for(Phase.PROXY)
ASYNC = routing_for(Phase.ASYNC_READS)
TARGET_PRIMARY = routing_for(Phase.TARGET_READS)
Q, X = Opcode.QUERY, Opcode.EXECUTE

ROUTES = [
    ("insert", Q, "INSERT INTO ks.t (k) VALUES (1)", None, False, ORIGIN_PRIMARY, Destination.BOTH, False),
    ("update", Q, "update ks.t set v = 1 where k = 1", None, False, TARGET_PRIMARY, Destination.BOTH,
     False),
    ("delete", X, "DELETE FROM t WHERE k = ?", "ks", False, ORIGIN_PRIMARY, Destination.BOTH, False),
    ("batch", Q, "BEGIN BATCH INSERT INTO t (k) VALUES (1); APPLY BATCH", "ks", False, ORIGIN_PRIMARY,
     Destination.BOTH, False),
    ("ddl", Q, "CREATE TABLE ks.t (k int PRIMARY KEY)", None, False, ORIGIN_PRIMARY, Destination.BOTH,
     False),
    ("use", Q, "USE ks", None, False, TARGET_PRIMARY, Destination.BOTH, False),
    ("unknown", Q, "FROBNICATE everything", None, False, ORIGIN_PRIMARY, Destination.BOTH, False),
    ("select-origin", Q, "SELECT * FROM ks.t", None, False, ORIGIN_PRIMARY, Destination.ORIGIN, False),
    ("select-async", Q, "SELECT * FROM ks.t", None, False, ASYNC, Destination.ORIGIN, True),
    ("select-async-prepared", X, "SELECT * FROM ks.t WHERE k = ?", None, False, ASYNC,
     Destination.ORIGIN, True),
    ("select-async-later-page", X, "SELECT * FROM ks.t", None, True, ASYNC, Destination.ORIGIN, False),
    ("select-target", Q, "SELECT * FROM ks.t", None, False, TARGET_PRIMARY, Destination.TARGET, False),
    ("select-target-later-page", Q, "SELECT * FROM ks.t", None, True, TARGET_PRIMARY, Destination.TARGET,
     False),
    ("system-local", Q, "SELECT * FROM system.local WHERE key='local'", None, False, TARGET_PRIMARY,
     Destination.PROXY, False),
    ("system-local-prepared-async", X, "SELECT * FROM system.local WHERE key = ?", None, False, ASYNC,
     Destination.PROXY, False),
    ("system-local-prepared-target", X, "SELECT * FROM system.local", None, False, TARGET_PRIMARY,
     Destination.PROXY, False),
    ("system-peers-unqualified", Q, "SELECT * FROM peers_v2", "system", False, ORIGIN_PRIMARY,
     Destination.PROXY, False),
    ("system-schema-from-origin", Q, "SELECT * FROM system_schema.tables", None, False, TARGET_PRIMARY,
     Destination.ORIGIN, False),
    ("system-other-no-async", X, "SELECT * FROM system.size_estimates", None, False, ASYNC,
     Destination.ORIGIN, False),
    ("comment-first", Q, "/* hi */ -- x\n SELECT v FROM ks.t", None, False, TARGET_PRIMARY,
     Destination.TARGET, False),
]


@pytest.mark.parametrize("opcode, query, keyspace, paged, routing, dest, async_secondary",
                         [r[1:] for r in ROUTES], ids=[r[0] for r in ROUTES])
def test_routing(opcode, query, keyspace, paged, routing, dest, async_secondary):
    decision = decide(opcode, classify(query), keyspace, paged, routing)
    assert decision.destination is dest
    assert decision.async_secondary is async_secondary
    # a later page in async mode is the one read that is counted as not compared
    assert decision.async_skipped is (paged and routing is ASYNC and dest is not Destination.PROXY
                                      and "system" not in query)


SCOPED = Scope(frozenset({"app"}), frozenset({"app.audit"}))
SCOPE_ROUTES = [
    ("in-scope-write", Q, "INSERT INTO app.t (k) VALUES (1)", None, TARGET_PRIMARY, Destination.BOTH),
    ("in-scope-read", X, "SELECT * FROM t WHERE k = ?", "app", TARGET_PRIMARY, Destination.TARGET),
    ("other-keyspace-write", Q, "INSERT INTO legacy.t (k) VALUES (1)", None, ORIGIN_PRIMARY,
     Destination.ORIGIN),
    ("other-keyspace-read-phase-4", Q, "SELECT * FROM legacy.t", None, TARGET_PRIMARY,
     Destination.ORIGIN),
    ("other-keyspace-unqualified", X, "UPDATE t SET v = ? WHERE k = ?", "legacy", ASYNC,
     Destination.ORIGIN),
    ("excluded-table", Q, "DELETE FROM app.audit WHERE k = 1", None, ORIGIN_PRIMARY, Destination.ORIGIN),
    ("other-keyspace-ddl", Q, "CREATE TABLE legacy.t2 (k int PRIMARY KEY)", None, ORIGIN_PRIMARY,
     Destination.ORIGIN),
    ("other-keyspace-prepare", Opcode.PREPARE, "SELECT * FROM legacy.t", None, ORIGIN_PRIMARY,
     Destination.ORIGIN),
    ("use-other-keyspace", Q, "USE legacy", None, ORIGIN_PRIMARY, Destination.ORIGIN),
    ("roles-belong-to-both", Q, "CREATE ROLE app_user", None, ORIGIN_PRIMARY, Destination.BOTH),
    ("system-table-write", Q, "ALTER KEYSPACE system_auth WITH replication = {}", None,
     ORIGIN_PRIMARY, Destination.BOTH),
    ("prepare-system-read", Opcode.PREPARE, "SELECT * FROM system.local", None, ORIGIN_PRIMARY,
     Destination.ORIGIN),
]


@pytest.mark.parametrize("opcode, query, keyspace, routing, dest", [r[1:] for r in SCOPE_ROUTES],
                         ids=[r[0] for r in SCOPE_ROUTES])
def test_routing_outside_the_scope_stays_on_origin(opcode, query, keyspace, routing, dest):
    assert decide(opcode, classify(query), keyspace, False, routing, SCOPED).destination is dest


@pytest.mark.parametrize("children, dest", [
    (("INSERT INTO app.t (k) VALUES (1)", "INSERT INTO legacy.t (k) VALUES (1)"), Destination.BOTH),
    (("INSERT INTO legacy.t (k) VALUES (1)", "UPDATE app.audit SET v = 1 WHERE k = 1"), Destination.ORIGIN),
], ids=["some-in-scope", "none-in-scope"])
def test_a_batch_goes_to_target_only_if_it_touches_the_scope(children, dest):
    stmts = tuple(classify(c) for c in children)
    assert decide(Opcode.BATCH, None, None, False, ORIGIN_PRIMARY, SCOPED, stmts).destination is dest


@pytest.mark.parametrize("opcode, dest", [
    (Opcode.REGISTER, Destination.ORIGIN), (Opcode.PREPARE, Destination.BOTH), (Opcode.BATCH, Destination.BOTH),
], ids=["register", "prepare", "batch"])
@pytest.mark.parametrize("routing", [ORIGIN_PRIMARY, ASYNC, TARGET_PRIMARY], ids=["p1", "p3", "p4"])
def test_routing_of_opcodes_that_carry_no_statement(opcode, dest, routing):
    assert decide(opcode, None, "ks", False, routing) == (dest, False, False)


@pytest.mark.parametrize("opcode, query", [
    (Q, "INSERT INTO ks.t (k) VALUES (1)"), (X, "SELECT v FROM ks.t"), (Opcode.PREPARE, "SELECT v FROM ks.t"),
    (Q, "SELECT * FROM system.local"), (Opcode.REGISTER, None), (Opcode.BATCH, None),
], ids=["write", "read", "prepare", "virtual-table", "register", "batch"])
def test_a_draining_proxy_refuses_every_request(opcode, query):
    stmt = classify(query) if query else None
    assert decide(opcode, stmt, "ks", paged=False, routing=ASYNC, draining=True).destination \
        is Destination.DRAINING


@pytest.mark.parametrize("table, dest", [
    ("peers_v2", Destination.NO_SUCH_TABLE), ("peers", Destination.PROXY), ("local", Destination.PROXY),
], ids=["peers_v2", "peers", "local"])
def test_a_virtual_table_origins_release_lacks_is_refused_as_origin_would(table, dest):
    before_4 = frozenset({"local", "peers"})
    decision = decide(Q, classify(f"SELECT * FROM system.{table}"), None, paged=False,
                      routing=ORIGIN_PRIMARY, virtual_tables=before_4)
    assert decision.destination is dest


def _ok() -> Frame:
    return Frame(4, True, 0, 1, Opcode.RESULT, m.encode_void_result())


def _err(message: str) -> Frame:
    return Frame(4, True, 0, 1, Opcode.ERROR, m.encode_error(ErrorCode.INVALID, message))


class _NoAnswer:
    pass


AGG = [
    ("both-ok", "p-ok", "s-ok", "p-ok"),
    ("secondary-fails", "p-ok", "s-err", "s-err"),
    ("primary-fails", "p-err", "s-ok", "p-err"),
    ("both-fail", "p-err", "s-err", "p-err"),
    ("secondary-silent", "p-ok", "s-none", "s-none"),
    ("primary-silent", "p-none", "s-ok", "p-none"),
]


@pytest.mark.parametrize("primary, secondary, expected", [a[1:] for a in AGG], ids=[a[0] for a in AGG])
def test_aggregation(primary, secondary, expected):
    outcomes = {"p-ok": _ok(), "s-ok": _ok(), "p-err": _err("p"), "s-err": _err("s"),
                "p-none": _NoAnswer(), "s-none": _NoAnswer()}
    assert aggregate.choose(outcomes[primary], outcomes[secondary]) is outcomes[expected]


def test_prepared_cache_maps_and_evicts():
    cache = PreparedCache(max_entries=2)
    stmt = classify("SELECT * FROM ks.t")
    for i in range(3):
        cache.put(PreparedEntry("q", None, stmt, bytes([i]), bytes([i]) if i else b"\xff"))
    assert cache.get(b"\x00") is None and len(cache) == 2  # oldest evicted
    assert cache.target_ids([b"\x01", b"\x02", b"\x09"]) == {}
    cache.put(PreparedEntry("q", None, stmt, b"\x05", b"\x06"))
    assert cache.target_ids([b"\x05", b"\x02"]) == {b"\x05": b"\x06"}


def test_stream_ids_recycle_and_exhaust():
    ids = StreamIds(size=3)
    got = [ids.acquire(n) for n in "abc"]
    assert sorted(got) == [0, 1, 2]
    with pytest.raises(StreamsExhausted):
        ids.acquire("d")
    assert ids.release(got[1]) == "b"
    assert ids.release(got[1]) is None  # a second answer on the same id is ignored
    assert ids.acquire("e") == got[1]


@given(st.lists(st.booleans(), max_size=200))
def test_stream_ids_never_hand_out_a_busy_id(ops):
    ids = StreamIds(size=16)
    busy: set[int] = set()
    for acquire in ops:
        if acquire and len(busy) < 16:
            stream = ids.acquire(object())
            assert stream not in busy
            busy.add(stream)
        elif busy:
            ids.release(busy.pop())
    assert len(ids) == len(busy)


def test_topology_describes_every_instance_once():
    instances = [Instance("127.0.0.1", 14002), Instance("127.0.0.1", 14003), Instance("10.0.0.9", 9042)]
    topo = VirtualTopology(instances, {"cluster_name": "prod", "release_version": "4.1.3",
                                       "data_center": "dc9", "partitioner": "p"})
    me = instances[1]
    local = topo.local_row(me)
    assert (local["rpc_address"], local["rpc_port"], local["cluster_name"]) == ("127.0.0.1", 14003, "prod")
    peers = topo.peer_rows(me)
    assert sorted((p["native_address"], p["native_port"]) for p in peers) == [
        ("10.0.0.9", 9042), ("127.0.0.1", 14002)]
    tokens = [topo.token_of(i) for i in instances]
    assert len(set(tokens)) == 3 and int(tokens[0]) == -2**63
    assert len({local["host_id"], *(p["host_id"] for p in peers)}) == 3


def test_topology_answers_selected_columns():
    topo = VirtualTopology([Instance("127.0.0.1", 14002), Instance("127.0.0.2", 14002)],
                           {"cluster_name": "c", "schema_version": "5a7a5f26-4b47-3a4e-9f39-2c51c5f3b0b8"})
    body = topo.answer("peers", "SELECT peer, rpc_address AS addr, schema_version FROM system.peers",
                       Instance("127.0.0.1", 14002))
    rows = m.decode_rows(body, 4)
    assert [c.name for c in rows.columns] == ["peer", "addr", "schema_version"]
    assert len(rows.rows) == 1
    assert m.deserialize(rows.columns[1].type, rows.rows[0][1]).exploded == "127.0.0.2"


@pytest.mark.parametrize("query, expected", [
    ("SELECT * FROM system.local", None),
    ("select key, host_id from system.local where key='local'", [("key", "key"), ("host_id", "host_id")]),
    ('SELECT "tokens" AS t FROM system.local', [("tokens", "t")]),
], ids=["star", "plain", "quoted-alias"])
def test_selected_columns(query, expected):
    assert selected_columns(query) == expected


def test_each_client_connection_takes_the_next_node_of_each_cluster():
    from zdm.config import ClusterConfig, Config
    from zdm.proxy.dialer import Route

    config = Config(origin=ClusterConfig(contact_points=("10.0.0.1", "10.0.0.2"), port=9042),
                    target=ClusterConfig(contact_points=("10.1.0.1", "10.1.0.2", "10.1.0.3"), port=9043))
    routes = {c: Route.of(cfg, c) for c, cfg in (("origin", config.origin), ("target", config.target))}
    origin = [(e.host, e.port) for e in (routes["origin"].next() for _ in range(4))]
    target = [(e.host, e.port) for e in (routes["target"].next() for _ in range(4))]
    assert origin == [("10.0.0.1", 9042), ("10.0.0.2", 9042)] * 2
    assert target == [("10.1.0.1", 9043), ("10.1.0.2", 9043), ("10.1.0.3", 9043), ("10.1.0.1", 9043)]


def test_stream_ids_are_handed_out_lazily():
    ids = StreamIds()
    assert ids._free == [] and ids._next == 0  # an idle connection holds no id table
    a = ids.acquire("a")
    ids.acquire("b")
    ids.release(a)
    assert ids.acquire("c") == a and ids._next == 2
