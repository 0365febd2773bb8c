"""The state stores keep one contract: the file store in state_dir and the cassandra store in
a keyspace on the sandbox's target (real Cassandra, lightweight transactions); so do the
checkpoint stores of range work."""

from __future__ import annotations

import dataclasses
import json
import uuid

import pytest

from zdm.config import Config
from zdm.errors import ZdmError
from zdm.phases import (ConcurrentModification, PreflightEvidence, StateCorrupt, UnknownProxy,
                        record_evidence)
from zdm.clock import utcnow
from zdm.ranges.ring import FULL_RING
from zdm.state import open_checkpoints, open_store


@pytest.fixture(params=["file", "cassandra"])
def config(request, zdm_config, tmp_path, target_session):
    keyspace = "zdm_state_" + uuid.uuid4().hex[:10]
    yield dataclasses.replace(zdm_config, state_store=request.param, state_keyspace=keyspace,
                              state_dir=tmp_path / "state")
    target_session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")


def test_a_change_is_a_compare_and_set_on_the_revision_journaled_with_it(config):
    with open_store(config) as one, open_store(config) as other:
        assert one.load().revision == 0 and one.read_journal() == []
        first = record_evidence(one, PreflightEvidence(True, "sha256:x", utcnow()), "alice")
        assert other.load() == first and first.revision == 1
        stale = other.load()
        with one.transaction() as a:
            a.commit(a.state.bump(utcnow()), journal={"event": "a"})
        with pytest.raises(ConcurrentModification) as refused:
            other.write(stale.bump(utcnow()), expected_revision=stale.revision, journal={"event": "b"})
        assert (refused.value.expected, refused.value.found) == (1, 2)
        if config.state_store == "cassandra":  # no lock: two read-modify-writes overlap, one wins
            with one.transaction() as a, other.transaction() as b:
                a.commit(a.state.bump(utcnow()), journal={"event": "c"})
                with pytest.raises(ConcurrentModification):
                    b.commit(b.state.bump(utcnow()), journal={"event": "d"})
        assert [e["event"] for e in other.read_journal()] == \
            ["evidence", "a"] + (["c"] if config.state_store == "cassandra" else [])
        assert other.load().revision == len(other.read_journal())
        assert len(other.read_journal(limit=1)) == 1
        stamp = other.state_stamp()
        with one.transaction() as txn:
            txn.commit(txn.state.bump(utcnow()))
        assert other.state_stamp() != stamp


def test_proxy_records_merge_and_a_deregistered_proxy_is_told(config):
    with open_store(config) as store:
        store.register_proxy("10.0.0.1:14002", "10.0.0.1:14002")
        store.update_proxy("10.0.0.1:14002", pid=7, heartbeat_at="2026-12-01T00:00:00+00:00",
                           counters={"reads": 3})
        store.ack_routing("10.0.0.1:14002", 4)
        record = store.update_proxy("10.0.0.1:14002", name="spoofed", target_connected=True)
        assert record["name"] == "10.0.0.1:14002"
        assert (record["pid"], record["counters"], record["acked_revision"], record["target_connected"]) \
            == (7, {"reads": 3}, 4, True)
        assert store.routing_acks() == {"10.0.0.1:14002": 4}
        assert [p.lagging for p in store.proxy_lag()] == [False]
        store.deregister_proxy("10.0.0.1:14002")
        with pytest.raises(UnknownProxy):
            store.update_proxy("10.0.0.1:14002", pid=8)
        assert store.proxy_records() == {}
        with pytest.raises(ZdmError, match="invalid proxy name"):
            store.register_proxy("../etc", "x")


def test_divergence_records_resolve_once(config):
    with open_store(config) as store:
        log = store.divergences()
        record = {"id": "r1", "kind": "lwt", "keyspace": "ks", "table": "t", "at": "2026-12-01T00:00:00"}
        if config.state_store == "cassandra":
            log.ship([record])
        else:
            writer = log.writer("p1")
            writer.append(record)
            writer.close()
        assert log.summary() == {"ks.t": {"lwt": 1}}
        assert log.resolve(["r1"], "repaired") == 1
        if config.state_store == "cassandra":
            log.ship([record])  # shipped again (a proxy restarted): still resolved
        assert log.summary() == {} and log.resolved_summary() == {"ks.t": {"lwt": 1}}


def test_checkpoints_keep_failed_and_carried_ranges_until_done_ranges_cover_them(config, target_session):
    plan = FULL_RING.split(4)
    with open_checkpoints(config, "validate") as store:
        last = store.start("ks.t", plan, "2026-01-01T00:00:00+00:00")
        store.mark_done(last, plan[0], 5, {"missing_on_target": 0})
        store.mark_failed(last, plan[1], "ReadTimeout: first try")
        store.mark_failed(last, plan[1], "ReadTimeout: last try")  # the last error wins
        store.mark_failed(last, plan[2], "OperationTimedOut: target")
    with open_checkpoints(config, "validate") as other:  # as the console or a resumed run reads it
        cp = other.load("ks.t")
        assert cp.done == {plan[0]: 5} and cp.carried == set()
        assert cp.failed == {plan[1]: "ReadTimeout: last try", plan[2]: "OperationTimedOut: target"}
        assert cp.remaining() == plan[1:]
        left, right = plan[2].split(2)  # a resumed run cuts the failed range differently
        other.mark_done(cp, plan[1], 1)
        other.mark_done(cp, left, 2)
    with open_checkpoints(config, "validate") as store:
        cp = store.load("ks.t")
        assert cp.failed == {plan[2]: "OperationTimedOut: target"} and cp.remaining() == [right, plan[3]]
        store.mark_done(cp, right, 3)
        assert cp.failed == {}
        assert store.load("ks.t").failed == {}
        if config.state_store == "cassandra":  # the covered failure's record is gone, not just unread
            assert not [r for r in target_session.execute(f"SELECT record FROM {config.state_keyspace}.ranges")
                        if "failed" in json.loads(r.record)]
        recheck = store.start("ks.t", plan, cp.started_at, carried=cp)
        store.mark_failed(recheck, plan[3], "NoHostAvailable")
    with open_checkpoints(config, "validate") as store:
        cp = store.load("ks.t")
    assert cp.carried == set(plan[:2]) | {left, right} == set(cp.done)
    assert cp.details == {plan[0]: {"missing_on_target": 0}} and cp.rows_done == 11
    assert cp.failed == {plan[3]: "NoHostAvailable"} and not cp.complete
    if config.state_store == "cassandra":
        records = {r.range: json.loads(r.record) for r in target_session.execute(
            f"SELECT range, record FROM {config.state_keyspace}.ranges WHERE kind = 'validate' "
            "AND tbl = 'ks.t' ALLOW FILTERING")}
        assert records[plan[3].key()] == {"failed": "NoHostAvailable"}
        assert records[plan[0].key()] == {"rows": 5, "detail": {"missing_on_target": 0}, "carried": True}
        assert len(records) == 5  # the earlier run's records are gone, covered failures with them


def test_a_failure_record_left_beside_the_ranges_that_cover_it_is_not_read_back(zdm_config, target_session):
    keyspace = "zdm_state_" + uuid.uuid4().hex[:10]
    config = dataclasses.replace(zdm_config, state_store="cassandra", state_keyspace=keyspace)
    plan = FULL_RING.split(2)
    try:
        with open_checkpoints(config, "migrate") as store:
            cp = store.start("ks.t", plan)
            for piece in plan[0].split(2):
                store.mark_done(cp, piece, 1)
            (run,) = target_session.execute(f"SELECT run FROM {keyspace}.runs")
            # as if the coordinator had died between writing the pieces and dropping the failure
            target_session.execute(f"INSERT INTO {keyspace}.ranges (kind, tbl, run, range, record) "
                                   "VALUES ('migrate', 'ks.t', %s, %s, %s)",
                                   (run.run, plan[0].key(), json.dumps({"failed": "stale"})))
            store.mark_failed(cp, plan[1], "fresh")
            loaded = store.load("ks.t")
        assert loaded.failed == {plan[1]: "fresh"} and loaded.rows_done == 2
    finally:
        target_session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")


def test_a_damaged_cluster_state_is_reported_and_never_overwritten(zdm_config, target_session):
    keyspace = "zdm_state_" + uuid.uuid4().hex[:10]
    config = dataclasses.replace(zdm_config, state_store="cassandra", state_keyspace=keyspace)
    try:
        with open_store(config) as store:
            record_evidence(store, PreflightEvidence(True, "sha256:x", utcnow()), "alice")
            target_session.execute(f"UPDATE {keyspace}.migration SET body = '{{\"phase\": ' "
                                   "WHERE id = 'migration'")
            with pytest.raises(StateCorrupt, match=f"{keyspace}.migration"):
                store.load()
            with pytest.raises(StateCorrupt):
                record_evidence(store, PreflightEvidence(True, "sha256:y", utcnow()), "bob")
        (row,) = target_session.execute(f"SELECT revision, body FROM {keyspace}.migration "
                                        "WHERE id = 'migration' LIMIT 1")
        assert (row.revision, row.body) == (1, '{"phase": ')
    finally:
        target_session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")


def test_the_cluster_store_names_an_unreachable_target(zdm_config, tmp_path):
    from zdm.config import ClusterConfig
    from tests.support.net import free_port

    config = dataclasses.replace(zdm_config, state_store="cassandra",
                                 target=ClusterConfig(port=free_port(), connect_timeout_s=2))
    with open_store(config) as store, pytest.raises(ZdmError) as failed:
        store.load()
    assert "target" in failed.value.message and failed.value.hint


def test_state_store_settings_are_checked(tmp_path):
    from zdm.config import load_config

    path = tmp_path / "zdm.yaml"
    for text, key in (("state_store: etcd\n", "state_store"), ("state_keyspace: 'a-b'\n", "state_keyspace")):
        path.write_text(text)
        with pytest.raises(ZdmError) as bad:
            load_config(path)
        assert key in str(bad.value)
    path.write_text("state_store: cassandra\nstate_keyspace: mig_1\n")
    loaded = load_config(path)
    assert (loaded.state_store, loaded.state_keyspace) == ("cassandra", "mig_1")
    assert json.loads(json.dumps(Config().state_store)) == "file"
