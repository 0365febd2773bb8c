"""The routing decision: one pure function from a request and the routing to its destination.

Theory of operation: every opcode the proxy forwards is decided here and nowhere else, so
a QUERY, the EXECUTE of the same statement prepared, and a PREPARE of it can never be
routed by different rules.  The rules, first match wins (zdm-proxy's, plus the virtual
topology):

=========================================  ==========================  ===============
request                                    destination                 async secondary
=========================================  ==========================  ===============
OPTIONS                                    the proxy (SUPPORTED)       -
REGISTER                                   origin (its schema events)  -
PREPARE, BATCH                             both                        -
QUERY / EXECUTE of anything but SELECT     both (writes, DDL, USE,     -
                                           unrecognised statements)
SELECT from system.local / peers /         the proxy (virtual          -
peers_v2                                   topology)
SELECT from another system keyspace        origin                      -
SELECT, a later page (paging state)        the primary cluster         no: a paging
                                                                       state is one
                                                                       cluster's
SELECT                                     the primary cluster         in async-read
                                                                       mode
=========================================  ==========================  ===============
"""

from __future__ import annotations

import enum
from typing import NamedTuple

from zdm.cql.classify import Statement, StatementKind
from zdm.cql.constants import Opcode
from zdm.phases.model import Cluster, ReadMode, Routing

#: keyspaces whose reads always go to origin
SYSTEM_KEYSPACES = frozenset({"system", "system_schema", "system_auth", "system_distributed",
                              "system_traces", "system_views", "system_virtual_schema",
                              "dse_system", "dse_auth", "dse_insights", "dse_security"})
#: tables of keyspace ``system`` the proxy answers itself
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


BOTH = Decision(Destination.BOTH)
ORIGIN = Decision(Destination.ORIGIN)
PROXY = Decision(Destination.PROXY)
_PRIMARY = {
    (Cluster.ORIGIN, False): Decision(Destination.ORIGIN),
    (Cluster.ORIGIN, True): Decision(Destination.ORIGIN, True),
    (Cluster.TARGET, False): Decision(Destination.TARGET),
    (Cluster.TARGET, True): Decision(Destination.TARGET, True),
}
_ALWAYS = {Opcode.OPTIONS: PROXY, Opcode.REGISTER: ORIGIN, Opcode.PREPARE: BOTH,
           Opcode.BATCH: BOTH}


def decide(opcode: int, stmt: Statement | None, session_keyspace: str | None, paged: bool,
           routing: Routing) -> Decision:
    """Where a request goes.  ``stmt`` is the classified query of a QUERY, or of the
    statement an EXECUTE runs; ``paged``: the request carries a paging state."""
    fixed = _ALWAYS.get(opcode)
    if fixed is not None:
        return fixed
    if stmt is None or stmt.kind is not StatementKind.SELECT:
        return BOTH
    keyspace = stmt.keyspace or session_keyspace
    if keyspace in SYSTEM_KEYSPACES:
        return PROXY if keyspace == "system" and stmt.table in VIRTUAL_TABLES else ORIGIN
    return _PRIMARY[routing.primary, routing.read_mode is ReadMode.DUAL_ASYNC and not paged]


def other(cluster: Cluster) -> Cluster:
    return Cluster.TARGET if cluster is Cluster.ORIGIN else Cluster.ORIGIN
