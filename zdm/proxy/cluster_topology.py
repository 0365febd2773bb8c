"""A real cluster's topology, as the proxy knows it: an immutable snapshot and pure queries.

Theory of operation: one owner per cluster -- the proxy instance's control connection
(:mod:`~zdm.proxy.control`) -- reads ``system.local``, ``system.peers_v2`` (``system.peers``
before Cassandra 4.0) and each keyspace's replication, follows the cluster's
TOPOLOGY_CHANGE, STATUS_CHANGE and SCHEMA_CHANGE events and reads again periodically, and
publishes a new :class:`ClusterTopology` each time something changed.  Every worker swaps
its reference to the newest one; nothing ever modifies a snapshot (:meth:`with_status`
returns a new one).  (Not to be confused with :mod:`~zdm.proxy.topology`, the *virtual*
topology the proxy shows its clients.)

Everything here is a pure function of the rows read or of a snapshot, so tests build
snapshots from recorded rows (``tests/unit/data/cluster_topology.json``) and need no cluster:

* :func:`from_system_tables` makes a snapshot from the rows;
* :func:`choose_local_dc` names the datacenter whose nodes coordinate: the configured one
  (refused when the cluster has no such DC), or else the contact points' DC;
* :meth:`ClusterTopology.local_nodes` and :meth:`ClusterTopology.pick` are what a client
  connection asks for a node; the replicas of a partition are in :mod:`~zdm.proxy.token_map`.

A node's up/down state is gossip's as its events report it (a node read from the system
tables is up unless an event said otherwise; a refresh keeps what the events said).
"""

from __future__ import annotations

import array
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from zdm.errors import ZdmError

#: addresses a node may report for "every interface": its peer address is meant instead
_ANY_ADDRESS = frozenset({"0.0.0.0", "::", "0:0:0:0:0:0:0:0"})


class TopologyError(ZdmError):
    """A cluster's topology contradicts the configuration."""


@dataclass(frozen=True, slots=True)
class Node:
    """One node of a cluster, as its clients reach it."""

    host_id: str
    #: the address and port of its native protocol (what a client connects to)
    address: str
    port: int
    dc: str
    rack: str
    #: its Murmur3 tokens (signed 64-bit), sorted
    tokens: tuple[int, ...] = ()
    up: bool = True
    release_version: str | None = None

    @property
    def endpoint(self) -> str:
        return f"[{self.address}]:{self.port}" if ":" in self.address else f"{self.address}:{self.port}"

    def __getstate__(self):  # tokens packed: a 300-node ring of 256 vnodes crosses to every worker
        return (self.host_id, self.address, self.port, self.dc, self.rack,
                array.array("q", self.tokens).tobytes(), self.up, self.release_version)

    def __setstate__(self, state) -> None:
        host_id, address, port, dc, rack, packed, up, release = state
        tokens = array.array("q")
        tokens.frombytes(packed)
        for name, value in (("host_id", host_id), ("address", address), ("port", port), ("dc", dc),
                            ("rack", rack), ("tokens", tuple(tokens)), ("up", up),
                            ("release_version", release)):
            object.__setattr__(self, name, value)


#: replication strategies by the short name Cassandra's class names end with
SIMPLE = "SimpleStrategy"
NETWORK_TOPOLOGY = "NetworkTopologyStrategy"
LOCAL = "LocalStrategy"
EVERYWHERE = "EverywhereStrategy"


@dataclass(frozen=True, slots=True)
class Replication:
    """A keyspace's replication: its strategy and how many replicas (per DC for
    NetworkTopologyStrategy; under ``""`` for SimpleStrategy).  Hashable: keyspaces with the
    same replication share their replica lists."""

    strategy: str
    factors: tuple[tuple[str, int], ...] = ()

    @property
    def replication_factor(self) -> int:
        """SimpleStrategy's factor; the sum over DCs for NetworkTopologyStrategy."""
        return sum(rf for _, rf in self.factors)

    def factor(self, dc: str) -> int:
        return dict(self.factors).get(dc, 0)

    @classmethod
    def parse(cls, options: Mapping[str, str]) -> "Replication":
        """From ``system_schema.keyspaces.replication`` (``class`` and the factors)."""
        strategy = str(options.get("class", "")).rsplit(".", 1)[-1]
        if strategy == SIMPLE:
            return cls(SIMPLE, (("", _factor(options.get("replication_factor"))),))
        if strategy == NETWORK_TOPOLOGY:
            return cls(NETWORK_TOPOLOGY, tuple(sorted((dc, _factor(rf)) for dc, rf in options.items()
                                                      if dc not in ("class", "replication_factor"))))
        return cls(strategy)


def _factor(text: object) -> int:
    """A replication factor as Cassandra 4.0+ writes it: ``3``, or ``3/1`` (3 replicas, one of
    them transient: still a replica a request may go to)."""
    try:
        return max(int(str(text).split("/", 1)[0]), 0)
    except ValueError:
        return 0


@dataclass(frozen=True, slots=True, eq=False)
class ClusterTopology:
    """One cluster's nodes and keyspaces' replication at one moment.  Immutable; picklable
    (it crosses to the worker processes); compared by content."""

    nodes: tuple[Node, ...]
    keyspaces: Mapping[str, Replication] = field(default_factory=dict)
    #: the datacenter whose nodes coordinate (:func:`choose_local_dc`); "" until chosen
    local_dc: str = ""
    #: the node the owner's control connection is on (its system.local)
    control_host_id: str = ""
    cluster_name: str = ""
    partitioner: str = ""
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    # -- queries --------------------------------------------------------------------
    @property
    def dcs(self) -> tuple[str, ...]:
        return tuple(sorted({n.dc for n in self.nodes}))

    def local_nodes(self, up_only: bool = True) -> tuple[Node, ...]:
        """The nodes of the local DC (those up only, by default), by host id."""
        return tuple(n for n in self.nodes if n.dc == self.local_dc and (n.up or not up_only))

    def remote_nodes(self, up_only: bool = True) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.dc != self.local_dc and (n.up or not up_only))

    def node(self, host_id: str) -> Node | None:
        return self.by_host_id.get(host_id)

    @property
    def by_host_id(self) -> dict[str, Node]:
        found = self._cache.get("by_host_id")
        if found is None:
            found = self._cache["by_host_id"] = {n.host_id: n for n in self.nodes}
        return found

    def node_at(self, address: str, port: int | None = None) -> Node | None:
        """The node a client reaches at ``address`` (and ``port``), as events name them."""
        for n in self.nodes:
            if n.address == address and (port is None or n.port == port):
                return n
        return None

    def pick(self, avoid: Iterable[str] = (), key: int = 0) -> Node | None:
        """A live node for a new connection: one of the local DC's, other than the host ids in
        ``avoid`` (a node that just failed), chosen by ``key`` so that connections (and proxy
        instances, with different keys) spread over them; a node of another DC only while no
        local one is up and not avoided; None when there is none."""
        avoided = frozenset(avoid)
        for group in (self.local_nodes(), self.remote_nodes()):
            candidates = [n for n in group if n.host_id not in avoided]
            if candidates:
                return candidates[key % len(candidates)]
        return None

    @property
    def ring(self):
        """The token ring (:class:`zdm.proxy.token_map.TokenRing`), built on first use."""
        found = self._cache.get("ring")
        if found is None:
            from zdm.proxy.token_map import TokenRing

            found = self._cache["ring"] = TokenRing(self.nodes)
        return found

    # -- new snapshots --------------------------------------------------------------
    def with_status(self, address: str, port: int | None, up: bool) -> "ClusterTopology":
        """This snapshot with the node at ``address`` (``port``) up or down: itself when
        nothing changes.  The ring stays (statuses do not move tokens)."""
        target = self.node_at(address, port)
        if target is None or target.up == up:
            return self
        nodes = tuple(replace(n, up=up) if n is target else n for n in self.nodes)
        fresh = replace(self, nodes=nodes, _cache={})
        if "ring" in self._cache:  # it holds node positions, which stay
            fresh._cache["ring"] = self._cache["ring"]
        return fresh

    def with_local_dc(self, local_dc: str) -> "ClusterTopology":
        return replace(self, local_dc=local_dc, _cache={})

    def with_keyspaces(self, keyspaces: Mapping[str, Replication]) -> "ClusterTopology":
        fresh = replace(self, keyspaces=dict(keyspaces), _cache={})
        if "ring" in self._cache:  # replicas are cached per replication, not per keyspace
            fresh._cache["ring"] = self._cache["ring"]
        return fresh

    # -- identity and pickling -----------------------------------------------------------
    def _content(self) -> tuple:
        return (self.nodes, dict(self.keyspaces), self.local_dc, self.control_host_id,
                self.cluster_name, self.partitioner)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ClusterTopology) and other._content() == self._content()

    __hash__ = None  # type: ignore[assignment]

    def __getstate__(self):
        return self._content()

    def __setstate__(self, state) -> None:
        nodes, keyspaces, local_dc, control_host_id, cluster_name, partitioner = state
        for name, value in (("nodes", nodes), ("keyspaces", keyspaces), ("local_dc", local_dc),
                            ("control_host_id", control_host_id), ("cluster_name", cluster_name),
                            ("partitioner", partitioner), ("_cache", {})):
            object.__setattr__(self, name, value)

    def describe(self) -> str:
        per_dc = {dc: sum(1 for n in self.nodes if n.dc == dc) for dc in self.dcs}
        down = sum(1 for n in self.nodes if not n.up)
        return (", ".join(f"{dc}: {count} node{'s' if count != 1 else ''}" for dc, count in per_dc.items())
                + (f" ({down} down)" if down else "") + f"; local DC {self.local_dc or '?'}")


# -- making a snapshot from the system tables ----------------------------------------------

def from_system_tables(local: Mapping[str, Any], peers: Iterable[Mapping[str, Any]],
                       keyspaces: Mapping[str, Mapping[str, str]], *, default_port: int,
                       previous: ClusterTopology | None = None) -> ClusterTopology:
    """A snapshot from the rows of ``system.local``, ``system.peers_v2`` or ``system.peers``
    (column name -> value, as the proxy decodes them) and the keyspaces' replication maps.

    A peer that lacks its host id, DC, rack or tokens is left out, as drivers do (a node still
    joining, or a row gossip left behind).  Nodes ``previous`` knew keep their up/down state;
    the control connection's own node is up."""
    was_up = {n.host_id: n.up for n in previous.nodes} if previous is not None else {}
    local_node = _node(local, local.get("rpc_address") or local.get("broadcast_address"),
                       local.get("rpc_port") or default_port, up=True)
    if local_node is None:
        raise TopologyError("the node's system.local lacks its host id, data center or rack")
    nodes = {local_node.host_id: local_node}
    for row in peers:
        address = row.get("native_address", row.get("rpc_address"))
        if address is None or str(address) in _ANY_ADDRESS:
            address = row.get("peer")
        host_id = row.get("host_id")
        node = _node(row, address, row.get("native_port") or default_port,
                     up=was_up.get(str(host_id), True) if host_id is not None else True)
        if node is not None and node.tokens and node.host_id not in nodes:
            nodes[node.host_id] = node
    return ClusterTopology(
        nodes=tuple(sorted(nodes.values(), key=lambda n: n.host_id)),
        keyspaces={name: Replication.parse(options) for name, options in keyspaces.items()},
        local_dc=previous.local_dc if previous is not None else "",
        control_host_id=local_node.host_id,
        cluster_name=str(local.get("cluster_name") or ""),
        partitioner=str(local.get("partitioner") or ""))


def _node(row: Mapping[str, Any], address: object, port: object, *, up: bool) -> Node | None:
    host_id, dc, rack = row.get("host_id"), row.get("data_center"), row.get("rack")
    if host_id is None or not dc or rack is None or address is None:
        return None
    return Node(host_id=str(host_id), address=str(address), port=int(port), dc=str(dc), rack=str(rack),
                tokens=tuple(sorted(int(t) for t in (row.get("tokens") or ()))), up=up,
                release_version=row.get("release_version"))


def legacy_replication(strategy_class: str, strategy_options: str | None) -> dict[str, str]:
    """A replication map from Cassandra 2.x's ``system.schema_keyspaces`` (a class and its
    options as JSON), in the shape ``system_schema.keyspaces`` has it."""
    options = json.loads(strategy_options) if strategy_options else {}
    return {"class": strategy_class, **{str(k): str(v) for k, v in options.items()}}


def choose_local_dc(topology: ClusterTopology, configured: str | None, *, cluster: str,
                    contact_points: Sequence[str] = ()) -> str:
    """The datacenter whose nodes coordinate the proxy's requests to ``cluster``.

    ``configured`` (``<cluster>.local_dc``) must name one of the cluster's DCs.  Without it:
    the DC of the contact points (refused when they are in several: which one is local is the
    operator's choice), or, when no node has a contact point's address (host names), the DC
    of the node the control connection reached through them."""
    dcs = topology.dcs
    if configured:
        if configured not in dcs:
            raise TopologyError(
                f"{cluster}.local_dc is {configured!r}, but {cluster} has no such datacenter; "
                f"its datacenters: {', '.join(dcs) or 'none'}",
                hint=f"set {cluster}.local_dc in zdm.yaml (zdm-proxy's {cluster}_local_datacenter, "
                     f"ZDM_{cluster.upper()}_LOCAL_DATACENTER) to one of them")
        return configured
    named = {n.dc for n in topology.nodes if n.address in set(contact_points)}
    if len(named) > 1:
        raise TopologyError(
            f"{cluster}.contact_points are in several datacenters ({', '.join(sorted(named))}) and "
            f"{cluster}.local_dc is not set",
            hint=f"set {cluster}.local_dc to the datacenter this proxy is in")
    if named:
        return named.pop()
    control = topology.node(topology.control_host_id)
    if control is None:
        raise TopologyError(f"cannot tell {cluster}'s local datacenter",
                            hint=f"set {cluster}.local_dc to one of: {', '.join(dcs)}")
    return control.dc
