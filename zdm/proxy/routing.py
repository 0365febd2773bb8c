"""The routing decision: one pure function from a request and the routing to its destination.

Theory of operation: every opcode the proxy forwards is decided here and nowhere else, so
a QUERY, the EXECUTE of the same statement prepared, and a PREPARE of it can never be
routed by different rules.  The rules, first match wins (zdm-proxy's, plus the virtual
topology and the migration's scope):

=========================================  ==========================  ===============
request                                    destination                 async secondary
=========================================  ==========================  ===============
anything, while the proxy drains           refused: OVERLOADED (the    -
                                           driver retries elsewhere)
REGISTER                                   origin (its schema events)  -
SELECT from system.peers_v2 when origin's  refused: INVALID, as        -
release has none (before 4.0)              origin would answer
SELECT from system.local / peers /         the proxy (virtual          -
peers_v2                                   topology)
SELECT from another system keyspace        origin                      -
anything on a keyspace or table outside    origin (target may not      -
the scope (``scope.keyspaces``,            have it)
``scope.exclude_tables``); a BATCH when
all its statements are
PREPARE (of a system table read: origin)   both                        -
BATCH                                      both                        -
QUERY / EXECUTE of anything but SELECT     both (writes, DDL, USE,     -
                                           unrecognised statements)
SELECT, a later page (paging state)        the primary cluster         no: a paging
                                                                       state is one
                                                                       cluster's
SELECT                                     the primary cluster         in async-read
                                                                       mode
=========================================  ==========================  ===============

OPTIONS never reaches this table: the connection answers it (SUPPORTED) before anything is
decided, in the handshake and after it.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

from zdm.cql.classify import Statement, StatementKind
from zdm.cql.constants import Opcode
from zdm.phases.model import Cluster, ReadMode, Routing
from zdm.scope import Scope, is_system_keyspace

#: tables of keyspace ``system`` the proxy answers itself
VIRTUAL_TABLES = frozenset({"local", "peers", "peers_v2"})


class Destination(enum.Enum):
    ORIGIN = "origin"
    TARGET = "target"
    BOTH = "both"
    PROXY = "proxy"  # answered by the proxy itself
    #: refused by the proxy, which is draining: OVERLOADED, and the driver retries elsewhere
    DRAINING = "draining"
    #: refused: a virtual system table origin's release does not have (INVALID, as origin)
    NO_SUCH_TABLE = "no such table"


class Decision(NamedTuple):
    destination: Destination
    #: also send to the other cluster in the background (async dual reads)
    async_secondary: bool = False
    #: reads are async, but this one cannot be compared (a later page): count it as skipped
    async_skipped: bool = False


BOTH = Decision(Destination.BOTH)
ORIGIN = Decision(Destination.ORIGIN)
PROXY = Decision(Destination.PROXY)
_PRIMARY = {  # (primary, async reads, later page)
    (cluster, dual, paged): Decision(Destination[cluster.name], dual and not paged, dual and paged)
    for cluster in Cluster for dual in (False, True) for paged in (False, True)
}
DRAINING = Decision(Destination.DRAINING)
NO_SUCH_TABLE = Decision(Destination.NO_SUCH_TABLE)
#: the destinations that are refusals: the client gets an error, no cluster the request
REFUSALS = frozenset({Destination.DRAINING, Destination.NO_SUCH_TABLE})
_EVERYWHERE = Scope()


def decide(opcode: int, stmt: Statement | None, session_keyspace: str | None, paged: bool,
           routing: Routing, scope: Scope = _EVERYWHERE, children: tuple[Statement, ...] = (), *,
           draining: bool = False, virtual_tables: frozenset[str] = VIRTUAL_TABLES) -> Decision:
    """Where a request goes.  ``stmt`` is the classified query of a QUERY or PREPARE, or of the
    statement an EXECUTE runs; ``paged``: the request carries a paging state; ``children``:
    the statements of a BATCH (only consulted when the scope is narrowed); ``draining``: the
    proxy is shutting down; ``virtual_tables``: the system tables origin's release has among
    those the proxy answers."""
    if draining:
        return DRAINING
    if opcode == Opcode.REGISTER:
        return ORIGIN
    if opcode == Opcode.BATCH:
        if scope.everything or any(_covered(c, session_keyspace, scope) for c in children):
            return BOTH
        return ORIGIN
    if stmt is None:
        return BOTH
    keyspace = stmt.keyspace or session_keyspace
    system = is_system_keyspace(keyspace)
    if stmt.kind is StatementKind.SELECT and system:
        if opcode == Opcode.PREPARE:  # executed by origin or the proxy, never by target
            return ORIGIN
        if keyspace != "system" or stmt.table not in VIRTUAL_TABLES:
            return ORIGIN
        return PROXY if stmt.table in virtual_tables else NO_SUCH_TABLE
    if not system and not scope.everything and not scope.covers(keyspace, stmt.table):
        return ORIGIN
    if stmt.kind is not StatementKind.SELECT or opcode == Opcode.PREPARE:
        return BOTH
    return _PRIMARY[routing.primary, routing.read_mode is ReadMode.DUAL_ASYNC, paged]


def _covered(stmt: Statement, session_keyspace: str | None, scope: Scope) -> bool:
    return scope.covers(stmt.keyspace or session_keyspace, stmt.table)

