"""The demo: a whole zero-downtime migration on the configured clusters (the sandbox).

An "application" writes and reads orders the whole time, through the proxy from
phase 1 on, while the operator's steps run exactly as the CLI runs them: preflight,
proxy, phases 1 and 2, copy and validation of the pre-existing orders, async dual
reads, reads from target, a final validation and the cutover.  At the end every
write the application saw acknowledged is checked on target: none may be missing.
The application also tags pre-existing orders (a non-frozen set) while they are being
copied: from an origin before Cassandra 5.0 that set takes the copy's fallback, which
must lose to those live tags.

It uses its own keyspace (``zdm_demo``) and its own state directory, so it never
touches a real migration's state.
"""

from __future__ import annotations

import dataclasses
import random
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable

from zdm.config import ClusterConfig, Config, ScopeConfig
from zdm.clusters.connect import describe, session
from zdm.errors import ZdmError
from zdm.clusters.connect import ConnectError
from zdm.migrate import MigrationSettings, RunSettings, migrate as run_migrate
from zdm.phases import confirm_routing
from zdm.phases.live import transition
from zdm.preflight import live_schema, record_preflight, run_preflight
from zdm.proxy.background import BackgroundProxy
from zdm.sandbox import local
from zdm.state import FileStateStore
from zdm.validate import ValidationSettings, validate as run_validate

DEMO_KEYSPACE = "zdm_demo"
OPERATOR = "zdm-demo"


@dataclass
class DemoReport:
    pre_existing: int = 0
    copied: int = 0
    app_writes: int = 0
    app_reads: int = 0
    app_errors: int = 0
    read_misses: int = 0
    missing_on_target: int = 0
    origin_rows: int = 0
    target_rows: int = 0
    phases: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return (self.missing_on_target == 0 and self.read_misses == 0 and self.app_errors == 0
                and self.origin_rows == self.target_rows)


class _Application:
    """A client of the proxy: inserts orders and reads back ones it saw acknowledged."""

    def __init__(self, config: Config, port: int, rate: float,
                 history: list[tuple[int, uuid.UUID]]) -> None:
        from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
        from cassandra.policies import RoundRobinPolicy

        profile = ExecutionProfile(load_balancing_policy=RoundRobinPolicy(), request_timeout=20)
        self.cluster = Cluster(["127.0.0.1"], port=port, execution_profiles={EXEC_PROFILE_DEFAULT: profile},
                               **application_connection(config))
        self.session = self.cluster.connect(DEMO_KEYSPACE)
        self.insert = self.session.prepare(
            "INSERT INTO orders (customer, order_id, item, qty, tags) VALUES (?, ?, ?, ?, ?)")
        self.tag = self.session.prepare(
            "UPDATE orders SET tags = tags + ? WHERE customer = ? AND order_id = ?")
        self.history = history
        self.select = self.session.prepare(
            "SELECT item FROM orders WHERE customer = ? AND order_id = ?")
        self.rate = rate
        self.acknowledged: list[tuple[int, uuid.UUID]] = []
        self.reads = self.writes = self.errors = self.misses = self.tags = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-application", daemon=True)
        self._rng = random.Random(1)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                self._one()
            except Exception:  # noqa: BLE001 - counted; the demo fails on any error
                self.errors += 1
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))

    def _one(self) -> None:
        rng = self._rng
        if self.history and rng.random() < 0.2:  # tag an old order (the copy may be at it)
            self.session.execute(self.tag, ({"reordered"}, *rng.choice(self.history)))
            self.tags += 1
            return
        if self.acknowledged and rng.random() < 0.5:
            customer, order_id = rng.choice(self.acknowledged)
            row = self.session.execute(self.select, (customer, order_id)).one()
            self.reads += 1
            if row is None:
                self.misses += 1
            return
        key = (rng.randrange(1000), uuid.uuid1())
        self.session.execute(self.insert, (*key, rng.choice(("tea", "coffee", "cake")),
                                           rng.randint(1, 9), {"web"}))
        self.acknowledged.append(key)
        self.writes += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        self.cluster.shutdown()


def application_connection(config: Config) -> dict:
    """How the demo's application connects to the proxy, from the configuration alone: with TLS
    when ``proxy.tls`` is set (trusting ``proxy.tls.ca_file``, else this machine's CAs, and
    checking the proxy's host name), and with the credentials a client of this proxy presents
    (target's when target requires a login, unless ``forward_client_credentials_to_origin``)."""
    import ssl

    from cassandra.auth import PlainTextAuthProvider

    out: dict = {}
    tls = config.proxy.tls
    if tls is not None:
        if tls.require_client_auth:
            raise ZdmError("the demo's application has no client certificate, and proxy.tls."
                           "require_client_auth asks for one",
                           hint="set proxy.tls.require_client_auth: false for the demo")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if tls.ca_file is not None:
            ctx.load_verify_locations(cafile=str(tls.ca_file))
        else:
            ctx.load_default_certs()
        out["ssl_context"] = ctx
    origin, target = config.origin.credentials, config.target.credentials
    credentials = (origin or target) if config.proxy.forward_client_credentials_to_origin else \
        (target or origin)
    if credentials:
        out["auth_provider"] = PlainTextAuthProvider(*credentials)
    return out


def _prepare_data(config: Config, rows: int) -> list[tuple[int, uuid.UUID]]:
    ddl = (f"CREATE KEYSPACE {DEMO_KEYSPACE} WITH replication = "
           "{'class': 'SimpleStrategy', 'replication_factor': 1}",
           f"CREATE TABLE {DEMO_KEYSPACE}.orders (customer int, order_id timeuuid, item text, qty int, "
           "tags set<text>, PRIMARY KEY (customer, order_id))")
    for cfg, name in ((config.origin, "origin"), (config.target, "target")):
        with session(cfg, name=name) as s:
            s.execute(f"DROP KEYSPACE IF EXISTS {DEMO_KEYSPACE}", timeout=60)
            for statement in ddl:
                s.execute(statement, timeout=60)
    from cassandra.concurrent import execute_concurrent_with_args

    with session(config.origin, name="origin") as s:
        insert = s.prepare(f"INSERT INTO {DEMO_KEYSPACE}.orders (customer, order_id, item, qty, tags) "
                           "VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ? AND TTL ?")
        week_ago = int((time.time() - 7 * 86400) * 1_000_000)
        args = [(i % 1000, uuid.uuid1(), "history", i % 9 + 1, {"shop", f"batch{i % 7}"},
                 week_ago + i, 86400 * 30 if i % 5 == 0 else 0) for i in range(rows)]
        execute_concurrent_with_args(s, insert, args, concurrency=64, raise_on_first_error=True)
    return [a[:2] for a in args]


def _release(cfg: ClusterConfig, name: str) -> str:
    with session(cfg, name=name) as s:
        return "Cassandra " + s.execute("SELECT release_version FROM system.local").one()[0]


def _count(cfg: ClusterConfig, name: str) -> set[tuple[int, uuid.UUID]]:
    from cassandra.query import SimpleStatement

    with session(cfg, name=name) as s:
        rows = s.execute(SimpleStatement(f"SELECT customer, order_id FROM {DEMO_KEYSPACE}.orders",
                                         fetch_size=5000), timeout=120)
        return {(r.customer, r.order_id) for r in rows}


def _validation_summary(report) -> str:
    t = report.tables[0]
    how = f", {', '.join(t.contents_only)} by contents" if t.contents_only else ""
    return (f"{t.rows_origin} rows on origin and {t.rows_target} on target agree "
            f"({t.live_resolved} live writes re-read, 0 differences{how}) in {report.elapsed_s:.1f}s")


def origin_of_release(config: Config, version: str, port: int, *,
                      on_step: Callable[[str], None] = lambda m: None):
    """``config`` with an origin running Cassandra ``version``: the configured origin if it
    does, else a sandbox node of that release on ``port`` (started if needed, in
    .zdm/demo-origin-VERSION).  Returns (config, the node if started here, else None)."""
    from pathlib import Path

    try:
        if _release(config.origin, "origin") == f"Cassandra {version}":
            return config, None
    except ConnectError:
        pass
    spec, started = local.single_node("origin", version, port, Path(".zdm") / f"demo-origin-{version}",
                                      on_step=on_step)
    return dataclasses.replace(config, origin=ClusterConfig(port=port)), spec if started else None


def demo_state(config: Config) -> tuple[Config, FileStateStore]:
    """The demo's configuration (its keyspace, its own state directory beside the
    configured one) and a fresh state store there, any earlier demo's state removed."""
    state_dir = config.state_dir.parent / "demo"
    shutil.rmtree(state_dir, ignore_errors=True)
    config = dataclasses.replace(config, scope=ScopeConfig(keyspaces=(DEMO_KEYSPACE,)), state_dir=state_dir)
    return config, FileStateStore(state_dir)


def run(config: Config, say: Callable[[str], None], *, rows: int = 5000, rate: float = 100.0,
        async_reads: int = 100, prepared: tuple[Config, FileStateStore] | None = None,
        pause: float = 0.0) -> DemoReport:
    """Run the demo; ``say`` receives one line per step.  ``prepared``: the demo's
    :func:`demo_state`, made beforehand (the console shows it from the start); ``pause``:
    seconds to wait after each phase change, for people watching."""
    started = time.monotonic()
    config, store = prepared if prepared is not None else demo_state(config)
    report = DemoReport(pre_existing=rows)
    work = RunSettings(workers=0, concurrency=4)

    def step(phase_to: int | None = None, **flags) -> None:
        _, after = transition(config, store, "advance", live_schema=live_schema, operator=OPERATOR,
                              source="demo", to=phase_to, why="demo", **flags)
        if not after.routing_status.applied:
            after = confirm_routing(store, operator=OPERATOR, timeout=10, source="demo")
        report.phases.append(after.phase.label)
        say(f"Phase {after.phase.label}: {after.phase.description}")
        time.sleep(pause)

    where = {name: describe(cfg) for name, cfg in (("origin", config.origin), ("target", config.target))}
    say(f"Origin {where['origin']} ({_release(config.origin, 'origin')}) and target "
        f"{where['target']} ({_release(config.target, 'target')}): creating {DEMO_KEYSPACE}.orders "
        f"on both, and {rows} orders on origin (a week old, some with a TTL)")
    history = _prepare_data(config, rows)

    preflight = run_preflight(config)
    record_preflight(store, preflight, OPERATOR)
    if not preflight.passed:
        raise ZdmError("the demo's preflight failed: " + preflight.summary())
    say(f"Preflight passed: {preflight.summary()}")

    proxy = BackgroundProxy(config, store=store, name="demo-proxy")
    app = None
    try:
        say(f"Proxy listening on {config.proxy.listen_host}:{proxy.port}"
            f"{' (TLS)' if config.proxy.tls else ''}; "
            f"the application now connects to it and writes {rate:g} requests/s")
        app = _Application(config, proxy.port, rate, history)
        app.start()
        time.sleep(1.5)  # the proxy publishes its health once a second
        step()
        step(confirm_clients_on_proxy=True)

        migration = run_migrate(config, MigrationSettings(run=work))
        report.copied = migration.rows_copied
        fallback = [c for t in migration.tables for c in t.fallback_columns]
        how = ("each cell with its writetime and TTL" if not fallback else
               f"each cell with its writetime and TTL, except {', '.join(fallback)}: origin cannot "
               "read its elements' writetimes, so they were written below the start of dual "
               "writes, where every live tag wins")
        say(f"Migrated {migration.rows_copied} rows (all origin had, the application's dual writes "
            f"included) in {migration.elapsed_s:.1f}s, {how}, while the application kept writing "
            f"({app.tags} tags added to old orders so far)")
        validation = run_validate(config, ValidationSettings(run=work))
        if not validation.clean:
            raise ZdmError(f"the demo's validation found {validation.differences} differences")
        say(f"Validated: {_validation_summary(validation)}")

        step()  # 3: async dual reads
        deadline = time.monotonic() + 60
        while proxy.server.stats.async_requests < async_reads and time.monotonic() < deadline:
            time.sleep(0.2)
        stats = proxy.server.stats
        time.sleep(1.2)  # let the proxy publish the counters the guard reads
        say(f"Async reads: {stats.async_requests} reads also sent to target, "
            f"{stats.async_mismatches} mismatches, {stats.async_errors} errors")
        step()  # 4: reads from target
        time.sleep(2)
        final = run_validate(config, ValidationSettings(run=work, final=True))
        if not final.clean:
            raise ZdmError(f"the demo's final validation found {final.differences} differences")
        say(f"Final validation with reads on target: {_validation_summary(final)}")
        step(confirm_clients_on_target=True)  # 5: cutover
    finally:
        if app is not None:
            app.stop()
        proxy.stop()

    report.app_writes, report.app_reads = app.writes, app.reads
    report.app_errors, report.read_misses = app.errors, app.misses
    on_target = _count(config.target, "target")
    on_origin = _count(config.origin, "origin")
    report.origin_rows, report.target_rows = len(on_origin), len(on_target)
    report.missing_on_target = len(set(app.acknowledged) - on_target)
    report.seconds = time.monotonic() - started
    return report
