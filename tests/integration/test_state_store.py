"""The state stores keep one contract: the file store in state_dir and the cassandra store in
a keyspace on the sandbox's target (real Cassandra, lightweight transactions)."""

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
from zdm.state import open_store


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
