"""Which node a new cluster connection goes to (zdm.proxy.dialer.Route), with no sockets: the
discovered nodes of the local DC in turn, each proxy instance starting at another, other DCs'
nodes and those gossip says are down after them, a node that just failed last; the contact
points when they are not the nodes' own addresses (a load balancer or a relay in front)."""

from __future__ import annotations

import pytest

from zdm.proxy.cluster_topology import ClusterTopology, Node
from zdm.proxy.dialer import DOWN_FIRST_S, Endpoint, Route


def node(n: int, dc: str = "dc1", up: bool = True) -> Node:
    return Node(f"host-{n}", f"127.0.0.1{n}", 9042, dc, "rack1", up=up)


def ep(n: int) -> Endpoint:
    return Endpoint(f"127.0.0.1{n}", 9042, None, f"127.0.0.1{n}:9042")


def route(*contacts: int, clock=None) -> Route:
    return Route([ep(n) for n in contacts], None, **({"clock": clock} if clock else {}))


TOPOLOGY = ClusterTopology((node(1), node(2), node(3), node(4, "dc2"), node(5, "dc2")), local_dc="dc1")


def test_one_contact_point_reaches_every_local_node_in_turn():
    r = route(1)
    firsts = [r.candidates(topology=TOPOLOGY)[0] for _ in range(6)]
    assert set(firsts[:3]) == set(firsts[3:]) == {ep(1), ep(2), ep(3)}  # each in turn, never dc2


def test_other_dcs_come_after_every_local_node():
    order = route(1).candidates(topology=TOPOLOGY)
    assert {e.host for e in order[:3]} == {"127.0.0.11", "127.0.0.12", "127.0.0.13"}
    assert {e.host for e in order[3:]} == {"127.0.0.14", "127.0.0.15"}


@pytest.mark.parametrize("spread", [0, 1, 2])
def test_each_proxy_instance_starts_at_another_node(spread):
    starts = {route(1).candidates(topology=TOPOLOGY, spread=s)[0] for s in range(3)}
    assert len(starts) == 3


def test_a_node_gossip_calls_down_is_tried_after_the_live_ones_even_of_other_dcs():
    topology = ClusterTopology((node(1), node(2, up=False), node(4, "dc2")), local_dc="dc1")
    assert route(1).candidates(topology=topology) == [ep(1), ep(4), ep(2)]


def test_a_node_just_lost_is_tried_last_and_one_that_failed_after_the_others():
    now = [100.0]
    r = route(1, clock=lambda: now[0])
    r.mark_down(ep(2))
    for _ in range(3):
        order = r.candidates(avoid=ep(1), topology=TOPOLOGY)
        assert order[-1] == ep(1) and order[-2] == ep(2)
    now[0] += DOWN_FIRST_S + 0.1  # its time is up: back in turn with the others
    assert {r.candidates(avoid=ep(1), topology=TOPOLOGY)[0] for _ in range(3)} == {ep(2), ep(3)}


def test_contact_points_that_are_not_the_nodes_addresses_are_kept():
    """A relay, a load balancer or a NAT in front of the cluster: going to the nodes' own
    addresses would go around it."""
    relay = Route([Endpoint("127.0.0.99", 19042, None, "relay")], None)
    assert relay.candidates(topology=TOPOLOGY) == [Endpoint("127.0.0.99", 19042, None, "relay")]


def test_without_a_topology_the_contact_points_take_turns():
    r = route(1, 2)
    assert [r.candidates()[0] for _ in range(4)] in ([ep(2), ep(1), ep(2), ep(1)], [ep(1), ep(2), ep(1), ep(2)])


def test_an_astra_bundles_sni_endpoints_are_kept():
    r = Route([Endpoint("sni.example", 29042, "host-1", "host-1")], None)
    r.bundle = True
    only = ClusterTopology((Node("host-1", "sni.example", 29042, "dc1", "r"),), local_dc="dc1")
    assert r.candidates(topology=only) == [Endpoint("sni.example", 29042, "host-1", "host-1")]
