"""What the CLI observes before asking the phase machine anything: :func:`gather_facts`.

The proxies report through their records in the state directory (see
:meth:`~zdm.state.store.StateStore.update_proxy`): a heartbeat about once a second,
whether they are connected to each cluster, their async-read counters, and the routing
revision they applied. A proxy counts as running when its heartbeat is recent and, if it
runs on this host, its process exists. :func:`build_status` turns state and facts into
the document `zdm status` prints (and `zdm status --json` emits); :func:`observe` does the
whole look (state, facts, records, that document) for `zdm status` and the console alike,
and :func:`transition` gathers the facts and moves the phase for `zdm phase advance`,
`zdm rollback` and the console's actions, so neither has a second implementation.

The live schemas come from the caller: ``live_schema`` is a function that reads them
(the CLI passes :func:`zdm.preflight.live_schema`), called only when a guard of the next
advance needs them. The phases never import the preflight; what reaches the guards is a
plain string, the fingerprint, and the tables in scope.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Callable, Mapping

from zdm.clusters.tls_diagnosis import insecure_settings
from zdm.config import Config
from zdm.errors import ZdmError
from zdm.clock import parse_time, utcnow
from zdm.phases.evidence import AsyncReadStats
from zdm.phases.facts import Facts, ProxyHealth
from zdm.phases.machine import Action, advance, evaluate, rollback
from zdm.phases.model import Phase
from zdm.phases.state import MigrationState

if TYPE_CHECKING:  # only its methods are called: the stores (zdm.state) sit above the phases
    from zdm.state.store import StateStore

#: A proxy whose last heartbeat is older than this is not running.
HEARTBEAT_TIMEOUT = timedelta(seconds=5)

#: ``(fingerprint, tables in scope)`` of the live schemas; raises ZdmError if unreachable.
LiveSchema = Callable[[Config], "tuple[str, list[str]]"]


def needs_live_schema(state: MigrationState) -> bool:
    """Whether the next advance's guards read the live schema: the fingerprint (0->1, and
    only once a passing preflight is there to compare it with) or the tables in scope
    (2->3 and 2->4)."""
    if state.phase == Phase.PLAN:
        return bool(state.evidence.get("preflight", {}).get("passed"))
    return state.phase == Phase.MIGRATE


def gather_facts(config: Config, store: StateStore, *, live_schema: LiveSchema | None,
                 state: MigrationState | None = None,
                 confirm_clients_on_proxy: bool = False, confirm_clients_on_target: bool = False,
                 skip_async_reads: bool = False, now: datetime | None = None,
                 on_problem: Callable[[str], None] | None = None) -> Facts:
    """Facts for one transition attempt. ``live_schema`` reads the live schemas when a guard
    needs them (:func:`needs_live_schema`); ``None`` skips the cluster round trip (rollbacks
    have no guards). A cluster that cannot be reached leaves the fingerprint and tables
    unknown (the guards say what to do) and is reported to ``on_problem``."""
    now = now or utcnow()
    state = state or store.load()
    records = store.proxy_records()
    fingerprint, tables = None, None
    if live_schema is not None and needs_live_schema(state):
        try:
            fingerprint, tables = live_schema(config)
        except ZdmError as exc:
            if on_problem:
                on_problem(f"cannot read the live schemas: {exc.message}")
    return Facts(now=now, schema_fingerprint=fingerprint,
                 proxies=tuple(proxy_health(rec, now) for rec in records.values()),
                 async_reads=sum_async_reads(records.values()), tables=tables,
                 confirm_clients_on_proxy=confirm_clients_on_proxy,
                 confirm_clients_on_target=confirm_clients_on_target,
                 skip_async_reads=skip_async_reads,
                 divergences=divergence_summary(store, records))


def divergence_summary(store: StateStore, records: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """Pending divergence records per table, and the records a proxy holds on its host that
    it has not yet shipped to a cluster state store (they are pending too)."""
    summary = store.divergences().summary()
    for name, record in records.items():
        unshipped = record.get("divergences_unshipped")
        if isinstance(unshipped, int) and unshipped > 0:
            summary[f"(on proxy {name}'s host, not yet in the state store)"] = {"unshipped": unshipped}
    return summary


def proxy_health(record: Mapping[str, Any], now: datetime,
                 timeout: timedelta = HEARTBEAT_TIMEOUT) -> ProxyHealth:
    age = heartbeat_age(record, now)
    running = age is not None and -timeout <= age <= timeout and _process_alive(record)
    return ProxyHealth(name=str(record.get("name")), running=running,
                       origin_connected=bool(record.get("origin_connected")),
                       target_connected=bool(record.get("target_connected")),
                       applied_revision=record.get("acked_revision"),
                       heartbeat_age_s=None if age is None else round(age.total_seconds(), 1))


def heartbeat_age(record: Mapping[str, Any], now: datetime) -> timedelta | None:
    try:
        return now - parse_time(record["heartbeat_at"])
    except (KeyError, TypeError, ValueError):
        return None


def sum_async_reads(records: Any) -> AsyncReadStats | None:
    """The async-read counters summed over every proxy that reports them (None if none)."""
    totals, since = [0, 0, 0], None
    seen = False
    for rec in records:
        stats = rec.get("async_reads")
        if not isinstance(stats, Mapping):
            continue
        try:
            values = [int(stats.get(k, 0)) for k in ("requests", "errors", "mismatches")]
            started = parse_time(stats["since"])
        except (KeyError, TypeError, ValueError):
            continue
        seen = True
        totals = [a + b for a, b in zip(totals, values)]
        since = started if since is None else min(since, started)
    if not seen:
        return None
    return AsyncReadStats(totals[0], totals[1], totals[2], since)


def _process_alive(record: Mapping[str, Any]) -> bool:
    """False only when the proxy runs on this host and its pid is gone."""
    pid = record.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return True
    if not _is_local(str(record.get("address", ""))):
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_local(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]") if ":" in address else address
    if not host:
        return True  # no address yet: the proxy wrote its pid, so it is on this host
    if host in ("localhost", socket.gethostname()):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_unspecified


# -- status ---------------------------------------------------------------------------------

def build_status(state: MigrationState, facts: Facts, records: Mapping[str, Mapping[str, Any]],
                 ) -> dict[str, Any]:
    """The `zdm status` document: phase, routing, proxies, evidence, next step."""
    status = state.routing_status
    health = {p.name: p for p in facts.proxies}
    proxies = []
    for name, rec in records.items():
        h = health.get(name)
        age = heartbeat_age(rec, facts.now)
        acked = rec.get("acked_revision")
        proxies.append({
            "name": name, "address": rec.get("address"), "pid": rec.get("pid"),
            "running": bool(h and h.running),
            "heartbeat_age_s": None if age is None else round(age.total_seconds(), 1),
            "origin_connected": bool(rec.get("origin_connected")),
            "target_connected": bool(rec.get("target_connected")),
            "acked_revision": acked,
            "routing_applied": acked is not None and acked >= status.revision,
            "async_reads": rec.get("async_reads"),
            "workers": rec.get("workers"),
            "client_connections": rec.get("client_connections"),
            # over the instance's last second: requests/s, error rate, p99 by cluster, divergences
            "live": rec.get("live") if h and h.running else None,
            "metrics_port": rec.get("metrics_port"),
        })
    async_reads = facts.async_reads
    return {
        "phase": int(state.phase), "phase_name": state.phase.name,
        "title": state.phase.title, "description": state.phase.description,
        "entered_at": state.entered_at.isoformat() if state.entered_at else None,
        "revision": state.revision,
        "routing": {**state.routing.to_dict(), "revision": status.revision,
                    "applied": status.applied,
                    "lagging": [p["name"] for p in proxies if not p["routing_applied"]]
                    if not status.applied else []},
        "proxies": proxies,
        "async_reads": None if async_reads is None else {
            "requests": async_reads.requests, "errors": async_reads.errors,
            "mismatches": async_reads.mismatches, "since": async_reads.since.isoformat()},
        "evidence": {k: dict(v) for k, v in sorted(state.evidence.items())},
        "divergences": facts.divergences,
        "next": next_step(state, facts),
    }


def next_step(state: MigrationState, facts: Facts) -> dict[str, Any]:
    """What the operator should do now, with the exact command."""
    if state.phase == Phase.CUTOVER:
        return {"command": None, "allowed": False,
                "summary": "the migration is complete: clients use target directly",
                "reasons": []}
    if not state.routing_status.applied:
        return {"command": "zdm phase confirm-routing", "allowed": True,
                "summary": f"wait for every proxy to apply routing revision "
                           f"{state.routing_status.revision}", "reasons": []}
    verdict = evaluate(state, facts, action="advance")
    reasons = [{"what": r.what, "todo": r.todo} for r in verdict.reasons]
    if verdict.allowed:
        assert verdict.dest is not None
        return {"command": "zdm phase advance", "allowed": True,
                "summary": f"advance to {verdict.dest.label}", "reasons": []}
    return {"command": None, "allowed": False,
            "summary": f"before advancing from {state.phase.label}:", "reasons": reasons}


# -- one look, one move: what `zdm status`, `zdm phase advance`, `zdm rollback` and the console share

@dataclass(frozen=True)
class Observation:
    """One look at the migration: the stored state, the facts gathered for it, the proxies'
    records, and the `zdm status` document built from them (``status``)."""

    state: MigrationState
    facts: Facts
    records: Mapping[str, Mapping[str, Any]]
    status: dict[str, Any]


def observe(config: Config, store: StateStore, *, live_schema: LiveSchema | None,
            now: datetime | None = None,
            on_problem: Callable[[str], None] | None = None) -> Observation:
    """Load the state, gather the facts and build the status document (with the settings
    that weaken TLS), as `zdm status` shows it."""
    state = store.load()
    facts = gather_facts(config, store, live_schema=live_schema, state=state, now=now,
                         on_problem=on_problem)
    records = store.proxy_records()
    doc = build_status(state, facts, records)
    doc["insecure_settings"] = insecure_settings(config)
    return Observation(state, facts, records, doc)


def transition(config: Config, store: StateStore, action: Action, *,
               live_schema: LiveSchema | None, operator: str, source: str,
               to: int | None = None, why: str | None = None,
               confirm_clients_on_proxy: bool = False, confirm_clients_on_target: bool = False,
               skip_async_reads: bool = False,
               on_problem: Callable[[str], None] | None = None,
               ) -> tuple[MigrationState, MigrationState]:
    """Gather the facts and advance or roll back; returns (before, after). A refusal raises
    :class:`~zdm.phases.errors.TransitionRefused` and leaves the state as it was. The routing
    change a move makes is left pending: the caller confirms it
    (:func:`~zdm.phases.machine.confirm_routing`)."""
    before = store.load()
    if action == "advance":
        facts = gather_facts(config, store, live_schema=live_schema, state=before,
                             on_problem=on_problem,
                             confirm_clients_on_proxy=confirm_clients_on_proxy,
                             confirm_clients_on_target=confirm_clients_on_target,
                             skip_async_reads=skip_async_reads)
        after = advance(store, facts, to=to, operator=operator, why=why, source=source)
    else:
        facts = gather_facts(config, store, state=before, live_schema=None)  # rollbacks have no guards
        after = rollback(store, facts, to=to, operator=operator, why=why, source=source)
    return before, after
