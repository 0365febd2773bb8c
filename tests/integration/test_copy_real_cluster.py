"""`zdm migrate` and `zdm validate` on real multi-node clusters (the `multinode` sandbox: a
3-node origin, a 2-node target): each range read is coordinated by a replica of the range,
as the nodes' own counters show, and a node SIGKILLed mid-run costs nothing: the run goes on
on the other replicas, every row is copied and counted once, and the validation is clean."""

from __future__ import annotations

import json
import re
import struct
import threading
import time
import uuid

import pytest
from cassandra import ConsistencyLevel
from cassandra.concurrent import execute_concurrent_with_args

from tests.support.multinode import NodeSessions, direct, drop_keyspaces
from zdm.config import Config
from zdm.migrate import MigrationSettings, RunSettings
from zdm.migrate.run import migrate
from zdm.ranges.events import RangeDone
from zdm.scope import Scope
from zdm.state import open_checkpoints
from zdm.validate import ValidationSettings, validate

ROWS = 24_000
PARTITIONS = 2_400


@pytest.fixture()
def clusters(multinode, tmp_path):
    """(config, keyspace maker): zdm's configuration naming every node of both clusters."""
    config = Config(origin=multinode.cluster_config("origin"), target=multinode.cluster_config("target"),
                    state_dir=tmp_path / "state")
    made: list[str] = []

    def keyspace(origin_rf: int, target_rf: int, rows: int, *, owner: str | None = None) -> str:
        """A keyspace with table ``t`` on both clusters, ``rows`` rows on origin (in
        partitions whose replicas on origin include ``owner``, if given)."""
        ks = "cr_" + uuid.uuid4().hex[:8]
        made.append(ks)
        for cluster, rf in (("origin", origin_rf), ("target", target_rf)):
            with direct(multinode, cluster, protocol_version=4) as s:
                s.execute(f"CREATE KEYSPACE {ks} WITH replication = "
                          f"{{'class': 'SimpleStrategy', 'replication_factor': {rf}}}")
                s.execute(f"CREATE TABLE {ks}.t (pk int, ck int, v text, PRIMARY KEY (pk, ck))")
        with direct(multinode, "origin", protocol_version=4) as s:
            ins = s.prepare(f"INSERT INTO {ks}.t (pk, ck, v) VALUES (?, ?, ?) USING TIMESTAMP ?")
            ins.consistency_level = ConsistencyLevel.ALL
            per = max(1, rows // PARTITIONS)
            pks = _partitions(s.cluster.metadata, ks, owner, -(-rows // per))
            args = [(pks[i // per], i % per, f"value {i}", 1_000_000 + i) for i in range(rows)]
            for ok, result in execute_concurrent_with_args(s, ins, args, concurrency=64,
                                                            raise_on_first_error=False):
                assert ok, result
        return ks

    yield config, keyspace
    multinode.restore()
    drop_keyspaces(multinode, *made)


def _partitions(metadata, ks: str, owner: str | None, count: int) -> list[int]:
    """``count`` partition keys (int) whose replicas include ``owner`` (any: None)."""
    pks: list[int] = []
    pk = 0
    while len(pks) < count:
        if owner is None or owner in {h.address for h in metadata.get_replicas(ks, struct.pack(">i", pk))}:
            pks.append(pk)
        pk += 1
    return pks


def _run(**kw) -> RunSettings:
    return RunSettings(**{"workers": 2, "concurrency": 4, "fetch_size": 500, "splits": 48,
                          "request_timeout_s": 20.0, **kw})


def _scan_counts(multinode, ks: str) -> dict[str, tuple[int, int]]:
    """Per origin node: (range reads it coordinated, range reads it served from its own data)
    of ``ks``.t, from its own virtual tables."""
    with NodeSessions(multinode, "origin") as nodes:
        coordinated = nodes.table_count("coordinator_scan_latency", ks)
        local = nodes.table_count("local_scan_latency", ks)
    return {a: (coordinated[a], local[a]) for a in coordinated}


def test_range_reads_are_coordinated_by_a_replica_of_the_range(clusters, multinode):
    """RF 1 on origin: a range read coordinated by the one replica of its range reads only
    that node's data, so each node counts exactly as many range reads served from its own
    data as it coordinated.  Every row is on the first node, so its ranges take many more
    pages than the others': round robin would spread them over all three coordinators."""
    config, keyspace = clusters
    ks = keyspace(1, 2, 3000, owner=multinode.addresses("origin")[0])
    before = _scan_counts(multinode, ks)
    report = migrate(config, MigrationSettings(scope=Scope(keyspaces=(ks,)), run=_run(fetch_size=50),
                                               record_evidence=False))
    assert report.complete
    assert report.tables[0].rows_total == 3000
    after = _scan_counts(multinode, ks)
    delta = {a: (after[a][0] - before[a][0], after[a][1] - before[a][1]) for a in after}
    print(f"range reads per origin node (coordinated, served locally): {delta}")
    assert set(delta) == set(multinode.addresses("origin"))
    for address, (coordinated, local) in delta.items():
        assert coordinated > 0, f"{address} coordinated no range read: {delta}"
        assert coordinated == local, f"{address} coordinated reads of other nodes' ranges: {delta}"


def _run_until_killed(run_fn, kill, *, after_ranges: int, total_ranges: int):
    """Run ``run_fn(on_event)`` in a thread, call ``kill()`` once ``after_ranges`` ranges are
    done; returns (result, ranges done when the kill came)."""
    done = []
    ready = threading.Event()
    out: dict = {}

    def on_event(event) -> None:
        if isinstance(event, RangeDone):
            done.append(event)
            if len(done) >= after_ranges:
                ready.set()

    def body() -> None:
        try:
            out["result"] = run_fn(on_event)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            out["error"] = exc
        finally:
            ready.set()

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    assert ready.wait(300), "the run did not get going"
    killed_at = len(done)
    assert "result" not in out and "error" not in out and killed_at < total_ranges, \
        "the run ended before the node could be killed"
    kill()
    thread.join(600)
    assert not thread.is_alive(), "the run did not end after the node died"
    if "error" in out:
        raise out["error"]
    return out["result"], killed_at


def _bounce(multinode, victim: str):
    """What kills ``victim`` (SIGKILL), and 3 s later starts it again."""
    def kill_and_restart() -> None:
        multinode.stop_node(victim)
        time.sleep(3)
        multinode.start_node(victim)
    return kill_and_restart


def test_migrate_goes_on_when_an_origin_node_dies(clusters, multinode):
    config, keyspace = clusters
    ks = keyspace(3, 2, ROWS)
    table = f"{ks}.t"
    victim = multinode.addresses("origin")[1]
    settings = MigrationSettings(scope=Scope(keyspaces=(ks,)), record_evidence=False,
                                 run=_run(rate_limit=ROWS / 25))  # ~25 s: the kill lands mid-run
    report, killed_at = _run_until_killed(lambda on_event: migrate(config, settings, on_event),
                                          lambda: multinode.stop_node(victim),
                                          after_ranges=8, total_ranges=48)
    print(f"origin node {victim} killed after {killed_at} ranges; report: "
          f"{json.dumps(report.to_json(), default=str)[:1500]}")
    (result,) = report.tables
    assert report.complete, result.failed_ranges
    assert not result.failed_ranges
    assert result.rows_copied == ROWS  # every row counted once: none skipped, none twice
    assert result.rows_total == ROWS
    with open_checkpoints(config, "migrate") as store:
        cp = store.load(table)
        assert cp.complete and cp.rows_done == ROWS

    # the node still down: origin's two live replicas answer LOCAL_QUORUM
    check = validate(config, ValidationSettings(scope=Scope(keyspaces=(ks,)), run=_run(),
                                                record_evidence=False))
    assert check.clean, json.dumps(check.to_json(), default=str)[:2000]
    assert check.tables[0].rows_origin == ROWS
    assert check.tables[0].rows_target == ROWS


def test_validate_goes_on_when_a_target_node_dies_and_comes_back(clusters, multinode):
    """RF 2 on target: with one of its nodes down nothing is readable at LOCAL_QUORUM, so the
    validation waits, retrying, until the node is back, and then finishes clean, having
    counted every row once."""
    config, keyspace = clusters
    ks = keyspace(3, 2, ROWS)
    migrated = migrate(config, MigrationSettings(scope=Scope(keyspaces=(ks,)), run=_run(),
                                                 record_evidence=False))
    assert migrated.complete
    victim = multinode.addresses("target")[1]

    settings = ValidationSettings(scope=Scope(keyspaces=(ks,)), record_evidence=False,
                                  run=_run(rate_limit=ROWS / 25))
    check, killed_at = _run_until_killed(lambda on_event: validate(config, settings, on_event),
                                         _bounce(multinode, victim), after_ranges=8, total_ranges=48)
    print(f"target node {victim} killed after {killed_at} ranges and restarted; report: "
          f"{json.dumps(check.to_json(), default=str)[:1500]}")
    assert check.clean, json.dumps(check.to_json(), default=str)[:2000]
    (table,) = check.tables
    assert table.rows_origin == ROWS and table.rows_target == ROWS
    with open_checkpoints(config, "validate") as store:
        cp = store.load(f"{ks}.t")
        assert cp.complete and cp.rows_done == ROWS


def test_a_range_read_goes_on_from_its_last_page_on_another_replica(clusters, multinode, caplog):
    """The node serving a range read is SIGKILLed after a few pages: the read goes on from
    the next page on another replica, and hands out every row of the range exactly once."""
    import asyncio

    from zdm.migrate.range_read import range_pages
    from zdm.migrate.schema import tables_in_scope
    from zdm.ranges.context import WorkerContext
    from zdm.ranges.ring import FULL_RING

    config, keyspace = clusters
    ks = keyspace(3, 2, 6000)
    victim = multinode.addresses("origin")[2]
    ctx = WorkerContext(config, RunSettings(workers=0, fetch_size=200, request_timeout_s=10))
    try:
        (spec,) = tables_in_scope(ctx.origin.cluster.metadata, Scope(keyspaces=(ks,)))
        router = ctx.router("origin")
        plan = router.plan
        # the victim serves the read first (it is a replica of every range at RF 3)
        router.plan = lambda k, token, failed=(): sorted(
            plan(k, token, failed), key=lambda h: h.address != victim or h in failed)
        select = ctx.prepare("origin", spec.range_select())

        async def read() -> list[tuple]:
            keys = []
            pages = 0
            async for _arrived, rows in range_pages(ctx, "origin", ks, select, FULL_RING):
                keys.extend(tuple(r[1:3]) for r in rows)
                pages += 1
                if pages == 3:
                    multinode.stop_node(victim)
            return keys

        with caplog.at_level("INFO", logger="zdm.ranges"):
            keys = asyncio.run(read())
    finally:
        ctx.close()
    failovers = [r.getMessage() for r in caplog.records if r.name == "zdm.ranges"]
    print("\n".join(failovers))
    assert failovers and victim in failovers[0], failovers
    # it went on after the pages handed out before the kill (3, or 4 when one more had come)
    assert int(re.search(r"after (\d+) rows", failovers[0]).group(1)) in (600, 800)
    assert len(keys) == 6000
    assert len(set(keys)) == 6000  # not one row twice


def test_migrate_waits_out_a_target_node_that_dies_and_comes_back(clusters, multinode):
    """RF 2 on target: with one of its nodes down no write succeeds at LOCAL_QUORUM; the
    copy's batches (idempotent: each write has its timestamp) are sent again until the node
    is back, and the copy ends complete, each row counted once."""
    config, keyspace = clusters
    ks = keyspace(3, 2, ROWS)
    victim = multinode.addresses("target")[1]

    settings = MigrationSettings(scope=Scope(keyspaces=(ks,)), record_evidence=False,
                                 run=_run(rate_limit=ROWS / 25))
    report, killed_at = _run_until_killed(lambda on_event: migrate(config, settings, on_event),
                                          _bounce(multinode, victim), after_ranges=8, total_ranges=48)
    print(f"target node {victim} killed after {killed_at} ranges and restarted; report: "
          f"{json.dumps(report.to_json(), default=str)[:600]}")
    (result,) = report.tables
    assert report.complete, result.failed_ranges
    assert result.rows_copied == ROWS and result.rows_total == ROWS
    check = validate(config, ValidationSettings(scope=Scope(keyspaces=(ks,)), run=_run(),
                                                record_evidence=False))
    assert check.clean, json.dumps(check.to_json(), default=str)[:2000]
    assert check.tables[0].rows_target == ROWS
