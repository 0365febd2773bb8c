"""What the preflight says of each cluster's nodes, datacenters and replication.

Theory of operation: every function here is pure, of the probes'
:class:`~zdm.proxy.cluster_topology.ClusterTopology` (the proxy's own snapshot, read by
:mod:`zdm.preflight.probe`) and the keyspaces in scope.  :func:`topology_checks` returns the
checks and one :class:`ClusterLayout` per cluster, what the report shows of it:

- ``<cluster> nodes``: a node down (or unreachable from this host) is a warning naming it;
- ``<cluster> local DC``: the DC the proxy will coordinate in, chosen by the proxy's own
  :func:`~zdm.proxy.cluster_topology.choose_local_dc`, so that what the proxy refuses at
  start (a ``local_dc`` the cluster lacks) the preflight refuses first;
- ``target datacenters``: a keyspace whose replication names a DC target lacks, on target
  or (when target has no such keyspace yet) on origin, is refused with the replication to
  set, for writes at QUORUM count replicas that cannot exist.  A keyspace target already
  replicates to its own DCs is not refused when origin's DCs differ (a two-DC origin moving
  to a one-DC target is a migration like any other), only warned about: clients near a DC
  target lacks will reach another one;
- ``replication factors``: a keyspace in scope with more replicas in a DC than the DC has
  nodes, on either cluster, is a warning naming keyspace, DC, RF and node count.

A cluster probed without its topology (``topology=False``, or a probe built by hand with
none) gets none of these checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from cassandra.metadata import protect_name

from zdm.preflight.probe import ClusterProbe
from zdm.preflight.report import Check, Status
from zdm.proxy.cluster_topology import (NETWORK_TOPOLOGY, SIMPLE, ClusterTopology, Node, Replication,
                                        TopologyError, choose_local_dc)


@dataclass(frozen=True)
class ClusterLayout:
    """One cluster's topology as the report shows it: its nodes, the DC the proxy will
    coordinate in ("" when it would refuse to start) and the replication of each keyspace in
    scope that the cluster has."""

    cluster: str
    nodes: tuple[Node, ...]
    local_dc: str = ""
    replication: tuple[tuple[str, Replication], ...] = ()

    @property
    def dcs(self) -> tuple[str, ...]:
        return tuple(sorted({n.dc for n in self.nodes}))

    def nodes_in(self, dc: str) -> tuple[Node, ...]:
        return tuple(sorted((n for n in self.nodes if n.dc == dc), key=_node_order))

    def to_dict(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "local_dc": self.local_dc or None,
                "datacenters": {dc: {"nodes": len(self.nodes_in(dc)),
                                     "down": sum(not n.up for n in self.nodes_in(dc))}
                                for dc in self.dcs},
                "nodes": [{"address": n.address, "port": n.port, "dc": n.dc, "rack": n.rack,
                           "up": n.up, "release_version": n.release_version, "host_id": n.host_id}
                          for n in sorted(self.nodes, key=_node_order)],
                "replication": {ks: replication_options(r) for ks, r in self.replication}}


def replication_options(replication: Replication) -> dict[str, Any]:
    """The replication as CQL's ``WITH replication = {...}`` spells it."""
    if replication.strategy == SIMPLE:
        return {"class": SIMPLE, "replication_factor": replication.replication_factor}
    return {"class": replication.strategy, **dict(replication.factors)}


def cql_literal(replication: Replication) -> str:
    """``{'class': 'NetworkTopologyStrategy', 'dc1': 3}``"""
    return "{" + ", ".join(f"'{k}': {v!r}" for k, v in replication_options(replication).items()) + "}"


def _node_order(n: Node) -> tuple:
    return n.dc, n.rack, n.address, n.port


def _counts(topology: ClusterTopology) -> dict[str, int]:
    return {dc: sum(1 for n in topology.nodes if n.dc == dc) for dc in topology.dcs}


# -- checks ------------------------------------------------------------------------------------

def check_nodes(probe: ClusterProbe) -> Check:
    topo = probe.topology
    assert topo is not None
    per_dc = ", ".join(f"{dc} {count}" for dc, count in _counts(topo).items())
    releases = sorted({f"Cassandra {n.release_version}" for n in topo.nodes if n.release_version})
    down = sorted((n for n in topo.nodes if not n.up), key=_node_order)
    if not down:
        return Check(f"{probe.name} nodes", Status.PASS,
                     f"{len(topo.nodes)} node(s) up ({per_dc}), {', '.join(releases) or 'release unknown'}")
    names = ", ".join(f"{n.address} ({n.dc}, {n.rack})" for n in down)
    return Check(f"{probe.name} nodes", Status.WARN,
                 f"{len(down)} of {len(topo.nodes)} node(s) down or unreachable from this host: {names}",
                 f"start them, or let this host (and the proxy's) reach them on port {down[0].port}, "
                 "then run `zdm preflight` again: while a node is down its replicas miss writes and "
                 "requests at a consistency level that needs it fail")


def check_local_dc(probe: ClusterProbe) -> tuple[Check, str]:
    """The check, and the DC the proxy will coordinate in ("" when it refuses)."""
    topo = probe.topology
    assert topo is not None
    name = f"{probe.name} local DC"
    try:
        dc = choose_local_dc(topo, probe.local_dc_setting, cluster=probe.name,
                             contact_points=probe.contact_points)
    except TopologyError as exc:
        return Check(name, Status.FAIL, exc.message, exc.hint or ""), ""
    how = (f"{probe.name}.local_dc" if probe.local_dc_setting else
           f"{probe.name}.local_dc is not set: the contact points' DC")
    return Check(name, Status.PASS, f"{dc} ({how}); {probe.name} has {', '.join(topo.dcs)}"), dc


def suggest(topology: ClusterTopology, like: Replication) -> Replication:
    """A NetworkTopologyStrategy replication over ``topology``'s DCs, like ``like``: each DC's
    factor where ``like`` names it, else ``like``'s largest, never more than the DC's nodes."""
    counts = _counts(topology)
    known = [(dc, rf) for dc, rf in like.factors if dc in counts and rf > 0]
    if known:  # keep what already fits; a DC to add is the user's choice
        return Replication(NETWORK_TOPOLOGY, tuple((dc, min(rf, counts[dc])) for dc, rf in known))
    largest = max((rf for _, rf in like.factors), default=1) or 1
    return Replication(NETWORK_TOPOLOGY, tuple((dc, min(largest, n)) for dc, n in counts.items()))


def check_target_datacenters(origin: ClusterProbe, target: ClusterProbe,
                             keyspaces: Sequence[str]) -> Check:
    o_topo, t_topo = origin.topology, target.topology
    assert o_topo is not None and t_topo is not None
    has = ", ".join(t_topo.dcs) or "none"
    refused, fixes, elsewhere = [], [], []
    for ks in keyspaces:
        o_rep, t_rep = o_topo.keyspaces.get(ks), t_topo.keyspaces.get(ks)
        if t_rep is not None:
            lacking = _lacking(t_rep, t_topo)
            if lacking:
                refused.append(f"{ks} on target replicates to {_factors(t_rep, lacking)}, which "
                               "target lacks")
                fixes.append(f"ALTER KEYSPACE {protect_name(ks)} WITH replication = "
                             f"{cql_literal(suggest(t_topo, t_rep))}")
            elif o_rep is not None and _lacking(o_rep, t_topo):
                elsewhere.append(f"{ks} (origin: {_factors(o_rep, _lacking(o_rep, t_topo))}; "
                                 f"target: {_factors(t_rep)})")
        elif o_rep is not None and _lacking(o_rep, t_topo):
            refused.append(f"{ks} on origin replicates to {_factors(o_rep, _lacking(o_rep, t_topo))}, "
                           f"which target lacks, and target has no keyspace {ks} yet")
            fixes.append(f"create the keyspace on target: CREATE KEYSPACE {protect_name(ks)} WITH replication = "
                         f"{cql_literal(suggest(t_topo, o_rep))}")
    if refused:
        return Check("target datacenters", Status.FAIL, "; ".join(refused),
                     f"target has DCs {has}; " + "; ".join(fixes))
    if elsewhere:
        return Check("target datacenters", Status.WARN,
                     f"origin replicates to DCs target lacks (target has {has}): "
                     + ", ".join(elsewhere),
                     "nothing blocks the migration: target keeps its own replication; clients "
                     "near a DC target lacks will reach another DC of target after the switch "
                     "(add that DC to target if they need local replicas)")
    return Check("target datacenters", Status.PASS,
                 f"every keyspace in scope replicates to DCs target has ({has})"
                 if keyspaces else f"no keyspace in scope; target has {has}")


def check_replication_factors(probes: Sequence[ClusterProbe], keyspaces: Sequence[str]) -> Check:
    """RF above a DC's node count (SimpleStrategy: the cluster's), on any cluster.  A DC the
    cluster lacks is left to :func:`check_target_datacenters` (target) or named with its 0
    nodes (origin, where the keyspace was made before the DC went away)."""
    over, fixes = [], []
    for probe in probes:
        topo = probe.topology
        assert topo is not None
        counts = _counts(topo)
        for ks in keyspaces:
            rep = topo.keyspaces.get(ks)
            if rep is None:
                continue
            if rep.strategy == SIMPLE:
                too_many = [("the cluster", rep.replication_factor, len(topo.nodes))]
            elif rep.strategy == NETWORK_TOPOLOGY:
                too_many = [(dc, rf, counts.get(dc, 0)) for dc, rf in rep.factors
                            if dc in counts or probe.name != "target"]
            else:
                continue
            too_many = [(dc, rf, n) for dc, rf, n in too_many if rf > n]
            for dc, rf, n in too_many:
                quorum = rf // 2 + 1
                what = ("QUORUM there always fails" if quorum > n else
                        f"QUORUM there needs {quorum} of its {n} node(s)")
                over.append(f"{probe.name}: {ks} has RF {rf} in {dc}, which has {n} node(s) ({what})")
            if too_many:
                where = ", ".join(dc for dc, _, _ in too_many)
                fit = (Replication(SIMPLE, (("", len(topo.nodes)),)) if rep.strategy == SIMPLE
                       else suggest(topo, rep))
                fixes.append(f"on {probe.name}, ALTER KEYSPACE {protect_name(ks)} WITH replication = "
                             f"{cql_literal(fit)} or add nodes to {where}")
    if over:
        return Check("replication factors", Status.WARN, "; ".join(over), "; ".join(fixes))
    return Check("replication factors", Status.PASS,
                 "every keyspace in scope has at most as many replicas per DC as nodes"
                 if keyspaces else "no keyspace in scope")


def layout(probe: ClusterProbe, keyspaces: Sequence[str], local_dc: str) -> ClusterLayout:
    topo = probe.topology
    assert topo is not None
    return ClusterLayout(probe.name, topo.nodes, local_dc,
                         tuple((ks, topo.keyspaces[ks]) for ks in keyspaces if ks in topo.keyspaces))


def topology_checks(origin: ClusterProbe, target: ClusterProbe, keyspaces: Sequence[str]
                    ) -> tuple[tuple[Check, ...], tuple[ClusterLayout, ...]]:
    """The topology checks of both clusters and what the report shows of them; nothing when
    either probe lacks its topology."""
    if origin.topology is None or target.topology is None:
        return (), ()
    checks: list[Check] = []
    layouts = []
    for probe in (origin, target):
        local, dc = check_local_dc(probe)
        checks += [check_nodes(probe), local]
        layouts.append(layout(probe, keyspaces, dc))
    checks += [check_target_datacenters(origin, target, keyspaces),
               check_replication_factors((origin, target), keyspaces)]
    return tuple(checks), tuple(layouts)


def _lacking(replication: Replication, topology: ClusterTopology) -> list[str]:
    if replication.strategy != NETWORK_TOPOLOGY:
        return []
    dcs = set(topology.dcs)
    return [dc for dc, rf in replication.factors if dc not in dcs and rf > 0]


def _factors(replication: Replication, only: Sequence[str] | None = None) -> str:
    """``dc2 (RF 2)``, for the DCs ``only`` (all by default)."""
    if replication.strategy != NETWORK_TOPOLOGY:
        return f"{replication.strategy} RF {replication.replication_factor}"
    return ", ".join(f"{dc} (RF {rf})" for dc, rf in replication.factors
                     if only is None or dc in only)

