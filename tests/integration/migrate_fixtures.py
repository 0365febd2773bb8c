"""Shared fixture data for migrate/validate integration tests: every CQL type, small."""

from __future__ import annotations

import dataclasses
import uuid


from cassandra.cluster import EXEC_PROFILE_DEFAULT
from cassandra.query import tuple_factory

from zdm.migrate import MigrationSettings, RunSettings
from zdm.migrate.schema import Kind, tables_in_scope
from zdm.ranges.ring import FULL_RING
from zdm.scope import Scope
from zdm.validate import ValidationParams, ValidationSettings

BIG_PARTITION_ROWS = 150
FETCH_SIZE = 20  # so the big partition spans several pages


def create_schema(session, ks: str, *, vector: bool = True) -> None:
    """Every table; ``vector=False`` leaves out the vector column (Cassandra 5.0's only)."""
    for stmt in [
        f"CREATE TYPE {ks}.addr (street text, num int, tags frozen<set<text>>)",
        f"""CREATE TABLE {ks}.everything (
            pk int, ck text, s_static int static,
            a ascii, b bigint, bl blob, bo boolean, d date, de decimal, db double, du duration,
            f float, i inet, it int, si smallint, t text, tm time, ts timestamp, tu timeuuid,
            ti tinyint, u uuid, vc varchar, vi varint, {"vec vector<float, 3>," if vector else ""}
            l list<int>, st set<text>, m map<text, int>,
            fl frozen<list<int>>, fs frozen<set<int>>, fm frozen<map<int, text>>,
            tup tuple<int, text>, ud addr, fud frozen<addr>,
            PRIMARY KEY ((pk), ck)) WITH CLUSTERING ORDER BY (ck DESC)""",
        f"CREATE TABLE {ks}.counts (pk int, ck int, hits counter, misses counter, PRIMARY KEY (pk, ck))",
        f"CREATE TABLE {ks}.keys_only (pk int, ck int, PRIMARY KEY (pk, ck))",
        f"CREATE TABLE {ks}.wide (pk int, ck int, v text, PRIMARY KEY ((pk), ck))",
    ]:
        session.execute(stmt)


def fill_origin(s, ks: str, base_ts: int = 1_600_000_000_000_000, *, vector: bool = True) -> None:
    """Rows with custom writetimes, TTLs, statics, per-element metadata, counters, keys only."""
    vec_col, vec_val = ("vec, ", "[0.5, 1.5, -2.0], ") if vector else ("", "")
    ins = s.prepare(f"""INSERT INTO {ks}.everything (pk, ck, a, b, bl, bo, d, de, db, du, f, i, it, si, t,
        tm, ts, tu, ti, u, vc, vi, {vec_col}l, st, m, fl, fs, fm, tup, ud, fud)
        VALUES (?, ?, 'asc', 1234567890123, 0xcafe, true, '2024-02-29', 3.14159, 2.5, 1h2m3s, 1.5,
        '10.0.0.1', ?, 7, 'text é', '12:34:56.789', '2024-01-01 00:00:00+0000', now(), 3,
        ?, 'vc', 123456789012345678901234567890, {vec_val}[1, 2, 3], {{'x', 'y'}},
        {{'k1': 1, 'k2': 2}}, [9, 8], {{4, 5}}, {{1: 'one'}}, (1, 'tup'),
        {{street: 'main', num: 1, tags: {{'a'}}}}, {{street: 'froz', num: 2, tags: {{'b'}}}})
        USING TIMESTAMP ? AND TTL ?""")
    for pk in range(6):
        for c in range(3):
            ttl = 0 if (pk + c) % 2 else 86400 + pk
            s.execute(ins, (pk, f"c{c}", pk * 10 + c, uuid.UUID(int=pk * 100 + c), base_ts + pk * 1000 + c, ttl))
    # cells with their own writetime / TTL (per element, per field, per column)
    s.execute(f"UPDATE {ks}.everything USING TIMESTAMP {base_ts + 50_000} AND TTL 7200 "
              f"SET m = m + {{'k3': 3}}, st = st + {{'z'}}, l = l + [4], it = 99, ud.num = 42 "
              "WHERE pk = 1 AND ck = 'c1'")
    s.execute(f"UPDATE {ks}.everything USING TIMESTAMP {base_ts + 60_000} SET l = l + [5, 6] "
              "WHERE pk = 1 AND ck = 'c1'")
    s.execute(f"DELETE m['k1'] FROM {ks}.everything USING TIMESTAMP {base_ts + 70_000} WHERE pk = 2 AND ck = 'c0'")
    # statics: with rows, and a partition with static data only
    s.execute(f"UPDATE {ks}.everything USING TIMESTAMP {base_ts + 5} SET s_static = 11 WHERE pk = 0")
    s.execute(f"UPDATE {ks}.everything USING TIMESTAMP {base_ts + 6} AND TTL 9000 SET s_static = 12 WHERE pk = 100")
    # a row made by UPDATE only, and a row with a primary key only
    s.execute(f"UPDATE {ks}.everything USING TIMESTAMP {base_ts + 7} SET t = 'upd' WHERE pk = 101 AND ck = 'u'")
    s.execute(f"INSERT INTO {ks}.everything (pk, ck) VALUES (102, 'k') USING TIMESTAMP {base_ts + 8}")
    for pk in range(4):
        for ck in range(3):
            s.execute(f"UPDATE {ks}.counts SET hits = hits + {pk + ck + 1}, misses = misses - 2 "
                      f"WHERE pk = {pk} AND ck = {ck}")
    for pk in range(5):
        s.execute(f"INSERT INTO {ks}.keys_only (pk, ck) VALUES ({pk}, {pk})")
    wide = s.prepare(f"INSERT INTO {ks}.wide (pk, ck, v) VALUES (?, ?, ?) USING TIMESTAMP ?")
    for ck in range(BIG_PARTITION_ROWS):  # one partition of several pages
        s.execute(wide, (7, ck, f"v{ck}", base_ts + ck))
    for pk in range(200):
        s.execute(wide, (1000 + pk, 0, "small", base_ts))


def run_settings(**kw) -> RunSettings:
    return RunSettings(**{"workers": 0, "concurrency": 4, "fetch_size": FETCH_SIZE, "splits": 16, **kw})


def migration(ks: str, **kw) -> MigrationSettings:
    run = run_settings(**kw.pop("run", {}))
    return MigrationSettings(scope=Scope(keyspaces=(ks,)), run=run, **kw)


def validation(ks: str, *, autocorrect: bool = False, **kw) -> ValidationSettings:
    run = run_settings(**kw.pop("run", {}))
    return ValidationSettings(scope=Scope(keyspaces=(ks,)), run=run,
                              params=ValidationParams(autocorrect=autocorrect, max_listed=1000), **kw)


def config_for(zdm_config, tmp_path):
    return dataclasses.replace(zdm_config, state_dir=tmp_path / "state")


def scan(session, spec) -> dict:
    """Every row of a table with its cell metadata, keyed by primary key."""
    rows = session.execute(session.prepare(spec.range_select()), (FULL_RING.start, FULL_RING.end),
                           execution_profile=session.execution_profile_clone_update(
                               EXEC_PROFILE_DEFAULT, row_factory=tuple_factory))
    return {spec.key_of(r): r for r in rows}


def assert_exact_copy(origin_session, target_session, ks: str, elapsed_s: float) -> int:
    specs = tables_in_scope(origin_session.cluster.metadata, Scope((ks,)))
    compared = 0
    for spec in specs:
        o, t = scan(origin_session, spec), scan(target_session, spec)
        assert o.keys() == t.keys(), spec.qualified
        for key, orow in o.items():
            trow = t[key]
            for c in spec.columns:
                assert orow[c.offset] == trow[c.offset], (spec.qualified, key, c.name)
                if c.kind is Kind.COUNTER:
                    continue
                width = 2 * len(c.fields) if c.kind is Kind.UDT else 2
                for i in range(0, width, 2):
                    assert orow[c.offset + 1 + i] == trow[c.offset + 1 + i], ("writetime", key, c.name)
                    ottl, tttl = orow[c.offset + 2 + i], trow[c.offset + 2 + i]
                    if isinstance(ottl, list):
                        assert [x is None for x in ottl] == [x is None for x in tttl], (key, c.name)
                        pairs = [(a, b) for a, b in zip(ottl, tttl) if a is not None]
                    else:
                        assert (ottl is None) == (tttl is None), ("ttl", key, c.name)
                        pairs = [(ottl, tttl)] if ottl is not None else []
                    for a, b in pairs:
                        assert -1 <= a - b <= elapsed_s + 1, ("ttl", key, c.name, a, b)
            compared += 1
    return compared
