"""The routing decision: one pure function from (request, routing) to destinations.

Theory of operation (zdm-proxy's rules): writes, DDL, USE, PREPARE and anything
not recognised go to BOTH clusters, so neither misses a mutation; reads go to the
primary cluster, and in async-read mode also, in the background, to the other one
(its answer is compared, never returned); reads of ``system.local`` / ``peers`` /
``peers_v2`` are answered by the proxy itself (the virtual topology); reads of
other system keyspaces always go to origin, whose schema the application knows.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

from zdm.cql.classify import Statement, StatementKind
from zdm.phases.model import Cluster, ReadMode, Routing

#: keyspaces whose reads always go to origin
SYSTEM_KEYSPACES = frozenset({"system", "system_schema", "system_auth", "system_distributed",
                              "system_traces", "system_views", "system_virtual_schema",
                              "dse_system", "dse_auth", "dse_insights", "dse_security"})
VIRTUAL_TABLES = frozenset({"local", "peers", "peers_v2"})


class Destination(enum.Enum):
    ORIGIN = "origin"
    TARGET = "target"
    BOTH = "both"
    PROXY = "proxy"  # answered by the proxy itself


class Decision(NamedTuple):
    destination: Destination
    #: also send to the other cluster in the background (async dual reads)
    async_secondary: bool = False


_TO = {Cluster.ORIGIN: Destination.ORIGIN, Cluster.TARGET: Destination.TARGET}
BOTH = Decision(Destination.BOTH)
ORIGIN = Decision(Destination.ORIGIN)
PROXY = Decision(Destination.PROXY)


def decide_statement(stmt: Statement, session_keyspace: str | None, routing: Routing) -> Decision:
    """Where a QUERY (or an EXECUTE of a prepared ``stmt``) goes."""
    if stmt.kind is not StatementKind.SELECT:
        return BOTH
    keyspace = stmt.keyspace or session_keyspace
    if keyspace in SYSTEM_KEYSPACES:
        if keyspace == "system" and stmt.table in VIRTUAL_TABLES:
            return PROXY
        return ORIGIN
    return decide_read(routing)


def decide_read(routing: Routing) -> Decision:
    return Decision(_TO[routing.primary], routing.read_mode is ReadMode.DUAL_ASYNC)


def other(cluster: Cluster) -> Cluster:
    return Cluster.TARGET if cluster is Cluster.ORIGIN else Cluster.ORIGIN
