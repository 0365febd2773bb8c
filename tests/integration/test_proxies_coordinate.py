"""Two proxies on two addresses, each with its own working directory and no file in common,
coordinated through the state store in the sandbox's target (state_store: cassandra), and the
operator's commands run from a third directory, as on three hosts."""

from __future__ import annotations

import json
import os
import signal

import pytest

from tests.support.hosts import HOSTS, proxy_hosts, status, wait_for, zdm

class Reader:
    """An application's driver pinned to one proxy (it sees the other in system.peers, as
    drivers do, but sends every request here)."""

    def __init__(self, host: str, port: int, keyspace: str) -> None:
        from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
        from cassandra.policies import WhiteListRoundRobinPolicy

        profile = ExecutionProfile(load_balancing_policy=WhiteListRoundRobinPolicy([host]),
                                   request_timeout=20)
        self.cluster = Cluster([host], port=port, execution_profiles={EXEC_PROFILE_DEFAULT: profile},
                               connect_timeout=10)
        self.session = self.cluster.connect(keyspace)
        self.peers = {r.peer for r in self.session.execute("SELECT peer FROM system.peers")}

    def sees(self, k: int) -> bool:
        return self.session.execute("SELECT v FROM t WHERE k = %s", (k,)).one() is not None

    def close(self) -> None:
        self.cluster.shutdown()


@pytest.fixture()
def cluster_state(tmp_path, zdm_config, origin_session, target_session):
    hosts = proxy_hosts(tmp_path, zdm_config, origin_session, target_session, prefix="c", workers=2,
                        rows=50)
    setup = next(hosts)
    yield setup
    next(hosts, None)


def test_two_proxies_on_two_hosts_follow_one_state_in_the_cluster(cluster_state, origin_session,
                                                                   target_session):
    c = cluster_state
    ks, port, operator = c["keyspace"], c["port"], c["operator"]
    for host in HOSTS:
        c["start"](host)
    names = {f"{h}:{port}" for h in HOSTS}
    wait_for(lambda: {p["name"] for p in status(operator)["proxies"] if p["running"]} == names,
             what="both proxies registered and running")

    zdm(operator, "preflight")
    zdm(operator, "phase", "advance")
    zdm(operator, "phase", "advance", "--confirm-clients-on-proxy")
    zdm(operator, "migrate")
    zdm(operator, "validate")

    # a row only target has: visible through a proxy exactly when it reads from target
    target_session.execute(f"INSERT INTO {ks}.t (k, v) VALUES (1000, 'target only')")
    readers = {h: Reader(h, port, ks) for h in HOSTS}
    try:
        # a lightweight transaction only target applies, recorded on proxy A's host: the
        # operator sees it from elsewhere, the guards hold on it, and repair resolves it there
        origin_session.execute(f"INSERT INTO {ks}.t (k, v) VALUES (2000, 'origin')")
        target_session.execute(f"DELETE FROM {ks}.t WHERE k = 2000")
        applied = readers[HOSTS[0]].session.execute(
            "INSERT INTO t (k, v) VALUES (2000, 'lwt') IF NOT EXISTS").was_applied
        assert applied is False  # origin's answer, the client's truth
        wait_for(lambda: status(operator)["divergences"] == {f"{ks}.t": {"lwt": 1}},
                 what="the divergence shipped to the cluster")
        held = zdm(operator, "phase", "advance", "--skip-async-reads", check=False)
        assert held.returncode != 0 and "recorded as divergent" in held.stdout + held.stderr
        zdm(operator, "repair")
        assert status(operator)["divergences"] == {}
        assert readers[HOSTS[0]].peers == {HOSTS[1]}, "each proxy advertises the other"
        assert not any(r.sees(1000) for r in readers.values())
        out = zdm(operator, "phase", "advance", "--skip-async-reads").stdout
        assert "applied by every proxy" in out
        assert all(r.sees(1000) for r in readers.values()), "the advance switched both proxies"
        zdm(operator, "rollback", "--to", "2")
        assert not any(r.sees(1000) for r in readers.values())

        # proxy B dies without a word: the next routing change is held, on both
        killed = HOSTS[1]
        c["procs"][killed].send_signal(signal.SIGKILL)
        c["procs"][killed].wait(10)
        before = status(operator)
        refused = zdm(operator, "phase", "advance", "--skip-async-reads", check=False)
        assert refused.returncode != 0
        text = refused.stdout + refused.stderr
        assert f"proxy {killed}:{port} is registered but not running" in text, text
        assert f"zdm proxy deregister {killed}:{port}" in text
        after = status(operator)
        assert (after["phase"], after["revision"]) == (before["phase"], before["revision"])
        dead = next(p for p in after["proxies"] if p["name"] == f"{killed}:{port}")
        assert dead["running"] is False
        assert not readers[HOSTS[0]].sees(1000), "the live proxy kept origin's reads"

        # it comes back (a restart), reads the routing from the cluster, and the advance goes
        c["start"](killed)
        wait_for(lambda: all(p["running"] for p in status(operator)["proxies"]), what="B running")
        out = zdm(operator, "phase", "advance", "--skip-async-reads").stdout
        assert "applied by every proxy" in out
        readers[killed].close()
        readers[killed] = Reader(killed, port, ks)
        assert all(r.sees(1000) for r in readers.values())
    finally:
        for r in readers.values():
            r.close()
    journal = [r.entry for r in target_session.execute(
        f"SELECT entry FROM {c['state_keyspace']}.migration WHERE id = 'migration'") if r.entry]
    events = [json.loads(e)["event"] for e in reversed(journal)]
    assert events.count("routing_applied") == 3 and "advance" in events and "rollback" in events
    for host in HOSTS:  # nothing was coordinated through files
        assert not (c["dirs"][host] / "state" / "state.json").exists()
        assert not (c["dirs"][host] / "state" / "proxies").exists()


def test_a_killed_proxy_leaves_no_worker_behind(cluster_state):
    c = cluster_state
    c["start"](HOSTS[0])
    proc = c["procs"][HOSTS[0]]
    children = wait_for(lambda: _children(proc.pid), what="worker processes")
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    wait_for(lambda: not any(_alive(pid) for pid in children), timeout=15, what="workers exiting")


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"
