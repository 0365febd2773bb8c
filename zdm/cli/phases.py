"""`zdm preflight | status | phase advance | phase confirm-routing | rollback`.

Thin: each command loads the config, gathers facts (:mod:`zdm.phases.live`), calls the
phase machine or the preflight, and renders the result. Refusals and failures are
ZdmErrors, printed by :func:`~zdm.cli.common.command` with what to do.
"""

from __future__ import annotations

import getpass
import json
import os
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from zdm.cli.common import DEFAULT_CONFIG, ConfigPath, command, config_from, console, err_console
from zdm.errors import ZdmError
from zdm.phases import MigrationState, RoutingPending, confirm_routing
from zdm.phases.live import observe, transition
from zdm.preflight import (DEFAULT_MAX_CLOCK_SKEW_S, ClusterLayout, PreflightReport, Status,
                           live_schema, record_preflight, run_preflight)
from zdm.proxy.cluster_topology import NETWORK_TOPOLOGY
from zdm.state import StateStore, open_store

phase_app = typer.Typer(help="Move the migration between phases.", no_args_is_help=True)

ToOption = Annotated[int | None, typer.Option(
    "--to", min=0, max=5, metavar="N", help="The phase to move to (0-5); default: the next one.")]
WhyOption = Annotated[str | None, typer.Option("--why", help="Why, for the journal.")]
OperatorOption = Annotated[str | None, typer.Option(
    "--operator", help="Who is doing this, for the journal; default: $USER.")]
AckTimeoutOption = Annotated[float, typer.Option(
    "--ack-timeout", min=0.0, help="Seconds to wait for every proxy to apply a new routing.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]

_STATUS_STYLE = {Status.PASS: "[green]pass[/]", Status.WARN: "[yellow]warn[/]",
                 Status.FAIL: "[bold red]FAIL[/]"}


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `zdm` app."""
    app.command("preflight")(preflight)
    app.command("status")(status)
    app.command("rollback")(rollback_cmd)
    app.add_typer(phase_app, name="phase")


def _operator(name: str | None) -> str:
    if name is not None:
        if not name.strip():
            raise ZdmError("--operator must not be empty", hint="pass --operator NAME")
        return name.strip()
    try:
        return os.environ.get("USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _store(config) -> StateStore:
    return open_store(config)


def _warn(message: str) -> None:
    err_console.print(f"[yellow]warning:[/] {escape(message)}")


# -- preflight ------------------------------------------------------------------------------

@command
def preflight(
    config: ConfigPath = DEFAULT_CONFIG,
    max_clock_skew: Annotated[float, typer.Option(
        "--max-clock-skew", min=0.0, help="Warn when a node's clock is this many seconds off.",
    )] = DEFAULT_MAX_CLOCK_SKEW_S,
    operator: OperatorOption = None,
    json_out: JsonOption = False,
) -> None:
    """Check origin and target can be migrated, and record the result.

    Connectivity, release versions, protocol version, partitioner, each cluster's nodes
    (down ones), local DC, DCs and replication factors, schema parity per table,
    how each table will be copied (exactly, or with the fallback an origin before 5.0 needs),
    what the target release refuses, counter tables and clock skew.
    """
    cfg = config_from(config)
    who = _operator(operator)
    report = run_preflight(cfg, max_clock_skew_s=max_clock_skew)
    record_preflight(_store(cfg), report, who)
    if json_out:
        typer.echo(json.dumps(report.to_dict(), indent=2, sort_keys=True))
    else:
        _print_preflight(report)
    if not report.passed:
        todos = dict.fromkeys(c.todo for c in report.failures if c.todo)
        raise ZdmError(f"preflight failed: {len(report.failures)} check(s) failed "
                       f"({', '.join(c.name for c in report.failures)})",
                       hint="\n".join(f"- {t}" for t in todos) or None)


def _print_preflight(report: PreflightReport) -> None:
    table = Table(title="Preflight", show_lines=False)
    for col in ("check", "result", "detail"):
        table.add_column(col)
    for c in report.checks:
        detail = escape(c.detail) + (f"\n[dim]→ {escape(c.todo)}[/]" if c.todo and
                                     c.status != Status.PASS else "")
        table.add_row(c.name, _STATUS_STYLE[c.status], detail)
    console.print(table)
    if report.topology:
        _print_topology(report.topology)
    for entry in report.tables:
        console.print(f"[bold]{escape(entry.name)}[/]")
        for d in entry.differences:
            console.print(f"  [red]✗[/] {escape(d)}")
        for w in entry.warnings:
            console.print(f"  [yellow]![/] {escape(w)}")
    inexact = [c for c in report.copy if not c.exact]
    if inexact:
        copy = Table(title="Copy: tables that take the fallback (the others copy exactly)")
        for col in ("table", "column", "type", "kept by the copy"):
            copy.add_column(col)
        for c in inexact:
            for i, (column, cql_type, keeps) in enumerate(c.fallback):
                copy.add_row(escape(c.name) if i == 0 else "", escape(column), escape(cql_type),
                             escape(keeps))
        console.print(copy)
    elif report.copy:
        console.print(f"Copy: all {len(report.copy)} table(s) copy exactly, every cell with its "
                      "writetime and TTL.")
    if report.passed:
        console.print(f"[green]Preflight passed[/] ({escape(report.summary())}); recorded with "
                      f"schema fingerprint {report.fingerprint}. Next: deploy the proxy "
                      "(`zdm proxy start`), then `zdm phase advance`.", soft_wrap=True)


def _print_topology(layouts: tuple[ClusterLayout, ...]) -> None:
    """One row per cluster and DC: its nodes (each named while there are few), and the
    replicas each keyspace in scope keeps there."""
    table = Table(title="Topology: nodes, and replicas per keyspace in scope")
    for col in ("cluster", "DC", "nodes", "replicas"):
        table.add_column(col)
    for lay in layouts:
        named = {dc for _, r in lay.replication if r.strategy == NETWORK_TOPOLOGY for dc, _ in r.factors}
        whole = [f"{ks} {r.strategy} {r.replication_factor}" for ks, r in lay.replication
                 if r.strategy != NETWORK_TOPOLOGY]
        rows = [(dc, lay.nodes_in(dc)) for dc in sorted(set(lay.dcs) | named)]
        for i, (dc, nodes) in enumerate(rows):
            up = [n for n in nodes if n.up]
            if not nodes:
                who = "[bold red]no node[/]"
            elif len(nodes) <= 6:
                who = ", ".join(escape(n.address) if n.up else f"[red]{escape(n.address)} DOWN[/]"
                                for n in nodes)
            else:
                who = f"{len(nodes)} nodes" + (f", [red]{len(nodes) - len(up)} down[/]"
                                               if len(up) < len(nodes) else "")
            facts = sorted({n.rack for n in nodes}) + sorted({f"Cassandra {n.release_version}" for n in nodes
                                                              if n.release_version})
            if facts:
                who += f"\n[dim]{escape(', '.join(facts))}[/]"
            replicas = [f"{ks} {r.factor(dc)}" for ks, r in lay.replication if r.factor(dc)]
            if i == 0:
                replicas += whole
            table.add_row(lay.cluster if i == 0 else "",
                          escape(dc) + (" (local)" if dc == lay.local_dc else ""), who,
                          escape(", ".join(replicas)) or "-", end_section=i == len(rows) - 1)
    console.print(table)


# -- status ---------------------------------------------------------------------------------

@command
def status(config: ConfigPath = DEFAULT_CONFIG, json_out: JsonOption = False) -> None:
    """Where the migration stands: phase, routing, proxies, evidence, and the next step."""
    cfg = config_from(config)
    doc = observe(cfg, _store(cfg), live_schema=live_schema, on_problem=_warn).status
    if json_out:
        typer.echo(json.dumps(doc, indent=2, sort_keys=True, default=str))
        return
    _print_status(doc)


def _live(live: dict | None) -> tuple[str, ...]:
    """A running proxy's last second: requests/s, error rate, p99 latency by cluster, and the
    divergences counted since it started."""
    if not live:
        return "-", "-", "-", "-", "-"
    p99 = live.get("p99_ms") or {}
    return (f"{live.get('requests_per_s', 0):g}", f"{live.get('error_rate', 0):.2%}",
            *("-" if p99.get(c) is None else f"{p99[c]:g} ms" for c in ("origin", "target")),
            str(live.get("divergences", 0)))


def _yes(flag: bool) -> str:
    return "[green]yes[/]" if flag else "[red]no[/]"


def _print_status(doc: dict[str, Any]) -> None:
    routing = doc["routing"]
    applied = ("[green]applied by every proxy[/]" if routing["applied"] else
               f"[bold red]partially applied[/]: waiting for {escape(', '.join(routing['lagging']))}"
               if routing["lagging"] else "[yellow]not yet confirmed[/]")
    lines = [f"[bold]Phase {doc['phase']} {doc['phase_name']}[/]: {escape(doc['title'])}",
             escape(doc["description"]),
             f"entered {doc['entered_at'] or '-'}; state revision {doc['revision']}",
             f"Routing: primary cluster [bold]{routing['primary']}[/], reads "
             f"{routing['read_mode']} (revision {routing['revision']}, {applied})"]
    console.print(Panel("\n".join(lines), title="zdm status", expand=False))
    for warning in doc.get("insecure_settings", ()):
        console.print(f"[bold red]INSECURE:[/] {escape(warning['what'])}\n  [dim]→ {escape(warning['todo'])}[/]")

    if doc["proxies"]:
        table = Table(title="Proxies")
        for col in ("name", "address", "running", "workers", "clients", "origin", "target", "routing"):
            table.add_column(col)
        live = Table(title="Proxies, the last second")
        for col in ("name", "req/s", "errors", "p99 origin", "p99 target", "divergences", "async reads"):
            live.add_column(col)
        for p in doc["proxies"]:
            age = "" if p["heartbeat_age_s"] is None else f" ({p['heartbeat_age_s']}s ago)"
            acked = p["acked_revision"]
            rout = ("[green]applied[/]" if p["routing_applied"] else
                    f"[bold red]LAGGING[/] (has {acked if acked is not None else 'none'}, "
                    f"needs {routing['revision']})")
            ar = p["async_reads"] or {}
            reads = (f"{ar.get('requests', 0)} req, {ar.get('errors', 0)} err, "
                     f"{ar.get('mismatches', 0)} mismatch" if ar else "-")
            table.add_row(escape(p["name"]), escape(str(p["address"] or "-")),
                          _yes(p["running"]) + age, str(p["workers"] or "-"),
                          str(p["client_connections"] if p["client_connections"] is not None else "-"),
                          _yes(p["origin_connected"]), _yes(p["target_connected"]), rout)
            live.add_row(escape(p["name"]), *_live(p["live"]), reads)
        console.print(table)
        console.print(live)
    else:
        console.print("Proxies: none registered (a proxy registers itself on `zdm proxy start`).")

    if doc["divergences"]:
        rows = "; ".join(f"{t}: {', '.join(f'{n} {k}' for k, n in kinds.items())}"
                         for t, kinds in doc["divergences"].items())
        console.print(f"[bold red]Rows recorded as divergent, pending:[/] {rows}. "
                      "Run `zdm repair`.", soft_wrap=True)

    if doc["async_reads"]:
        a = doc["async_reads"]
        console.print(f"Async reads (all proxies, since {a['since']}): {a['requests']} requests, "
                      f"{a['errors']} errors, {a['mismatches']} mismatches")

    if doc["evidence"]:
        table = Table(title="Evidence")
        for col in ("kind", "recorded", "by", "detail"):
            table.add_column(col)
        for kind, rec in doc["evidence"].items():
            detail = {k: v for k, v in rec.items() if k not in ("recorded_at", "recorded_by")}
            table.add_row(kind, str(rec.get("recorded_at", "")), escape(str(rec.get("recorded_by", ""))),
                          escape(_short(detail)))
        console.print(table)
    else:
        console.print("Evidence: none recorded yet.")

    nxt = doc["next"]
    # soft_wrap: a command split over two lines cannot be copied
    if nxt["command"]:
        console.print(f"[bold]Next:[/] {escape(nxt['summary'])}: run `{nxt['command']}`",
                      soft_wrap=True)
    else:
        console.print(f"[bold]Next:[/] {escape(nxt['summary'])}", soft_wrap=True)
        for r in nxt["reasons"]:
            console.print(f"  - {escape(r['what'])}\n    → {escape(r['todo'])}", soft_wrap=True)


def _short(detail: dict[str, Any]) -> str:
    def fmt(v: Any) -> str:
        return v[:19] + "…" if isinstance(v, str) and v.startswith("sha256:") else str(v)
    text = ", ".join(f"{k}={fmt(v)}" for k, v in detail.items() if k != "at")
    return text if len(text) <= 120 else text[:117] + "..."


# -- transitions ----------------------------------------------------------------------------

def _finish_routing(store: StateStore, before: MigrationState, after: MigrationState,
                    operator: str, ack_timeout: float) -> None:
    console.print(f"{'Advanced' if after.phase > before.phase else 'Rolled back'} from "
                  f"{before.phase.label} to [bold]{after.phase.label}[/] (state revision "
                  f"{after.revision}).")
    if after.routing_status.applied:
        return
    console.print(f"Routing changed (primary {after.routing.primary.value}, reads "
                  f"{after.routing.read_mode.value}); waiting up to {ack_timeout:g}s for every "
                  "proxy to apply it...")
    _confirm(store, operator, ack_timeout)


def _confirm(store: StateStore, operator: str, ack_timeout: float) -> None:
    try:
        state = confirm_routing(store, operator=operator, timeout=ack_timeout)
    except RoutingPending as exc:
        console.print(f"[bold red]Routing partially applied[/]: revision {exc.revision} is not "
                      f"yet applied by {escape(', '.join(exc.lagging))}.")
        raise
    console.print(f"[green]Routing revision {state.routing_status.revision} applied by every "
                  "proxy.[/]")


@phase_app.command("advance")
@command
def advance_cmd(
    to: ToOption = None,
    confirm_clients_on_proxy: Annotated[bool, typer.Option(
        "--confirm-clients-on-proxy", help="Confirm every client now connects through the proxy.",
    )] = False,
    confirm_clients_on_target: Annotated[bool, typer.Option(
        "--confirm-clients-on-target", help="Confirm every client now connects to target directly.",
    )] = False,
    skip_async_reads: Annotated[bool, typer.Option(
        "--skip-async-reads", help="From phase 2, move reads to target without phase 3.",
    )] = False,
    why: WhyOption = None,
    operator: OperatorOption = None,
    ack_timeout: AckTimeoutOption = 10.0,
    config: ConfigPath = DEFAULT_CONFIG,
) -> None:
    """Move to the next phase (or --to N) if every condition holds; otherwise list them all."""
    cfg = config_from(config)
    who = _operator(operator)
    store = _store(cfg)
    before, after = transition(cfg, store, "advance", live_schema=live_schema, operator=who,
                               source="cli", to=to, why=why, on_problem=_warn,
                               confirm_clients_on_proxy=confirm_clients_on_proxy,
                               confirm_clients_on_target=confirm_clients_on_target,
                               skip_async_reads=skip_async_reads)
    _finish_routing(store, before, after, who, ack_timeout)


@command
def rollback_cmd(
    to: ToOption = None,
    why: WhyOption = None,
    operator: OperatorOption = None,
    ack_timeout: AckTimeoutOption = 10.0,
    config: ConfigPath = DEFAULT_CONFIG,
) -> None:
    """Move back (4->3, 3->2, 2->0, 1->0 by default, or --to N); never from phase 5."""
    cfg = config_from(config)
    who = _operator(operator)
    store = _store(cfg)
    before, after = transition(cfg, store, "rollback", live_schema=None, operator=who,
                               source="cli", to=to, why=why)
    _finish_routing(store, before, after, who, ack_timeout)


@phase_app.command("confirm-routing")
@command
def confirm_routing_cmd(
    ack_timeout: AckTimeoutOption = 10.0,
    operator: OperatorOption = None,
    config: ConfigPath = DEFAULT_CONFIG,
) -> None:
    """Wait for every registered proxy to apply the current routing, then record it."""
    cfg = config_from(config)
    store = _store(cfg)
    state = store.load()
    if state.routing_status.applied:
        console.print(f"Routing revision {state.routing_status.revision} is already applied by "
                      "every proxy; nothing to do.")
        return
    _confirm(store, _operator(operator), ack_timeout)
