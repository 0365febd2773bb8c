"""Which node coordinates a range read, and where it goes next when that node fails.

Theory of operation: a range scan (``token(pk) > start AND token(pk) <= end``) has no
routing key, so the driver's token-aware policy cannot route it and round robin would send
it to any node, which then reads every replica it needs over the network.  Range work sends
it instead to a replica of the range (``execute_async(host=...)``): the coordinator reads its
own copy and asks only as many other replicas as the consistency level needs.  The ring is
cut at ownership boundaries (:func:`zdm.ranges.ring.split_ring`), so one replica set owns a
whole range: the replicas of its end token.

:func:`candidates` orders the nodes to try, pure of any I/O: the replicas in the local
datacenter first, rotated by ``turn`` so that successive ranges spread over all of them;
then the replicas in other datacenters; then every other node (the local datacenter's
first), for a range whose replicas are all down.  Only nodes the session holds connections
to count (the driver drops a node's pool when it goes down, and never opens one to a
datacenter its load-balancing policy ignores), and nodes that failed this read come last
of all, so that a retry goes elsewhere but a read whose every node failed once can still
come back to one of them.

:class:`ReplicaRouter` binds it to one driver session: the token map, the local datacenter
(the one the session's load-balancing policy names; none: every datacenter counts as
local), and the rotation.
"""

from __future__ import annotations

import itertools
from typing import Collection, Hashable, Iterable, Protocol, Sequence


class Node(Protocol):
    """What :func:`candidates` reads of a node (a driver ``Host`` has both)."""

    datacenter: str | None
    is_up: bool | None


def candidates(replicas: Sequence[Node], reachable: Iterable[Node], local_dc: str | None, *,
               turn: int = 0, failed: Collection[Hashable] = ()) -> list[Node]:
    """The nodes to send a range read to, best first (see the module docstring).

    ``replicas``: the range's replicas in ring order; ``reachable``: the nodes the session
    can send to; ``failed``: nodes that already failed this read."""
    usable = [h for h in reachable if h.is_up is not False]
    usable_set = set(usable)

    def local(h: Node) -> bool:
        return local_dc is None or h.datacenter == local_dc

    near = [h for h in replicas if h in usable_set and local(h)]
    if near:
        k = turn % len(near)
        near = near[k:] + near[:k]
    far = [h for h in replicas if h in usable_set and not local(h)]
    chosen = set(near) | set(far)
    rest = sorted((h for h in usable if h not in chosen), key=lambda h: not local(h))
    order = near + far + rest
    return [h for h in order if h not in failed] + [h for h in order if h in failed]


def local_dc_of(cluster) -> str | None:
    """The datacenter the default profile's load-balancing policy keeps local (None: all)."""
    from cassandra.cluster import EXEC_PROFILE_DEFAULT

    policy = cluster.profile_manager.profiles[EXEC_PROFILE_DEFAULT].load_balancing_policy
    while policy is not None:
        dc = getattr(policy, "local_dc", None)
        if dc:
            return dc
        policy = getattr(policy, "_child_policy", None)
    return None


class ReplicaRouter:
    """:func:`candidates` for one driver session: ``plan(keyspace, token, failed)``."""

    def __init__(self, cluster, session) -> None:
        self._cluster = cluster
        self._session = session
        self.local_dc = local_dc_of(cluster)
        self._turns = itertools.count()

    def replicas(self, keyspace: str, token: int) -> list:
        token_map = self._cluster.metadata.token_map
        if token_map is None or not token_map.ring:
            return []
        return list(token_map.get_replicas(keyspace, token_map.token_class(token)))

    def plan(self, keyspace: str, token: int, failed: Collection[Hashable] = ()) -> list:
        """The nodes to read the range ending at ``token`` from, best first."""
        reachable = self._session.get_pool_state().keys()
        return candidates(self.replicas(keyspace, token), reachable, self.local_dc,
                          turn=next(self._turns), failed=failed)
