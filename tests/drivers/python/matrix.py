"""The driver matrix's scenarios, written as an application uses the DataStax Python driver.

    python matrix.py --host 127.0.0.1 --port 9042 --protocol 4 --compression lz4 \
                     --keyspace ks1 --scenarios paging,lwt

Connects to exactly that contact point at exactly that protocol version (the driver does not
negotiate down from a version it was given), creates the keyspace, runs the scenarios in order,
drops the keyspace and prints one JSON line per scenario: {"scenario", "result"} or, when it
raised, {"scenario", "error", "message"}.  The scenarios and the JSON shape of values are the
driver matrix's contract (tests/drivers/README.md); the runner compares a run through the
zdm proxy with a direct run line by line, so nothing here is random.

Exit codes: 0 done, 2 bad arguments, 3 the driver cannot do the compression asked for here,
4 compression was asked for but the connection runs without it (the server offered none: the
driver silently falls back, which would make a compression run prove nothing).
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections import namedtuple

from cassandra import ConsistencyLevel, ProtocolVersion
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
from cassandra.connection import locally_supported_compressions
from cassandra.policies import RoundRobinPolicy
from cassandra.query import BatchStatement, BatchType, SimpleStatement, dict_factory

SCENARIOS = {}
# the compression scenario's values: "zdm" repeated, cut to the length
BIG, SMALL = 20_000, 300
Addr = namedtuple("Addr", "street zip")


def scenario(fn):
    SCENARIOS[fn.__name__] = fn
    return fn


def to_json(value):
    """A driver value as the matrix's JSON: sets sorted, map keys as strings, UDTs as objects
    (checked before tuples: a registered UDT class is a namedtuple), blobs as hex."""
    if value is None or isinstance(value, (bool, int, str, float)):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if hasattr(value, "_fields"):
        return {f: to_json(getattr(value, f)) for f in value._fields}
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)) or type(value).__name__ == "SortedSet":
        return sorted(to_json(v) for v in value)
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    raise TypeError(f"no JSON form for {type(value).__name__}: {value!r}")


def rows_of(result) -> list[dict]:
    return [{k: to_json(v) for k, v in row.items()} for row in result]


def error_kind(e: BaseException) -> dict:
    return {"error": type(e).__name__}


# -- the scenarios (names and steps: the matrix's contract) --------------------------------

@scenario
def prepared_alter_add(s, ks):
    s.execute("CREATE TABLE t1 (pk int, ck int, v text, PRIMARY KEY (pk, ck))")
    s.execute("INSERT INTO t1 (pk, ck, v) VALUES (0, 1, 'a')")
    s.execute("INSERT INTO t1 (pk, ck, v) VALUES (0, 2, 'b')")
    select = s.prepare("SELECT * FROM t1 WHERE pk = ?")
    before = rows_of(s.execute(select, (0,)))
    s.execute("ALTER TABLE t1 ADD a text")
    s.execute("UPDATE t1 SET a = 'new' WHERE pk = 0 AND ck = 1")
    after = rows_of(s.execute(select, (0,)))
    return {"before": before, "after": after}


@scenario
def prepared_type_change(s, ks):
    s.execute("CREATE TABLE t2 (pk int PRIMARY KEY, v int)")
    insert = s.prepare("INSERT INTO t2 (pk, v) VALUES (?, ?)")
    s.execute(insert, (1, 10))
    s.execute("DROP TABLE t2")
    s.execute("CREATE TABLE t2 (pk int PRIMARY KEY, v bigint)")
    try:
        s.execute(insert, (2, 20))
        second = "ok"
    except Exception as e:  # noqa: BLE001 - whatever the driver raises is the outcome
        second = error_kind(e)
    rows = sorted(rows_of(s.execute("SELECT pk, v FROM t2")), key=lambda r: r["pk"])
    return {"second_insert": second, "rows": rows}


@scenario
def paging(s, ks):
    s.execute("CREATE TABLE pg (pk int, ck int, v text, PRIMARY KEY (pk, ck))")
    insert = s.prepare("INSERT INTO pg (pk, ck, v) VALUES (1, ?, ?)")
    for ck in range(50):
        s.execute(insert, (ck, f"v{ck}"))
    simple = SimpleStatement("SELECT ck, v FROM pg WHERE pk = 1", fetch_size=7)
    bound = s.prepare("SELECT ck, v FROM pg WHERE pk = ?").bind((1,))
    bound.fetch_size = 7
    # iterating a ResultSet fetches every following page (the driver's automatic paging)
    return {"simple": [r["ck"] for r in s.execute(simple)],
            "prepared": [r["ck"] for r in s.execute(bound)]}


@scenario
def udt_collections(s, ks):
    s.execute("CREATE TYPE addr (street text, zip int)")
    s.execute("CREATE TABLE uc (pk int PRIMARY KEY, l list<int>, s set<text>, m map<text, int>, "
              "a frozen<addr>, la list<frozen<addr>>, tu tuple<int, text>)")
    s.cluster.register_user_type(ks, "addr", Addr)
    s.execute("INSERT INTO uc (pk, l, s, m, a, la, tu) VALUES (1, [1, 2, 3], {'b', 'a'}, "
              "{'x': 1, 'y': 2}, {street: 'Main St', zip: 12345}, "
              "[{street: 'A', zip: 1}, {street: 'B', zip: 2}], (7, 'seven'))")
    insert = s.prepare("INSERT INTO uc (pk, l, s, m, a, la, tu) VALUES (?, ?, ?, ?, ?, ?, ?)")
    s.execute(insert, (2, [4, 5], {"c"}, {"z": 26}, Addr("Side St", 54321), [Addr("C", 3)], (8, "eight")))
    s.execute("UPDATE uc SET l = l + [9] WHERE pk = 1")
    return sorted(rows_of(s.execute("SELECT * FROM uc")), key=lambda r: r["pk"])


def lwt_outcome(result) -> dict:
    row = dict(result.one())
    applied = row.pop("[applied]")
    return {"applied": applied, "row": {k: to_json(v) for k, v in sorted(row.items())} or None}


@scenario
def lwt(s, ks):
    s.execute("CREATE TABLE lw (pk int, ck int, v int, s int static, PRIMARY KEY (pk, ck))")
    out = [lwt_outcome(s.execute("INSERT INTO lw (pk, ck, v) VALUES (1, 1, 1) IF NOT EXISTS"))
           for _ in range(2)]
    update = s.prepare("UPDATE lw SET v = ? WHERE pk = ? AND ck = ? IF v = ?")
    out += [lwt_outcome(s.execute(update, values)) for values in ((2, 1, 1, 1), (3, 1, 1, 1))]
    out.append(lwt_outcome(s.execute("UPDATE lw SET s = 5 WHERE pk = 1 IF s = null")))
    return out


@scenario
def counters(s, ks):
    s.execute("CREATE TABLE cn (pk int PRIMARY KEY, n counter)")
    for _ in range(2):
        s.execute("UPDATE cn SET n = n + 3 WHERE pk = 1")
    s.execute(s.prepare("UPDATE cn SET n = n + ? WHERE pk = ?"), (5, 1))
    return {"n": s.execute("SELECT n FROM cn WHERE pk = 1").one()["n"]}


@scenario
def batches(s, ks):
    s.execute("CREATE TABLE bt (pk int, ck int, v text, PRIMARY KEY (pk, ck))")
    insert = s.prepare("INSERT INTO bt (pk, ck, v) VALUES (?, ?, ?)")
    logged = BatchStatement(batch_type=BatchType.LOGGED)
    logged.add(SimpleStatement("INSERT INTO bt (pk, ck, v) VALUES (1, 1, 'a')"))
    logged.add(insert, (1, 2, "b"))
    logged.add(insert, (2, 1, "c"))
    s.execute(logged)
    unlogged = BatchStatement(batch_type=BatchType.UNLOGGED)
    unlogged.add(insert, (3, 1, "d"))
    unlogged.add(insert, (3, 2, "e"))
    s.execute(unlogged)
    conditional = BatchStatement()
    conditional.add(SimpleStatement("INSERT INTO bt (pk, ck, v) VALUES (1, 3, 'f') IF NOT EXISTS"))
    applied = s.execute(conditional).was_applied
    rows = sorted(rows_of(s.execute("SELECT * FROM bt")), key=lambda r: (r["pk"], r["ck"]))
    return {"lwt_batch_applied": applied, "rows": rows}


@scenario
def schema_metadata(s, ks):
    s.execute("CREATE TABLE md (pk int, ck text, v map<int, text>, PRIMARY KEY (pk, ck)) "
              "WITH CLUSTERING ORDER BY (ck DESC)")
    # the driver refreshes its metadata on the SCHEMA_CHANGE answer; asking again makes the
    # read independent of that event's timing
    s.cluster.refresh_table_metadata(ks, "md")
    table = s.cluster.metadata.keyspaces[ks].tables["md"]
    return {"partition_key": [c.name for c in table.partition_key],
            "clustering": [[c.name, "DESC" if c.is_reversed else "ASC"] for c in table.clustering_key],
            "columns": {name: c.cql_type for name, c in table.columns.items()}}


@scenario
def compression(s, ks):
    s.execute("CREATE TABLE cp (pk int PRIMARY KEY, v text)")
    insert = s.prepare("INSERT INTO cp (pk, v) VALUES (?, ?)")
    for pk, length in ((1, BIG), (2, SMALL)):
        s.execute(insert, (pk, ("zdm" * (length // 3 + 1))[:length]))
    rows = sorted(s.execute("SELECT pk, v FROM cp"), key=lambda r: r["pk"])
    return [[r["pk"], len(r["v"]), r["v"][:10]] for r in rows]


# -- running -------------------------------------------------------------------------------

def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--protocol", type=int, choices=(3, 4, 5), required=True)
    parser.add_argument("--compression", choices=("none", "lz4", "snappy"), default="none")
    parser.add_argument("--keyspace", required=True)
    parser.add_argument("--scenarios", required=True, help="comma-separated: " + ",".join(SCENARIOS))
    args = parser.parse_args(argv)
    args.scenarios = args.scenarios.split(",")
    unknown = [n for n in args.scenarios if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    return args


def compression_in_effect(cluster, session) -> set:
    """The compression each open connection runs with (the driver keeps it per connection)."""
    connections = [cluster.control_connection._connection]
    for pool in session.get_pools():
        connections += list(pool.get_connections())
    return {c._compression_type for c in connections}


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.compression != "none" and args.compression not in locally_supported_compressions:
        print(f"the Python driver cannot do {args.compression} compression here: install the "
              f"{'lz4' if args.compression == 'lz4' else 'python-snappy'} package", file=sys.stderr)
        return 3
    if args.compression == "snappy" and ProtocolVersion.has_checksumming_support(args.protocol):
        print(f"the Python driver does no snappy compression at protocol v{args.protocol} "
              "(v5 frames compress with lz4 only)", file=sys.stderr)
        return 3
    profile = ExecutionProfile(load_balancing_policy=RoundRobinPolicy(), row_factory=dict_factory,
                               consistency_level=ConsistencyLevel.ONE, request_timeout=30)
    cluster = Cluster([args.host], port=args.port, protocol_version=args.protocol,
                      compression=False if args.compression == "none" else args.compression,
                      execution_profiles={EXEC_PROFILE_DEFAULT: profile}, connect_timeout=15)
    try:
        session = cluster.connect()
        if args.compression != "none":
            in_effect = compression_in_effect(cluster, session)
            if in_effect != {args.compression}:
                print(f"{args.compression} compression was asked for, the connections run with "
                      f"{sorted(map(str, in_effect))}: the server did not offer it", file=sys.stderr)
                return 4
        session.execute(f"CREATE KEYSPACE {args.keyspace} WITH replication = "
                        "{'class': 'SimpleStrategy', 'replication_factor': 1}")
        session.set_keyspace(args.keyspace)
        for name in args.scenarios:
            try:
                line = {"scenario": name, "result": SCENARIOS[name](session, args.keyspace)}
            except Exception as e:  # noqa: BLE001 - a scenario's failure is its line
                traceback.print_exc(file=sys.stderr)
                line = {"scenario": name, "error": type(e).__name__, "message": str(e)}
            print(json.dumps(line, sort_keys=True), flush=True)
        session.execute(f"DROP KEYSPACE {args.keyspace}")
        return 0
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    sys.exit(main())
