"""The preflight's assessment: :func:`assess`, a pure function of two cluster probes.

Theory of operation: :func:`assess` takes the :class:`~zdm.preflight.probe.ClusterProbe` of
origin and of target and the scope, and returns a
:class:`~zdm.preflight.report.PreflightReport`: one :class:`~zdm.preflight.report.Check` per
concern, the schema comparison table by table (:mod:`zdm.preflight.schema`), and the copy
plan: per table, whether ``zdm migrate`` copies it exactly or takes the fallback for the
non-frozen collections and UDTs an origin before 5.0 cannot read cell by cell. The release
checks name what the target release refuses or treats differently (COMPACT STORAGE, table
options it lacks, compaction strategies it removed, a smaller protocol overlap), each with
its fix. The checks of each cluster's nodes, DCs and replication are
:mod:`zdm.preflight.topology`'s. :func:`encryption_checks` says, from the configuration alone, how zdm's own
connections to each cluster are protected. Nothing here touches a cluster: the probes
(:mod:`zdm.preflight.probe`) did, so every check is tested on probes built by hand.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Sequence

from zdm.clock import utcnow
from zdm.clusters.tls_diagnosis import insecure_settings
from zdm.config import ClusterConfig, Config, ScopeConfig
from zdm.migrate.fallback import FIDELITY
from zdm.migrate.schema import column_kind
from zdm.preflight.probe import ClusterProbe
from zdm.preflight.report import Check, PreflightReport, Status, TableCopy
from zdm.preflight.schema import SchemaSnapshot, TableDiff, diff, fingerprint, scoped
from zdm.preflight.topology import topology_checks
from zdm.releases import (COMPACT_STORAGE_REMOVED_IN, REMOVED_COMPACTION, REMOVED_OPTIONS,
                          has_element_metadata)
from zdm.releases import fmt as _fmt
from zdm.releases import parse_version
from zdm.scope import Scope

#: Warn when a node's clock is further than this from this host's (seconds). Write
#: timestamps decide which write wins; clocks that disagree make origin and target
#: resolve the same writes differently.
DEFAULT_MAX_CLOCK_SKEW_S = 0.5

ORIGIN_MIN_CASSANDRA = (2, 1, 6)
ORIGIN_MIN_DSE = (4, 7, 1)

#: DSE-specific protocol versions the driver may negotiate, as the standard version the
#: cluster is certain to support too (DSE_V1 and DSE_V2 servers all speak v4).
_DSE_PROTOCOLS = {65: 4, 66: 4}


def check_versions(origin: ClusterProbe, target: ClusterProbe) -> Check:
    problems, todo = [], ""
    if origin.dse_version:
        have, need, what = parse_version(origin.dse_version), ORIGIN_MIN_DSE, "DSE"
    else:
        have, need, what = parse_version(origin.release_version), ORIGIN_MIN_CASSANDRA, "Cassandra"
    o_rel, t_rel = parse_version(origin.release_version), parse_version(target.release_version)
    if have is None or o_rel is None or t_rel is None:
        return Check("release versions", Status.WARN,
                     f"cannot read the versions (origin {origin.product}, target {target.product})",
                     "check both clusters' versions by hand")
    if have < need:
        problems.append(f"origin runs {what} {_fmt(have)}; zdm needs {what} {_fmt(need)} or newer")
        todo = f"upgrade origin to {what} {_fmt(need)}+ first"
    if t_rel < o_rel:
        problems.append(f"target ({target.product}) is older than origin ({origin.product})")
        todo = todo or f"use a target running Cassandra {origin.release_version} or newer"
    detail = "; ".join(problems) or f"origin {origin.product}, target {target.product}"
    return Check("release versions", Status.FAIL if problems else Status.PASS, detail, todo)


def check_protocol(origin: ClusterProbe, target: ClusterProbe) -> Check:
    o = _DSE_PROTOCOLS.get(origin.protocol_version, origin.protocol_version)
    t = _DSE_PROTOCOLS.get(target.protocol_version, target.protocol_version)
    common = min(o, t)
    if common < 3:
        return Check("protocol version", Status.FAIL,
                     f"origin speaks up to v{o}, target up to v{t}; the proxy needs v3 or newer",
                     "upgrade the cluster that lacks protocol v3")
    if o == t:
        return Check("protocol version", Status.PASS,
                     f"v{common} is the highest both support: origin v{o}, target v{t}")
    return Check("protocol version", Status.WARN,
                 f"v{common} is the highest both support: origin v{o}, target v{t} (clients "
                 f"must not use v{max(o, t)})",
                 f"check that no client pins protocol v{max(o, t)}: set it to v{common} or let "
                 "the driver negotiate (drivers downgrade on their own)")


def check_partitioner(origin: ClusterProbe, target: ClusterProbe) -> Check:
    short = lambda p: p.rsplit(".", 1)[-1]  # noqa: E731
    if origin.partitioner == target.partitioner:
        return Check("partitioner", Status.PASS, short(origin.partitioner))
    return Check("partitioner", Status.FAIL,
                 f"origin uses {short(origin.partitioner)}, target {short(target.partitioner)}",
                 f"recreate target with partitioner: {origin.partitioner}")


def check_clock(probes: Sequence[ClusterProbe], max_skew_s: float) -> Check:
    samples = [(p.name, s) for p in probes for s in p.clock]
    if not samples:
        return Check("clock skew", Status.WARN, "no node answered the clock probe",
                     "check the clocks by hand (NTP) on every node")
    far = [(n, s) for n, s in samples if abs(s.skew_s) > max_skew_s]
    worst_name, worst = max(samples, key=lambda ns: abs(ns[1].skew_s))
    if far:
        nodes = ", ".join(f"{n} {s.node} {s.skew_s * 1000:+.0f} ms" for n, s in far)
        return Check("clock skew", Status.WARN,
                     f"clocks differ from this host's by more than {max_skew_s * 1000:.0f} ms: "
                     f"{nodes}",
                     "sync the clocks (NTP) of this host and every node: write timestamps decide "
                     "which write wins, on origin and target alike")
    return Check("clock skew", Status.PASS,
                 f"{len(samples)} node(s) within {max_skew_s * 1000:.0f} ms (largest "
                 f"{worst.skew_s * 1000:+.0f} ms on {worst_name} {worst.node})")


def copy_plan(origin: ClusterProbe, o_snap: SchemaSnapshot) -> tuple[TableCopy, ...]:
    """How each table will be copied: exactly when origin reads every cell's writetime and
    TTL (Cassandra 5.0+), else its non-frozen collections and UDTs take the fallback."""
    exact = has_element_metadata(origin.release_version, origin.dse_version)
    out = []
    for table in o_snap.tables():
        fallback: list[tuple[str, str, str]] = []
        if not exact:
            types = o_snap.keyspaces[table.keyspace].user_types
            keys = set(table.partition_key) | {c for c, _ in table.clustering}
            for col, cql_type in sorted(table.columns.items()):
                kind = column_kind(cql_type, types)
                if col not in keys and kind in FIDELITY:
                    fallback.append((col, cql_type, FIDELITY[kind]))
        out.append(TableCopy(table.qualified, tuple(fallback)))
    return tuple(out)


def check_copy(origin: ClusterProbe, plan: Sequence[TableCopy]) -> Check:
    inexact = [c for c in plan if not c.exact]
    if not inexact:
        return Check("copy fidelity", Status.PASS,
                     f"every table copies exactly: {origin.product} reads each cell's writetime "
                     "and TTL" if plan else "no table in scope")
    names = "; ".join(f"{c.name} ({', '.join(col for col, _, _ in c.fallback)})" for c in inexact)
    return Check("copy fidelity", Status.WARN,
                 f"{len(inexact)} of {len(plan)} table(s) take the fallback for non-frozen "
                 f"collections and UDTs, whose cells' writetimes and TTLs {origin.product} cannot "
                 f"read: {names}",
                 "nothing blocks the migration: those columns are copied by contents at a "
                 "timestamp below the start of dual writes, so no live write is lost, but their "
                 "element writetimes and TTLs are not origin's (elements copied do not expire); "
                 "validation compares their contents. Advance to phase 1 before `zdm migrate`")


def release_notes(origin: ClusterProbe, target: ClusterProbe, o_snap: SchemaSnapshot,
                  t_snap: SchemaSnapshot) -> dict[str, list[str]]:
    """Per origin table: what the target release refuses or treats differently, with the
    fix.  Options and compaction matter only for a table target still lacks (once it
    exists, it was created in a form target accepts)."""
    t_rel = parse_version(target.release_version) or (0,)
    known_options = target.schema.option_names()  # every keyspace's, system ones included
    notes: dict[str, list[str]] = {}
    for table in o_snap.tables():
        out = notes.setdefault(table.qualified, [])
        if table.compact_storage and t_rel >= COMPACT_STORAGE_REMOVED_IN:
            out.append(f"COMPACT STORAGE: Cassandra {_fmt(COMPACT_STORAGE_REMOVED_IN)}+ supports it "
                       "only minimally and creates it only while its compact_tables_enabled "
                       "guardrail allows (Astra DB refuses it): best drop it on origin first "
                       f"(`ALTER TABLE {table.qualified} DROP COMPACT STORAGE`; 4.x needs "
                       "drop_compact_storage_enabled: true) and create target's table without it")
        t_ks = t_snap.keyspaces.get(table.keyspace)
        if t_ks is not None and table.name in t_ks.tables:
            continue
        for option in sorted(set(table.options) - known_options) if known_options else ():
            why = REMOVED_OPTIONS.get(option, f"Cassandra {target.release_version} has no such "
                                              "table option")
            out.append(f"table option {option}: {why}; leave it out of target's CREATE TABLE")
        strategy = str((table.options.get("compaction") or {}).get("class", "")).rsplit(".", 1)[-1]
        if strategy in REMOVED_COMPACTION:
            removed_in, instead = REMOVED_COMPACTION[strategy]
            if t_rel >= removed_in:
                out.append(f"compaction {strategy} was removed in Cassandra {_fmt(removed_in)}: "
                           f"create target's table with {{'class': '{instead}'}}")
    return {name: n for name, n in notes.items() if n}


def check_target_release(target: ClusterProbe, notes: dict[str, list[str]]) -> Check:
    if not notes:
        return Check("target release", Status.PASS,
                     f"nothing in scope that {target.product} refuses or treats differently")
    count = sum(len(n) for n in notes.values())
    return Check("target release", Status.WARN,
                 f"{count} thing(s) in {len(notes)} table(s) that {target.product} refuses or "
                 f"treats differently: {', '.join(notes)}",
                 "see the fix named on each table")


COUNTER_WARNING = ("counter table: counter updates are not idempotent, so a retried write "
                   "through the proxy can count twice and a copy cannot reproduce concurrent "
                   "increments; validate it after the migration and expect to repair it")


def assess(origin: ClusterProbe, target: ClusterProbe, scope: ScopeConfig = ScopeConfig(), *,
           max_clock_skew_s: float = DEFAULT_MAX_CLOCK_SKEW_S,
           at: datetime | None = None) -> PreflightReport:
    """Every check on two probed clusters; pure. Raises ZdmError if ``scope`` names a system
    keyspace."""
    keyspaces, o_snap, t_snap = scoped(origin.schema, target.schema, Scope.of_section(scope))
    entries: dict[str, TableDiff] = {d.name: d for d in diff(o_snap, t_snap, keyspaces)}
    for table in o_snap.tables():
        if table.is_counter_table:
            old = entries.get(table.qualified, TableDiff(table.qualified))
            entries[table.qualified] = replace(old, warnings=(*old.warnings, COUNTER_WARNING))
    notes = release_notes(origin, target, o_snap, t_snap)
    for name, texts in notes.items():
        old = entries.get(name, TableDiff(name))
        entries[name] = replace(old, warnings=(*old.warnings, *texts))
    plan = copy_plan(origin, o_snap)
    tables = tuple(entries[k] for k in sorted(entries))
    in_scope = tuple(t.qualified for t in o_snap.tables())
    differing = [t for t in tables if t.differences]
    if differing:
        schema = Check("schema", Status.FAIL,
                       f"{len(differing)} table(s) or keyspace(s) differ: "
                       f"{', '.join(t.name for t in differing)}",
                       "make target's schema match origin's (see the differences per table), "
                       "then run `zdm preflight` again")
    elif not keyspaces:
        schema = Check("schema", Status.WARN, "no keyspace in scope: origin has no "
                       "non-system keyspace", "create the schema, or set scope.keyspaces")
    else:
        schema = Check("schema", Status.PASS,
                       f"{len(in_scope)} table(s) in {len(keyspaces)} keyspace(s) identical")
    counters = [t.qualified for t in o_snap.tables() if t.is_counter_table]
    topology, layouts = topology_checks(origin, target, keyspaces)
    checks = [check_versions(origin, target), check_protocol(origin, target),
              check_partitioner(origin, target), *topology, schema, check_copy(origin, plan),
              check_target_release(target, notes)]
    if counters:
        checks.append(Check("counter tables", Status.WARN, ", ".join(counters),
                            "see the warning on each table"))
    checks.append(check_clock((origin, target), max_clock_skew_s))
    return PreflightReport(tuple(checks), tables, tuple(keyspaces), in_scope,
                           fingerprint(o_snap, t_snap), at or utcnow(), plan, layouts)


def encryption_checks(config: Config) -> tuple[Check, ...]:
    """How zdm's connections to each cluster are protected; a warning, with the fix, for TLS
    whose host names are not verified."""
    insecure = {w["key"]: w for w in insecure_settings(config)}
    out = []
    for name in ("origin", "target"):
        cfg: ClusterConfig = getattr(config, name)
        warning = insecure.get(f"{name}.tls.verify_hostname")
        if cfg.secure_connect_bundle is not None:
            out.append(Check(f"{name} encryption", Status.PASS,
                             "TLS with the secure connect bundle's CA and client certificate, through "
                             "its SNI proxy"))
        elif cfg.tls is None:
            out.append(Check(f"{name} encryption", Status.PASS,
                             f"none: plaintext CQL ({name}.tls is not set)"))
        elif warning is not None:
            out.append(Check(f"{name} encryption", Status.WARN, f"TLS WITHOUT HOSTNAME VERIFICATION: "
                             f"{warning['what']}", warning["todo"]))
        else:
            ca = str(cfg.tls.ca_file) if cfg.tls.ca_file else "this machine's trusted CAs"
            client = ", with zdm's client certificate" if cfg.tls.cert_file else ""
            out.append(Check(f"{name} encryption", Status.PASS,
                             f"TLS: certificates verified against {ca}, host names checked{client}"))
    return tuple(out)
