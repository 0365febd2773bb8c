"""``zdm preflight``: can this origin be migrated to this target, and what needs care.

Public API (the CLI and the demo use only these names)::

    run_preflight(config, max_clock_skew_s=...) -> PreflightReport
    record_preflight(store, report, operator) -> MigrationState
    live_schema(config) -> (fingerprint, tables in scope)   # for zdm.phases.live.gather_facts
    probe_cluster(cluster_config, name) -> ClusterProbe
    assess(origin_probe, target_probe, scope) -> PreflightReport

Theory of operation: :mod:`~zdm.preflight.probe` is the only I/O (one driver session per
cluster yields a :class:`ClusterProbe`); :mod:`~zdm.preflight.checks` assesses two probes
with pure functions; :mod:`~zdm.preflight.schema` holds the schema snapshots, their diff
and their fingerprint; :mod:`~zdm.preflight.topology` judges each cluster's nodes, DCs and
replication (the proxy's own topology snapshot, :mod:`zdm.proxy.cluster_topology`); :mod:`~zdm.preflight.report` is what comes out, and the evidence
it leaves for the phase machine; :mod:`~zdm.preflight.run` joins them.

Where it sits: above :mod:`zdm.migrate` (whose fallback decides the copy plan),
:mod:`zdm.phases` (whose evidence records the outcome) and :mod:`zdm.proxy` (whose topology
and choice of local DC it reuses, to refuse first what the proxy would refuse at start).
None of them imports it: the phase machine learns the live schema's fingerprint from its
caller, as a plain string in its facts.
"""

from zdm.preflight.checks import (COUNTER_WARNING, DEFAULT_MAX_CLOCK_SKEW_S, assess,
                                  encryption_checks)
from zdm.preflight.probe import ClockSample, ClusterProbe, probe_cluster
from zdm.preflight.report import Check, PreflightReport, Status, TableCopy, record_preflight
from zdm.preflight.run import live_schema, run_preflight
from zdm.preflight.topology import ClusterLayout

__all__ = [
    "COUNTER_WARNING", "Check", "ClockSample", "ClusterLayout", "ClusterProbe", "DEFAULT_MAX_CLOCK_SKEW_S",
    "PreflightReport", "Status", "TableCopy", "assess", "encryption_checks", "live_schema",
    "probe_cluster", "record_preflight", "run_preflight",
]
