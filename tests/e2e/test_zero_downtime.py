"""A whole migration as it happens in the field, while an application writes and reads.

Two proxies on two hosts (127.0.0.2, 127.0.0.3: their own working directories, no file in
common) coordinate through the state in target's cluster; the operator runs every command
from a third directory; the copy runs on the Spark engine (``local[2]``) when pyspark is
installed, else on the local engine.  Beside it, an application of four threads, each a
driver connected to both proxies, writes new rows, updates rows that existed before the
migration, and reads back each write.  The operator goes through phases 0 to 5, including
a rollback from reads-on-target and a rolling restart of both proxies; at the end the
application moves to target.

What must hold: the application never saw an error or a stale read, every write it saw
acknowledged is on target with its value, and the rows it never touched arrived on target
with origin's writetimes.
"""

from __future__ import annotations

import importlib.util
import signal

import pytest

from tests.support.app import App
from tests.support.hosts import HOSTS, proxy_hosts, status, wait_for, zdm

OLD_ROWS = 3000
#: the application updates old rows below this key; those above reach target only by the copy
UPDATED_ROWS = OLD_ROWS // 2
THREADS = 4
#: how long each step may take at most (a bound, not a measure: shared machines are slow)
PATIENCE = 180.0
SPARK = importlib.util.find_spec("pyspark") is not None


@pytest.fixture()
def field(tmp_path, zdm_config, origin_session, target_session):
    hosts = proxy_hosts(tmp_path, zdm_config, origin_session, target_session, prefix="e2e", workers=1)
    setup = next(hosts)
    ins = origin_session.prepare(f"INSERT INTO {setup['keyspace']}.t (k, v) VALUES (?, ?) USING TIMESTAMP ?")
    for chunk in range(0, OLD_ROWS, 500):
        futures = [origin_session.execute_async(ins, (k, f"old-{k}", 1_000_000 + k))
                   for k in range(chunk, min(OLD_ROWS, chunk + 500))]
        for f in futures:
            f.result()
    yield setup
    next(hosts, None)


def test_a_migration_in_the_field_loses_nothing_and_the_application_never_notices(
        field, zdm_config, origin_session, target_session):
    ks, port, operator = field["keyspace"], field["port"], field["operator"]
    names = {f"{h}:{port}" for h in HOSTS}

    def running() -> set[str]:
        return {p["name"] for p in status(operator)["proxies"] if p["running"]}

    def clients_on(host: str) -> int:
        return next((p["client_connections"] or 0 for p in status(operator)["proxies"]
                     if p["name"] == f"{host}:{port}" and p["running"]), 0)

    for host in HOSTS:
        field["start"](host)
    wait_for(lambda: running() == names, timeout=PATIENCE, what="both proxies registered and running")

    zdm(operator, "preflight")
    zdm(operator, "phase", "advance")  # 0 -> 1: dual writes
    app = App(ks, (list(HOSTS), port), threads=THREADS, updated_rows=UPDATED_ROWS)
    app.start()
    wait_for(lambda: app.ops >= 200, timeout=PATIENCE, what="the application under way")
    zdm(operator, "phase", "advance", "--confirm-clients-on-proxy")  # 1 -> 2
    engine = ["--engine", "spark", "--master", "local[2]"] if SPARK else []
    zdm(operator, "migrate", *engine, "--no-progress")
    zdm(operator, "validate", "--no-progress")

    zdm(operator, "phase", "advance")  # 2 -> 3: async dual reads
    wait_for(lambda: ((status(operator)["async_reads"] or {}).get("requests", 0) >= 150),
             timeout=PATIENCE, what="async reads compared")
    zdm(operator, "phase", "advance")  # 3 -> 4: reads from target
    ops = app.ops
    wait_for(lambda: app.ops >= ops + 100, timeout=PATIENCE, what="the application reading from target")
    zdm(operator, "rollback", "--to", "2")  # something looked wrong: reads back on origin
    zdm(operator, "phase", "advance", "--skip-async-reads")  # 2 -> 4
    busy = {p["name"]: p for p in status(operator)["proxies"]}
    assert set(busy) == names

    # a rolling restart of the proxies, one host at a time, under load
    for host in HOSTS:
        proc = field["procs"][host]
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        field["start"](host)
        wait_for(lambda: running() == names, timeout=PATIENCE, what=f"{host} back and running")
        # as an operator does: the next proxy goes down only once every driver is back on this one
        wait_for(lambda: clients_on(host) >= THREADS, timeout=PATIENCE,
                 what=f"the application's drivers reconnected to {host}")
        ops = app.ops
        wait_for(lambda: app.ops >= ops + 50, timeout=PATIENCE, what="the application after the restart")

    zdm(operator, "validate", "--final", "--no-progress")
    app.switch_to(["127.0.0.1"], zdm_config.target.port)  # the cutover: straight to target
    ops = app.ops
    wait_for(lambda: app.ops >= ops + 100, timeout=PATIENCE, what="the application on target")
    zdm(operator, "phase", "advance", "--confirm-clients-on-target")  # 4 -> 5
    app.stop()
    assert status(operator)["phase"] == 5

    assert app.errors == [], app.errors[:10]
    assert app.misreads == [], app.misreads[:10]
    assert app.ops > 1000
    get = f"SELECT v, writetime(v) AS wt FROM {ks}.t WHERE k = ?"
    on_target, on_origin = target_session.prepare(get), origin_session.prepare(get)
    rows = {k: target_session.execute(on_target, (k,)).one() for k in range(OLD_ROWS)}
    for k, ack in app.acked.items():
        row = rows.get(k) or target_session.execute(on_target, (k,)).one()
        assert row is not None and row.v == ack.value, (k, ack, row)
        if ack.via_proxy:  # a dual write: the same value and writetime on both clusters
            assert tuple(origin_session.execute(on_origin, (k,)).one()) == tuple(row), k
    assert any(k < UPDATED_ROWS for k in app.acked), "the application updated no old row"
    untouched = [k for k in range(OLD_ROWS) if k not in app.acked]
    assert len(untouched) >= OLD_ROWS - UPDATED_ROWS
    for k in untouched:  # copied, with origin's writetimes
        assert (rows[k].v, rows[k].wt) == (f"old-{k}", 1_000_000 + k), (k, rows[k])
    total = target_session.execute(f"SELECT count(*) FROM {ks}.t", timeout=60).one().count
    assert total == OLD_ROWS + len([k for k in app.acked if k >= OLD_ROWS])
