"""`zdm preflight` as one call: :func:`run_preflight` probes both clusters and assesses them.

Theory of operation: the probes (:mod:`zdm.preflight.probe`) are the only I/O and the
assessment (:mod:`zdm.preflight.checks`) is pure; this module joins them. A cluster that
cannot be reached is a failed check in the report, not an exception, so the failed
preflight is recorded too. :func:`live_schema` computes the fingerprint of both schemas in
scope exactly as the preflight does; the CLI hands it to
:func:`~zdm.phases.live.gather_facts`, so that the phase machine's 0->1 guard can tell
whether the schemas changed since the preflight passed without the phases importing the
preflight.
"""

from __future__ import annotations

from dataclasses import replace

from zdm.config import Config
from zdm.errors import ZdmError
from zdm.preflight.checks import DEFAULT_MAX_CLOCK_SKEW_S, assess, encryption_checks
from zdm.preflight.probe import ClusterProbe, probe_cluster
from zdm.preflight.report import Check, PreflightReport, Status
from zdm.preflight.schema import fingerprint, scoped
from zdm.scope import Scope


def run_preflight(config: Config, *,
                  max_clock_skew_s: float = DEFAULT_MAX_CLOCK_SKEW_S) -> PreflightReport:
    """Probe both clusters and assess them; an unreachable cluster is a failed check."""
    probes: dict[str, ClusterProbe] = {}
    failed: list[Check] = []
    for name, cfg in (("origin", config.origin), ("target", config.target)):
        try:
            probes[name] = probe_cluster(cfg, name)
        except ZdmError as exc:
            failed.append(Check(f"{name} connection", Status.FAIL, exc.message, exc.hint or ""))
    if failed:
        ok = [Check(f"{n} connection", Status.PASS, f"{p.address}: {p.product}")
              for n, p in probes.items()]
        return PreflightReport(tuple(ok + failed))
    report = assess(probes["origin"], probes["target"], config.scope,
                    max_clock_skew_s=max_clock_skew_s)
    logins = tuple(Check(f"{n} connection", Status.PASS, f"{p.address}: {p.product}")
                   for n, p in probes.items())
    return replace(report, checks=logins + encryption_checks(config) + report.checks)


def live_schema(config: Config) -> tuple[str, list[str]]:
    """The current fingerprint of both schemas in scope, and the tables in scope
    (``ks.table``), computed exactly as the preflight does."""
    origin = probe_cluster(config.origin, "origin", clock=False, topology=False)
    target = probe_cluster(config.target, "target", clock=False, topology=False)
    _, o_snap, t_snap = scoped(origin.schema, target.schema, Scope.of(config))
    return fingerprint(o_snap, t_snap), [t.qualified for t in o_snap.tables()]
