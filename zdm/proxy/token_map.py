"""The token ring of a cluster and the replicas of a partition, as Cassandra places them.

Theory of operation: every node owns the tokens it announced; the ring is all of them,
sorted.  A token ``t`` belongs to the range that ends at the first ring token ``>= t``
(wrapping to the first one past the largest), and the replicas of that range come from a
walk along the ring from there, by the keyspace's strategy, exactly as Cassandra's
``calculateNaturalReplicas`` walks it:

* SimpleStrategy: the first ``replication_factor`` distinct nodes met;
* NetworkTopologyStrategy: per DC named in the replication (and that has nodes), up to
  ``min(rf, nodes of the DC)`` nodes, each from a rack not used yet in that DC, except that
  a DC with fewer racks than its rf accepts ``rf - racks`` repeats (the first nodes met on
  used racks).  The walk ends when every DC is filled or the ring is exhausted;
* EverywhereStrategy: every node, in ring order; LocalStrategy (the system keyspaces) and
  any strategy not known here: no replica (each node holds its own data: any coordinates).

A :class:`TokenRing` is built once per snapshot from the nodes' tokens, DCs and racks
(which up/down changes leave alone) and works on node positions, so a snapshot that
differs only in statuses shares it.  Replica lists are computed on first use per
(replication, ring position) and kept: keyspaces with one replication share them.

:func:`replicas` is the request path's question: the replicas of (keyspace, token), the
local DC's first (in ring order), then the others, as a driver's token-aware policy
offers them.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from zdm.proxy.cluster_topology import EVERYWHERE, NETWORK_TOPOLOGY, SIMPLE, ClusterTopology, Node, Replication


class TokenRing:
    """The sorted tokens of a cluster, their owners, and the replicas of each range."""

    __slots__ = ("tokens", "owners", "_dc", "_dc_nodes", "_dc_racks", "_rack", "_count", "_replicas")

    def __init__(self, nodes: Sequence[Node]) -> None:
        ring = sorted((t, i) for i, n in enumerate(nodes) for t in n.tokens)
        self.tokens = [t for t, _ in ring]
        #: the position (in the snapshot's nodes) of the node owning each ring token
        self.owners = [i for _, i in ring]
        owning = {i for _, i in ring}  # a node without tokens holds no range
        self._count = len(owning)
        self._dc = [n.dc for n in nodes]
        self._rack = [n.rack for n in nodes]
        self._dc_nodes: dict[str, int] = {}
        racks: dict[str, set[str]] = {}
        for i in owning:
            self._dc_nodes[self._dc[i]] = self._dc_nodes.get(self._dc[i], 0) + 1
            racks.setdefault(self._dc[i], set()).add(self._rack[i])
        self._dc_racks = {dc: len(r) for dc, r in racks.items()}
        self._replicas: dict[tuple[Replication, int], tuple[int, ...]] = {}

    def __len__(self) -> int:
        return len(self.tokens)

    def position(self, token: int) -> int:
        """The index of the ring token that ends ``token``'s range."""
        index = bisect.bisect_left(self.tokens, token)
        return 0 if index == len(self.tokens) else index

    def replicas(self, replication: Replication, token: int) -> tuple[int, ...]:
        """The positions of the nodes holding ``token`` under ``replication``, in the order the
        ring walk meets them (up or down alike)."""
        if not self.tokens:
            return ()
        start = self.position(token)
        key = (replication, start)
        found = self._replicas.get(key)
        if found is None:
            found = self._replicas[key] = self._walk(replication, start)
        return found

    def _walk(self, replication: Replication, start: int) -> tuple[int, ...]:
        if replication.strategy == SIMPLE:
            return self._simple(replication.replication_factor, start)
        if replication.strategy == NETWORK_TOPOLOGY:
            return self._network_topology(replication, start)
        if replication.strategy == EVERYWHERE:
            return self._simple(self._count, start)
        return ()

    def _ring_from(self, start: int):
        owners = self.owners
        for i in range(start, len(owners)):
            yield owners[i]
        for i in range(start):
            yield owners[i]

    def _simple(self, rf: int, start: int) -> tuple[int, ...]:
        chosen: list[int] = []
        if rf <= 0:
            return ()
        for node in self._ring_from(start):
            if node not in chosen:
                chosen.append(node)
                if len(chosen) >= rf:
                    break
        return tuple(chosen)

    def _network_topology(self, replication: Replication, start: int) -> tuple[int, ...]:
        left: dict[str, int] = {}          # replicas still wanted, per DC
        repeats: dict[str, int] = {}       # rack repeats still accepted, per DC
        for dc, rf in replication.factors:
            nodes = self._dc_nodes.get(dc, 0)
            if rf > 0 and nodes > 0:
                left[dc] = min(rf, nodes)
                repeats[dc] = rf - self._dc_racks[dc]
        racks_used: set[tuple[str, str]] = set()
        chosen: list[int] = []
        to_fill = len(left)
        for node in self._ring_from(start):
            if not to_fill:
                break
            dc = self._dc[node]
            if left.get(dc, 0) <= 0 or node in chosen:
                continue
            location = (dc, self._rack[node])
            if location not in racks_used:
                racks_used.add(location)
            elif repeats[dc] > 0:
                repeats[dc] -= 1
            else:
                continue  # the DC's remaining replicas must come from racks not used yet
            chosen.append(node)
            left[dc] -= 1
            if left[dc] == 0:
                to_fill -= 1
        return tuple(chosen)


def replicas(topology: ClusterTopology, keyspace: str, token: int, local_dc: str | None = None,
             *, up_only: bool = True) -> tuple[Node, ...]:
    """The replicas of ``token`` in ``keyspace``: those in ``local_dc`` (the snapshot's local DC
    by default) first, then those of other DCs, each group in ring order; only nodes that are
    up, by default.  Empty when the keyspace is unknown or its data is not placed by token
    (LocalStrategy): the request then goes where any request goes."""
    replication = topology.keyspaces.get(keyspace)
    if replication is None:
        return ()
    nodes = topology.nodes
    found = [nodes[i] for i in topology.ring.replicas(replication, token)]
    if up_only:
        found = [n for n in found if n.up]
    dc = topology.local_dc if local_dc is None else local_dc
    return tuple([n for n in found if n.dc == dc] + [n for n in found if n.dc != dc])


def local_replicas(topology: ClusterTopology, keyspace: str, token: int) -> tuple[Node, ...]:
    """The live replicas of ``token`` in ``keyspace`` in the snapshot's local DC, in ring
    order: what token-aware forwarding chooses from (:mod:`~zdm.proxy.token_aware`).  Kept
    per snapshot, by keyspace and ring range, so a request pays a bisection and a lookup."""
    ring = topology.ring
    if not ring.tokens:
        return ()
    cache = topology._cache.get("local_replicas")
    if cache is None:
        cache = topology._cache["local_replicas"] = {}
    key = (keyspace, ring.position(token))
    found = cache.get(key)
    if found is None:
        dc = topology.local_dc
        found = cache[key] = tuple(n for n in replicas(topology, keyspace, token) if n.dc == dc)
    return found
