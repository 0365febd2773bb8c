"""StateStore: atomic writes, damage detection, compare-and-swap, locking, journal, acks."""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zdm.errors import ZdmError
from zdm.phases import (ConcurrentModification, Facts, MigrationState, Phase, PreflightEvidence,
                        StateCorrupt, UnknownProxy, advance, record_evidence, with_evidence)
from zdm.phases.state import checksum, encode
from zdm.state import FileStateStore, StateStore

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def bump(store: StateStore, n: int = 1) -> MigrationState:
    for i in range(n):
        state = record_evidence(store, PreflightEvidence(True, f"fp{i}", T0), "tester", now=T0)
    return state


def test_load_without_a_file_is_the_initial_state_and_writes_nothing(tmp_path):
    store = FileStateStore(tmp_path / "state")
    state = store.load()
    assert (state.phase, state.revision, state.evidence) == (Phase.PLAN, 0, {})
    assert state.routing_status.applied
    assert not store.path.exists() and store.state_stamp() is None


def test_write_round_trips_with_stable_sorted_bytes(tmp_path):
    store = FileStateStore(tmp_path)
    state = bump(store, 2)
    assert store.load() == state
    data = store.path.read_bytes()
    assert encode(store.load()) == data
    doc = json.loads(data)
    assert list(doc) == sorted(doc) and list(doc["state"]) == sorted(doc["state"])
    assert doc["checksum"] == checksum(doc["state"])
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_failed_replace_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch):
    store = FileStateStore(tmp_path)
    bump(store)
    before = store.path.read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        bump(store)
    assert store.path.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_state_stamp_changes_on_every_write(tmp_path):
    store = FileStateStore(tmp_path)
    bump(store)
    stamp = store.state_stamp()
    bump(store)
    assert store.state_stamp() != stamp


def _damage_checksum(data: bytes) -> bytes:
    doc = json.loads(data)
    doc["state"]["phase"] = 4
    return json.dumps(doc).encode()


def _damage_routing_consistently(data: bytes) -> bytes:
    doc = json.loads(data)
    doc["state"]["routing"] = {"primary": "target", "read_mode": "primary_only"}
    doc["checksum"] = checksum(doc["state"])
    return json.dumps(doc).encode()


def _damage_evidence_consistently(data: bytes) -> bytes:
    doc = json.loads(data)
    doc["state"]["evidence"]["preflight"]["at"] = "yesterday"
    doc["checksum"] = checksum(doc["state"])
    return json.dumps(doc).encode()


def _future_format(data: bytes) -> bytes:
    doc = json.loads(data)
    doc["format"] = 99
    return json.dumps(doc).encode()


DAMAGE = [
    ("truncated", lambda d: d[: len(d) // 2], "not valid JSON"),
    ("empty", lambda d: b"", "not valid JSON"),
    ("bad-json", lambda d: d.replace(b"{", b"[", 1), "not valid JSON"),
    ("not-utf8", lambda d: b"\xff\xfe" + d, "not valid JSON"),
    ("not-a-state", lambda d: b'{"hello": 1}', "not a zdm state document"),
    ("checksum-mismatch", _damage_checksum, "checksum mismatch"),
    ("routing-disagrees-with-phase", _damage_routing_consistently, "does not match phase"),
    ("malformed-evidence", _damage_evidence_consistently, "invalid content"),
    ("future-format", _future_format, "format 99"),
]


@pytest.mark.parametrize("damage, detail", [d[1:] for d in DAMAGE], ids=[d[0] for d in DAMAGE])
def test_a_damaged_file_is_refused_and_never_overwritten(tmp_path, damage, detail):
    store = FileStateStore(tmp_path)
    bump(store)
    store.path.write_bytes(damage(store.path.read_bytes()))
    before = store.path.read_bytes()
    with pytest.raises(StateCorrupt) as info:
        store.load()
    assert detail in info.value.message and str(store.path) in info.value.message
    assert "will not overwrite" in info.value.hint and isinstance(info.value, ZdmError)
    with pytest.raises(StateCorrupt):
        bump(store)
    with pytest.raises(StateCorrupt):
        advance(store, Facts(), operator="tester")
    with pytest.raises(StateCorrupt):
        store.write(MigrationState(revision=2), expected_revision=1)
    assert store.path.read_bytes() == before


ORIGINAL = with_evidence(with_evidence(MigrationState(), PreflightEvidence(True, "fp", T0),
                                      operator="o", at=T0),
                        PreflightEvidence(False, "fp2", T0, "ünïcode"), operator="o", at=T0)
GOOD = encode(ORIGINAL)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pos=st.integers(0, len(GOOD) - 1), byte=st.integers(0, 255))
def test_any_single_byte_change_is_detected_or_harmless(tmp_path, pos, byte):
    store = FileStateStore(tmp_path)
    store.path.write_bytes(GOOD[:pos] + bytes([byte]) + GOOD[pos + 1:])
    try:
        loaded = store.load()
    except StateCorrupt:
        return
    assert loaded == ORIGINAL  # e.g. whitespace between tokens changed


def test_optimistic_write_with_a_stale_revision_is_refused(tmp_path):
    store = FileStateStore(tmp_path)
    stale = store.load()
    bump(store)
    before = store.path.read_bytes()
    with pytest.raises(ConcurrentModification) as info:
        store.write(with_evidence(stale, PreflightEvidence(True, "x", T0), operator="o"),
                    expected_revision=stale.revision)
    assert (info.value.expected, info.value.found) == (0, 1)
    assert store.path.read_bytes() == before


def test_a_write_must_be_exactly_the_next_revision(tmp_path):
    store = FileStateStore(tmp_path)
    with pytest.raises(ValueError, match="must follow"):
        with store.transaction() as txn:
            txn.commit(MigrationState(revision=5))
    assert not store.path.exists()


def test_two_optimistic_writers_one_wins(tmp_path):
    stores = [FileStateStore(tmp_path), FileStateStore(tmp_path)]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def writer(store: StateStore, tag: str) -> None:
        state = store.load()
        barrier.wait()
        try:
            store.write(with_evidence(state, PreflightEvidence(True, tag, T0), operator=tag),
                        expected_revision=state.revision)
            outcomes.append("won")
        except ConcurrentModification:
            outcomes.append("lost")

    threads = [threading.Thread(target=writer, args=(s, f"w{i}")) for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["lost", "won"]
    assert stores[0].load().revision == 1
    assert len(stores[0].read_journal()) == 0


def _worker(state_dir: str, n: int) -> None:
    store = FileStateStore(state_dir)
    for _ in range(n):
        with store.transaction() as txn:
            txn.commit(with_evidence(txn.state, PreflightEvidence(True, str(os.getpid()), T0),
                                     operator=str(os.getpid())),
                       journal={"pid": os.getpid(), "revision": txn.state.revision + 1})


def test_concurrent_processes_serialize_through_the_lock(tmp_path):
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_worker, args=(str(tmp_path), 15)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    store = FileStateStore(tmp_path)
    assert store.load().revision == 60
    assert [e["revision"] for e in store.read_journal()] == list(range(1, 61))


def test_a_held_lock_times_out_with_a_clear_error(tmp_path):
    holder, waiter = FileStateStore(tmp_path), FileStateStore(tmp_path, lock_timeout=0.1)
    with holder.transaction():
        with pytest.raises(ZdmError, match="locked by another zdm command"):
            with waiter.transaction():
                pass


def test_journal_gets_one_json_line_per_change(tmp_path):
    store = FileStateStore(tmp_path)
    bump(store, 3)
    lines = store.journal_path.read_text().splitlines()
    assert len(lines) == 3
    entry = json.loads(lines[-1])
    assert entry["event"] == "evidence" and entry["kind"] == "preflight"
    assert entry["operator"] == "tester" and entry["revision"] == 3
    assert store.read_journal(limit=1) == [entry]


# -- proxies ----------------------------------------------------------------------------

def test_proxy_registration_and_acks(tmp_path):
    store = FileStateStore(tmp_path)
    store.register_proxy("p1", "10.0.0.1:9042")
    store.register_proxy("p2", "10.0.0.2:9042")
    assert store.routing_acks() == {"p1": None, "p2": None}
    store.ack_routing("p1", 0)
    assert store.routing_acks() == {"p1": 0, "p2": None}
    lag = {p.name: p for p in store.proxy_lag()}
    assert not lag["p1"].lagging and lag["p2"].lagging and lag["p1"].address == "10.0.0.1:9042"
    assert not store.path.exists(), "acks never touch the main state file"
    store.register_proxy("p1", "10.0.0.9:9042")  # a restart has applied nothing yet
    assert store.routing_acks()["p1"] is None
    store.deregister_proxy("p2")
    assert set(store.routing_acks()) == {"p1"}
    store.register_proxy("127.0.0.1:14002", "127.0.0.1:14002")  # the config's default name
    store.ack_routing("127.0.0.1:14002", 0)
    assert store.routing_acks()["127.0.0.1:14002"] == 0


def test_ack_from_an_unknown_or_badly_named_proxy_is_refused(tmp_path):
    store = FileStateStore(tmp_path)
    with pytest.raises(UnknownProxy):
        store.ack_routing("ghost", 1)
    with pytest.raises(ZdmError, match="invalid proxy name"):
        store.register_proxy("../etc", "x")


def test_an_unreadable_ack_file_counts_as_lagging(tmp_path):
    store = FileStateStore(tmp_path)
    store.register_proxy("p1", "a")
    (store.proxies_dir / "p1.json").write_text("{broken")
    assert store.routing_acks() == {"p1": None}


def test_wait_for_acks(tmp_path):
    store = FileStateStore(tmp_path)
    store.register_proxy("p1", "a")
    store.register_proxy("p2", "b")
    store.ack_routing("p1", 3)
    assert store.wait_for_acks(3, timeout=0.05, poll=0.01) == ["p2"]
    timer = threading.Timer(0.05, store.ack_routing, args=("p2", 4))
    timer.start()
    try:
        assert store.wait_for_acks(3, timeout=5, poll=0.01) == []
    finally:
        timer.join()
    assert FileStateStore(tmp_path / "none").wait_for_acks(1, timeout=0) == []


def test_naive_timestamps_are_taken_as_utc(tmp_path):
    store = FileStateStore(tmp_path)
    record_evidence(store, PreflightEvidence(True, "fp", datetime(2024, 1, 1)), "t",
                    now=datetime(2024, 1, 1) + timedelta(hours=1))
    assert store.load().evidence["preflight"]["at"] == "2024-01-01T00:00:00.000000+00:00"
