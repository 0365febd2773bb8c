"""A cluster's topology and its replicas, from a recorded snapshot, with no socket.

The recorded cluster (data/cluster_topology.json) has three nodes with three tokens each:
A = 10.0.1.1 (dc1, rack1), B = 10.0.1.2 (dc1, rack2), C = 10.0.2.1 (dc2, rack1), so its
ring, in token order, is A B C A B C A B C from -9e18 to 7.5e18.  The expected replicas
below are worked out by hand from Cassandra's placement; the properties check every
token against the DataStax Python driver's own token map, an independent implementation.
"""

from __future__ import annotations

import json
import pickle
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zdm.proxy.cluster_topology import (ClusterTopology, Node, Replication, TopologyError, choose_local_dc,
                                        from_system_tables, legacy_replication)
from zdm.proxy.token_map import TokenRing, replicas

DATA = json.loads((Path(__file__).parent / "data" / "cluster_topology.json").read_text())
A, B, C = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222", \
    "33333333-3333-4333-8333-333333333333"
NAMES = {A: "A", B: "B", C: "C"}


def recorded(local_dc: str = "dc1") -> ClusterTopology:
    return from_system_tables(DATA["local"], DATA["peers_v2"], DATA["keyspaces"],
                              default_port=9042).with_local_dc(local_dc)


def names(nodes) -> str:
    return "".join(NAMES[n.host_id] for n in nodes)


# -- the snapshot --------------------------------------------------------------------------

def test_the_snapshot_has_every_node_with_tokens_and_leaves_out_a_joining_one():
    topology = recorded()
    assert [(n.address, n.port, n.dc, n.rack, len(n.tokens)) for n in topology.nodes] == [
        ("10.0.1.1", 9042, "dc1", "rack1", 3), ("10.0.1.2", 9042, "dc1", "rack2", 3),
        ("10.0.2.1", 9042, "dc2", "rack1", 3)]
    assert topology.dcs == ("dc1", "dc2")
    assert topology.control_host_id == A
    assert topology.cluster_name == "Recorded Cluster"
    assert topology.node(B).tokens == (-6000000000000000000, 0, 6000000000000000000)
    assert topology.keyspaces["nts"] == Replication("NetworkTopologyStrategy", (("dc1", 2), ("dc2", 1)))
    assert topology.keyspaces["simple2"] == Replication("SimpleStrategy", (("", 2),))
    assert topology.keyspaces["system"] == Replication("LocalStrategy")
    assert topology.keyspaces["nts_transient"].factor("dc1") == 2


def test_peers_before_4_0_and_any_address_rows():
    """system.peers has rpc_address and no port: the configured port; 0.0.0.0 means the peer
    address."""
    peers = [{"peer": "10.0.1.2", "rpc_address": "0.0.0.0", "data_center": "dc1", "rack": "r",
              "host_id": B, "tokens": {"5"}},
             {"peer": "10.0.2.1", "rpc_address": "192.168.0.3", "data_center": "dc2", "rack": "r",
              "host_id": C, "tokens": {"7"}}]
    local = {**DATA["local"], "rpc_port": None}
    topology = from_system_tables(local, peers, {}, default_port=9142)
    assert [(n.address, n.port) for n in topology.nodes] == [("10.0.1.1", 9142), ("10.0.1.2", 9142),
                                                             ("192.168.0.3", 9142)]


def test_legacy_replication_reads_like_the_new_one():
    options = legacy_replication("org.apache.cassandra.locator.NetworkTopologyStrategy", '{"dc1":"3"}')
    assert Replication.parse(options) == Replication("NetworkTopologyStrategy", (("dc1", 3),))


def test_a_snapshot_crosses_to_a_worker_whole_and_equal():
    topology = recorded()
    replicas(topology, "nts", 0)  # a built ring is not part of what crosses
    copy = pickle.loads(pickle.dumps(topology))
    assert copy == topology and copy.nodes[0].tokens == topology.nodes[0].tokens
    assert names(replicas(copy, "nts", 0)) == "BAC"


def test_status_changes_make_new_snapshots_and_keep_the_old():
    topology = recorded()
    down = topology.with_status("10.0.1.2", 9042, up=False)
    assert [n.up for n in topology.nodes] == [True, True, True]
    assert [n.up for n in down.nodes] == [True, False, True]
    assert down != topology
    assert down.with_status("10.0.1.2", 9042, up=False) is down  # nothing changes: the same one
    assert topology.with_status("10.9.9.9", 9042, up=False) is topology  # no such node
    assert names(down.local_nodes()) == "A" and names(down.local_nodes(up_only=False)) == "AB"
    assert down.with_status("10.0.1.2", 9042, up=True) == topology


def test_a_refresh_keeps_what_events_said_about_a_node():
    down = recorded().with_status("10.0.2.1", 9042, up=False)
    again = from_system_tables(DATA["local"], DATA["peers_v2"], DATA["keyspaces"], default_port=9042,
                               previous=down)
    assert [n.up for n in again.nodes] == [True, True, False] and again.local_dc == "dc1"


# -- the local DC ----------------------------------------------------------------------------

@pytest.mark.parametrize("configured, contact_points, expected", [
    ("dc2", ("10.0.1.1",), "dc2"),            # the setting wins
    (None, ("10.0.2.1",), "dc2"),             # the contact point's DC
    (None, ("10.0.1.2", "10.0.1.1"), "dc1"),
    (None, ("db.example.com",), "dc1"),       # a name: the control connection's node's DC
], ids=["configured", "contact-point", "two-contact-points", "host-name"])
def test_choose_local_dc(configured, contact_points, expected):
    assert choose_local_dc(recorded(""), configured, cluster="origin", contact_points=contact_points) == expected


def test_a_local_dc_the_cluster_lacks_is_refused_naming_its_dcs():
    with pytest.raises(TopologyError) as err:
        choose_local_dc(recorded(""), "DC1", cluster="target")
    assert "target.local_dc is 'DC1'" in err.value.message and "dc1, dc2" in err.value.message
    assert "ZDM_TARGET_LOCAL_DATACENTER" in err.value.hint


def test_contact_points_in_two_dcs_without_local_dc_are_refused():
    with pytest.raises(TopologyError) as err:
        choose_local_dc(recorded(""), None, cluster="origin", contact_points=("10.0.1.1", "10.0.2.1"))
    assert "dc1, dc2" in err.value.message and "origin.local_dc" in err.value.hint


# -- nodes for connections -------------------------------------------------------------------

def test_pick_spreads_over_live_local_nodes_and_avoids_one_that_failed():
    topology = recorded()
    assert {names([topology.pick(key=k)]) for k in range(4)} == {"A", "B"}  # never dc2's C
    assert {names([topology.pick(avoid=[A], key=k)]) for k in range(4)} == {"B"}
    assert names([topology.pick(avoid=[A, B])]) == "C"  # no local node left: another DC's
    down = topology.with_status("10.0.1.1", 9042, False)
    assert {names([down.pick(key=k)]) for k in range(4)} == {"B"}
    assert topology.pick(avoid=[A, B, C]) is None


# -- replicas ------------------------------------------------------------------------------

@pytest.mark.parametrize("keyspace, token, local_dc, expected", [
    ("simple1", -9000000000000000000, "dc1", "A"),     # a ring token is its own range's end
    ("simple1", -8999999999999999999, "dc1", "B"),
    ("simple1", 7500000000000000001, "dc1", "A"),      # past the last token: wraps to the first
    ("simple1", -(1 << 63) + 1, "dc1", "A"),
    ("simple2", 0, "dc1", "BC"),                       # SimpleStrategy: B then C (dc2's)
    ("simple2", 0, "dc2", "CB"),
    ("simple5", 1, "dc1", "AB" + "C"),                 # rf above the node count: every node
    ("nts", 0, "dc1", "BAC"),                          # dc1: B then (C is dc2's) A; dc2: C
    ("nts", 0, "dc2", "CBA"),
    ("nts", 3000000000000000000, "dc1", "ABC"),
    ("nts_dc1", 1, "dc1", "A"),                        # C's range: dc1's first node past it
    ("nts_dc2", -6000000000000000000, "dc1", "C"),     # no local replica: the remote one
    ("nts_big", 5, "dc1", "ABC"),                      # rf 3 in a 2-node DC: both
    ("nts_transient", 1, "dc1", "AB"),                 # 2/1: two replicas, one transient
    ("nts_elsewhere", 1, "dc1", ""),                   # a DC the cluster lacks
    ("everywhere", 1, "dc2", "CAB"),
    ("system", 1, "dc1", ""),                          # LocalStrategy: not placed by token
    ("no_such_keyspace", 1, "dc1", ""),
], ids=lambda v: str(v))
def test_replicas(keyspace, token, local_dc, expected):
    assert names(replicas(recorded(local_dc), keyspace, token)) == expected


def test_replicas_that_are_down_are_left_out_unless_asked_for():
    down = recorded().with_status("10.0.1.2", 9042, False)
    assert names(replicas(down, "nts", 0)) == "AC"
    assert names(replicas(down, "nts", 0, up_only=False)) == "BAC"
    assert names(replicas(down, "nts", 0, local_dc="dc2")) == "CA"


# rack awareness: NetworkTopologyStrategy, one DC, racks r1 r1 r1 r2 around the ring
RACKS = ClusterTopology((Node("n1", "10.0.0.1", 9042, "dc", "r1", (10,)),
                         Node("n2", "10.0.0.2", 9042, "dc", "r1", (20,)),
                         Node("n3", "10.0.0.3", 9042, "dc", "r1", (30,)),
                         Node("n4", "10.0.0.4", 9042, "dc", "r2", (40,))), local_dc="dc")


@pytest.mark.parametrize("rf, token, expected", [
    (2, 5, ["n1", "n4"]),          # two racks, rf 2: one per rack, n2 and n3 skipped
    (3, 5, ["n1", "n2", "n4"]),    # rf 3, 2 racks: one repeat accepted, the first met
    (3, 35, ["n4", "n1", "n2"]),
    (1, 35, ["n4"]),
    (4, 5, ["n1", "n2", "n3", "n4"]),
], ids=["rf2", "rf3", "rf3-from-r2", "rf1", "rf4"])
def test_network_topology_strategy_places_replicas_on_distinct_racks_first(rf, token, expected):
    topology = RACKS.with_keyspaces({"ks": Replication("NetworkTopologyStrategy", (("dc", rf),))})
    assert [n.host_id for n in replicas(topology, "ks", token)] == expected


# -- properties: any ring, any replication, against the driver's token map ---------------------

@st.composite
def clusters(draw):
    count = draw(st.integers(1, 9))
    tokens = draw(st.lists(st.integers(-(1 << 63) + 1, (1 << 63) - 1), min_size=count,
                           max_size=count * 4, unique=True))
    owner = [i % count for i in range(count)] + draw(st.lists(st.integers(0, count - 1),
                                                             min_size=len(tokens) - count,
                                                             max_size=len(tokens) - count))
    nodes = tuple(Node(f"h{i}", f"10.0.0.{i}", 9042, draw(st.sampled_from(["dc1", "dc2", "dc3"])),
                       draw(st.sampled_from(["r1", "r2", "r3"])),
                       tuple(sorted(t for t, o in zip(tokens, owner) if o == i)))
                  for i in range(count))
    factors = tuple((dc, draw(st.integers(0, 4))) for dc in ("dc1", "dc2", "dc4"))
    return ClusterTopology(nodes, {"nts": Replication("NetworkTopologyStrategy", factors),
                                   "simple": Replication("SimpleStrategy", (("", factors[0][1]),))},
                           local_dc="dc1")


class _Host:
    """What the driver's token map reads of a host."""

    def __init__(self, node: Node) -> None:
        self.node, self.datacenter, self.rack = node, node.dc, node.rack


@settings(max_examples=150, deadline=None)
@given(topology=clusters(), probes=st.lists(st.integers(-(1 << 63) + 1, (1 << 63) - 1), max_size=8))
def test_every_token_has_min_rf_and_dc_size_distinct_replicas_per_dc_as_the_driver_places_them(
        topology, probes):
    from cassandra.metadata import NetworkTopologyStrategy, SimpleStrategy

    hosts = {n.host_id: _Host(n) for n in topology.nodes}
    owner = {t: hosts[n.host_id] for n in topology.nodes for t in n.tokens}
    ring = sorted(owner)
    factors = dict(topology.keyspaces["nts"].factors)
    nts = NetworkTopologyStrategy({dc: str(rf) for dc, rf in factors.items()}).make_token_replica_map(owner, ring)
    simple = SimpleStrategy({"replication_factor": str(factors["dc1"])}).make_token_replica_map(owner, ring)
    per_dc = Counter(n.dc for n in topology.nodes)
    # every range, by its end token and by a token inside it, and a few tokens anywhere
    for token in ring + [t - 1 for t in ring] + probes:
        found = replicas(topology, "nts", token, up_only=False)
        assert len({n.host_id for n in found}) == len(found)
        for dc in per_dc:
            in_dc = [n for n in found if n.dc == dc]
            assert len(in_dc) == min(factors.get(dc, 0), per_dc[dc])
        end = ring[TokenRing(topology.nodes).position(token)]
        theirs = [h.node.host_id for h in nts[end]]
        if len(set(theirs)) == len(theirs):
            assert {n.host_id for n in found} == set(theirs)
        else:  # the driver lists a node with several tokens twice when it fills used racks last
            assert {n.host_id for n in found} >= set(theirs)
        assert [n.host_id for n in replicas(topology, "simple", token, local_dc="none", up_only=False)] == \
            [h.node.host_id for h in simple[end]]


def test_a_300_node_ring_crosses_to_a_worker_process_in_messages_the_channel_takes():
    import random

    from zdm.phases.model import Cluster
    from zdm.proxy.channel import MAX_MESSAGE
    from zdm.proxy.worker import TopologyParts, topology_messages

    rng = random.Random(7)
    big = ClusterTopology(tuple(Node(f"{i:08d}-0000-4000-8000-000000000000", f"10.1.{i // 250}.{i % 250}", 9042,
                                     f"dc{i % 3}", f"r{i % 5}",
                                     tuple(sorted(rng.randrange(-(1 << 63) + 1, 1 << 63) for _ in range(256))))
                                for i in range(300)),
                          {f"ks{i}": Replication("NetworkTopologyStrategy", (("dc0", 3), ("dc1", 3)))
                           for i in range(500)}, local_dc="dc0")
    messages = topology_messages(Cluster.TARGET, big)
    assert len(messages) > 1 and all(len(pickle.dumps(m, protocol=pickle.HIGHEST_PROTOCOL)) < MAX_MESSAGE
                                     for m in messages)
    parts = TopologyParts()
    received = [parts.add(*m[1:]) for m in messages]
    assert received[:-1] == [None] * (len(messages) - 1) and received[-1] == big
    assert [n.host_id for n in replicas(received[-1], "ks1", 0)] == [n.host_id for n in replicas(big, "ks1", 0)]


@given(tokens=st.lists(st.integers(-(1 << 63) + 1, (1 << 63) - 1), min_size=1, max_size=30, unique=True),
       probe=st.integers(-(1 << 63) + 1, (1 << 63) - 1))
def test_the_ranges_cover_the_ring_exactly_once(tokens, probe):
    """Each token falls in exactly one range (previous ring token, ring token], wrapping."""
    ring = TokenRing([Node("n", "10.0.0.1", 9042, "dc", "r", tuple(sorted(tokens)))])
    ends = sorted(tokens)
    owning = [i for i, end in enumerate(ends)
              if (ends[i - 1] < probe <= end if i else (probe <= end or probe > ends[-1]))]
    assert owning == [ring.position(probe)]
