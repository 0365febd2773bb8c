"""Migration phases: the state machine that decides when zdm may move on or back.

Public API (the CLI and other modules use only these names)::

    store = zdm.state.open_store(config)  # where the state is kept (see zdm.state)
    advance(store, facts, to=None, operator=..., why=None, thresholds=None, source="cli")
    rollback(store, facts, to=None, operator=..., why=None, source="cli") -> MigrationState
    confirm_routing(store, operator=..., timeout=0.0, source="cli") -> MigrationState
    evaluate(state, facts, action="advance", to=None, thresholds=None) -> Verdict
    record_evidence(store, evidence, operator) -> MigrationState
"""

from zdm.phases.errors import (ConcurrentModification, RoutingPending, StateCorrupt,
                               TransitionRefused, UnknownProxy)
from zdm.phases.evidence import (AsyncReadStats, ClientsOnProxyConfirmed, ClientsOnTargetConfirmed,
                                 MigrationEvidence, PreflightEvidence, ValidationEvidence,
                                 evidence_of, record_evidence, with_evidence)
from zdm.phases.facts import Facts, ProxyHealth
from zdm.phases.guards import Reason, Thresholds
from zdm.phases.machine import (TABLE, Verdict, advance, apply_move, confirm_routing, evaluate,
                                rollback)
from zdm.phases.model import Cluster, Phase, ReadMode, Routing, routing_for
from zdm.phases.state import HistoryEntry, MigrationState, RoutingStatus

__all__ = [
    "AsyncReadStats", "ClientsOnProxyConfirmed", "ClientsOnTargetConfirmed", "Cluster",
    "ConcurrentModification", "Facts", "HistoryEntry", "MigrationEvidence", "MigrationState",
    "Phase", "PreflightEvidence", "ProxyHealth", "ReadMode", "Reason", "Routing",
    "RoutingPending", "RoutingStatus", "StateCorrupt", "TABLE", "Thresholds",
    "TransitionRefused", "UnknownProxy", "ValidationEvidence", "Verdict", "advance",
    "apply_move", "confirm_routing", "evaluate", "evidence_of", "record_evidence", "rollback",
    "routing_for", "with_evidence",
]
