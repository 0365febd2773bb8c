"""A whole migration between real clusters while nodes die: the proof that a node's crash
costs the application no more than the requests it had in flight, and the migration nothing.

The `multinode` sandbox: a 3-node origin and a 3-node target, the keyspace at RF 3 on both
(SimpleStrategy), so that QUORUM survives any one node.  Two proxies on two hosts, each given
ONE contact point per cluster, and not the same one: the first proxy knows only origin's
first node and target's first, the second origin's second and target's second.  The
application (tests/support/app.py) writes through both proxies at QUORUM, naming each write's
writetime, and reads each write back.

The operator goes through phases 0 to 4.  While the copy runs (slowed by its rate limit so
that the kill lands in it) and the application writes, origin's first node, the first proxy's
only origin contact point, is SIGKILLed, and started again; the copy must finish and the
validation be clean.  In phase 4, where target serves the reads, target's second node, the
second proxy's only target contact point, is SIGKILLed, and started again; the final
validation must be clean.

What must hold: every request the application saw fail was in flight at a kill (started
before it, ended after it), at most one per application thread per kill, and it saw no stale
read; every write it saw acknowledged is on target and on origin with its value and the
writetime it chose; the rows it never touched arrived with origin's writetimes.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack

import pytest
from cassandra import ConsistencyLevel
from cassandra.query import SimpleStatement

from tests.support.app import App
from tests.support.hosts import HOSTS, proxy_hosts, status, wait_for, zdm
from zdm.config import Config

OLD_ROWS = 2000
#: the application updates old rows below this key; those above reach target only by the copy
UPDATED_ROWS = OLD_ROWS // 2
THREADS = 4
#: rows/s of the copy: about 20 s for OLD_ROWS, so that a node dies while it runs
COPY_RATE = 100
#: how long each step may take at most (a bound, not a measure: shared machines are slow)
PATIENCE = 240.0
#: application writes acknowledged while a node is down, before it is started again
WRITES_WHILE_DOWN = 100


@pytest.fixture()
def real_field(tmp_path, multinode):
    """Two proxies with one contact point per cluster each (a different one), the operator
    with every node; OLD_ROWS rows on origin with writetimes 1_000_000 + k."""
    from zdm.clusters.connect import session

    every = Config(origin=multinode.cluster_config("origin"), target=multinode.cluster_config("target"))
    contacts = {host: dataclasses.replace(every, **{
        c: dataclasses.replace(getattr(every, c), contact_points=(multinode.addresses(c)[i],))
        for c in ("origin", "target")}) for i, host in enumerate(HOSTS)}
    with ExitStack() as stack:
        origin = stack.enter_context(session(every.origin, name="origin"))
        target = stack.enter_context(session(every.target, name="target"))
        hosts = proxy_hosts(tmp_path, every, origin, target, prefix="rc", workers=1,
                            replication=(3, 3), contacts=contacts)
        setup = next(hosts)
        ins = origin.prepare(f"INSERT INTO {setup['keyspace']}.t (k, v) VALUES (?, ?) USING TIMESTAMP ?")
        ins.consistency_level = ConsistencyLevel.QUORUM
        for chunk in range(0, OLD_ROWS, 500):
            futures = [origin.execute_async(ins, (k, f"old-{k}", 1_000_000 + k))
                       for k in range(chunk, min(OLD_ROWS, chunk + 500))]
            for f in futures:
                f.result()
        try:
            yield {**setup, "origin": origin, "target": target, "contacts": contacts}
        finally:
            multinode.restore()  # a node a failed test left down, before the keyspaces go
            next(hosts, None)


# 9 to 11 minutes on 2 cores shared with other clusters (load 25-30), two thirds of it the two
# node restarts: above the 10 minutes every other test gets
@pytest.mark.timeout(1200)
def test_a_migration_between_real_clusters_survives_a_node_crash_on_each(real_field, multinode):
    f = real_field
    ks, port, operator = f["keyspace"], f["port"], f["operator"]
    names = {f"{h}:{port}" for h in HOSTS}
    kills: list[tuple[float, float]] = []  # (just before, just after) each SIGKILL
    began = time.monotonic()
    restarts = ThreadPoolExecutor(1)

    def step(what: str) -> None:  # where the time goes, in the output of a slow or failed run
        print(f"{time.monotonic() - began:6.1f} s  {what}  ({app.ops if app else 0} writes)", flush=True)

    def running() -> set[str]:
        return {p["name"] for p in status(operator)["proxies"] if p["running"]}

    def crash(cluster: str, address: str) -> Future:
        """SIGKILL the node while the application writes, and start it again (in the
        background: the future of its restart) once the application has had
        WRITES_WHILE_DOWN writes acknowledged without it."""
        before = time.monotonic()
        multinode.stop_node(address)
        kills.append((before, time.monotonic()))
        step(f"{cluster}'s {address} killed")
        ops = app.ops
        wait_for(lambda: app.ops >= ops + WRITES_WHILE_DOWN, timeout=PATIENCE,
                 what=f"the application writing with {cluster}'s {address} down")
        step(f"{WRITES_WHILE_DOWN} writes without it")

        def restart():
            multinode.start_node(address)
            step(f"{cluster}'s {address} up again")
        return restarts.submit(restart)

    # the proxies' one contact points: the first proxy's origin node dies in the copy, the
    # second proxy's target node in phase 4
    origin_victim = f["contacts"][HOSTS[0]].origin.contact_points[0]
    target_victim = f["contacts"][HOSTS[1]].target.contact_points[0]

    app = None
    for host in HOSTS:
        f["start"](host)
    wait_for(lambda: running() == names, timeout=PATIENCE, what="both proxies registered and running")
    step("proxies running")
    zdm(operator, "preflight")
    zdm(operator, "phase", "advance")  # 0 -> 1: dual writes
    app = App(ks, (list(HOSTS), port), threads=THREADS, updated_rows=UPDATED_ROWS,
              consistency=ConsistencyLevel.QUORUM, timestamps=True)
    app.start()
    migrate = None
    try:
        wait_for(lambda: app.ops >= 200, timeout=PATIENCE, what="the application under way")
        zdm(operator, "phase", "advance", "--confirm-clients-on-proxy")  # 1 -> 2
        step("phase 2")

        # the copy, and origin's node dying in it
        log = operator / "migrate.log"
        with log.open("w") as out:
            migrate = subprocess.Popen([sys.executable, "-m", "zdm.cli.main", "migrate", "--no-progress",
                                        "--rate-limit", str(COPY_RATE)],
                                       cwd=operator, stdout=out, stderr=subprocess.STDOUT, text=True)
        copied = f["target"].prepare(f"SELECT k FROM {ks}.t WHERE k IN ?")
        untouched = list(range(UPDATED_ROWS, OLD_ROWS, 25))  # rows only the copy writes
        wait_for(lambda: migrate.poll() is not None or f["target"].execute(copied, (untouched,)).one(),
                 timeout=PATIENCE, what="the copy under way")
        assert migrate.poll() is None, f"the copy ended before the kill:\n{log.read_text()}"
        restarted = crash("origin", origin_victim)
        migrate.wait(PATIENCE * 2)
        assert migrate.returncode == 0, f"zdm migrate failed after {origin_victim} died:\n{log.read_text()}"
        step("copied")
        restarted.result(PATIENCE)
        zdm(operator, "validate", "--no-progress")
        step("validated")

        zdm(operator, "phase", "advance")  # 2 -> 3: async dual reads
        wait_for(lambda: (status(operator)["async_reads"] or {}).get("requests", 0) >= 100,
                 timeout=PATIENCE, what="async reads compared")
        advanced = zdm(operator, "phase", "advance", check=False)  # 3 -> 4: reads from target
        assert advanced.returncode == 0, (advanced.stdout, advanced.stderr, [
            (r.name, r.fields.get("counters")) for r in f["target"].execute(
                f"SELECT name, fields FROM {f['state_keyspace']}.proxies")])
        ops = app.ops
        wait_for(lambda: app.ops >= ops + 100, timeout=PATIENCE, what="the application reading from target")
        step("phase 4")
        crash("target", target_victim).result(PATIENCE)
        zdm(operator, "validate", "--final", "--no-progress")
        step("final validation")
    finally:
        if migrate is not None and migrate.poll() is None:
            migrate.kill()
            migrate.wait(30)
        if app is not None:
            app.stop()
        restarts.shutdown()
    assert status(operator)["phase"] == 4

    print(f"{app.ops} writes acknowledged, {len(app.errors)} requests failed: "
          f"{[str(e) for e in app.errors]}")
    strays = [e for e in app.errors if not any(e.in_flight_at(k) for k in kills)]
    assert not strays, f"requests sent after a node died failed: {[str(e) for e in strays[:10]]}"
    for kill in kills:
        assert sum(e.in_flight_at(kill) for e in app.errors) <= THREADS, [str(e) for e in app.errors]
    assert app.abandoned == [] and app.misreads == [], (app.abandoned[:10], app.misreads[:10])
    assert app.ops > 1000

    # every node is up again: a QUORUM scan now waits on no dead replica
    scan = SimpleStatement(f"SELECT k, v, writetime(v) AS wt FROM {ks}.t",
                           consistency_level=ConsistencyLevel.QUORUM, fetch_size=1000)
    for cluster in ("target", "origin"):
        rows = {r.k: (r.v, r.wt) for r in f[cluster].execute(scan, timeout=120)}
        wrong = {k: (ack, rows.get(k)) for k, ack in app.acked.items()
                 if rows.get(k) != (ack.value, ack.writetime)}
        assert not wrong, f"{cluster}: {len(wrong)} acknowledged writes wrong, e.g. {list(wrong.items())[:5]}"
        old = {k: rows.get(k) for k in range(OLD_ROWS) if k not in app.acked}
        assert len(old) >= OLD_ROWS - UPDATED_ROWS
        wrong = {k: row for k, row in old.items() if row != (f"old-{k}", 1_000_000 + k)}
        assert not wrong, f"{cluster}: {len(wrong)} old rows wrong, e.g. {list(wrong.items())[:5]}"
        assert len(rows) == OLD_ROWS + len([k for k in app.acked if k >= OLD_ROWS]), cluster
    assert any(k < UPDATED_ROWS for k in app.acked), "the application updated no old row"
