"""Token-aware forwarding, with no socket: which requests ask for a replica, which send they
take, and how a client connection chooses among its links (zdm.proxy.token_aware).

The cluster is three nodes of one DC with one token each, so the replica of a token at RF 1
is the node whose token ends its range: A owns (C, A], B (A, B], C (B, C].
"""

from __future__ import annotations

import struct

from tests.support import primitives as p
from tests.support.cql import prepared_result, response, unprepared, void
from tests.unit.test_proxy_handler import Chart
from zdm.cql import messages as m
from zdm.cql.constants import Opcode
from zdm.phases.model import Cluster, Phase
from zdm.proxy.cluster_topology import SIMPLE, ClusterTopology, Node, Replication
from zdm.proxy.dialer import Endpoint
from zdm.proxy.murmur3 import token
from zdm.proxy.prepared import PreparedEntry
from zdm.proxy.routing_key import KeyMarkers, Partition
from zdm.proxy.stats import ProxyStats
from zdm.proxy.token_aware import LinkGroup, NodeLink, SessionReplicas

O, T = Cluster.ORIGIN, Cluster.TARGET
MURMUR3 = "org.apache.cassandra.dht.Murmur3Partitioner"
A, B, C = (Node(f"{i}" * 8 + "-0000-4000-8000-000000000000", f"10.0.0.{i}", 9042, "dc1", "r1", (t,))
           for i, t in ((1, -3 * 10**18), (2, 0), (3, 3 * 10**18)))


def cluster(*nodes, rf=1) -> ClusterTopology:
    return ClusterTopology(nodes=nodes, keyspaces={"ks": Replication(SIMPLE, (("", rf),))},
                           local_dc="dc1", partitioner=MURMUR3)


def key_owned_by(node: Node) -> int:
    """An int key whose token falls in ``node``'s range (RF 1)."""
    ring = sorted([A, B, C], key=lambda n: n.tokens[0])
    i = ring.index(node)
    low, high = ring[i - 1].tokens[0], node.tokens[0]
    for k in range(10_000):
        t = token(struct.pack(">i", k))
        if (low < t <= high) if low < high else (t > low or t <= high):
            return k
    raise AssertionError("no key found")


class Replicas:
    """A stand-in for SessionReplicas: a recording send for the clusters in ``sends``."""

    def __init__(self, *clusters):
        self.asked: list[tuple] = []
        self.sent: list[tuple] = []
        self.clusters = clusters

    def __call__(self, cluster, partition, entries):
        self.asked.append((cluster, partition, entries))
        if cluster not in self.clusters:
            return None
        return lambda flags, op, body, cb, timeout=None: self.sent.append((cluster, op, body, cb))


def chart_with(replicas, topologies, phase=Phase.PROXY) -> Chart:
    chart = Chart(phase)
    chart.ctx._token_aware_on = True
    for c, topology in topologies.items():
        chart.ctx.set_cluster(c, topology)
    chart.handler.replicas = replicas
    return chart


def prepare(chart, pk_indexes=(0,), pid=b"\xaa" * 16):
    chart.request(Opcode.PREPARE, m.encode_prepare("INSERT INTO ks.t (k, v) VALUES (?, ?)", 4), stream=1)
    for sent in chart.take():
        sent.answer(response(sent.frame, Opcode.RESULT,
                             prepared_result(4, pid, binds=("k", "v"), pk_indexes=pk_indexes)))
    chart.reply()
    return pid


def execute(chart, pid, k, v=7):
    chart.request(Opcode.EXECUTE, m.encode_execute(pid, [struct.pack(">i", k), struct.pack(">i", v)], 4))


def test_an_execute_with_its_key_bound_asks_each_cluster_for_a_replica_of_its_partition():
    replicas = Replicas(O)  # origin has a replica link ready; target does not
    chart = chart_with(replicas, {O: cluster(A, B, C), T: cluster(A, B, C)})
    pid = prepare(chart)
    execute(chart, pid, k=42)
    expected = Partition("ks", token(struct.pack(">i", 42)))
    assert [(c, p) for c, p, _ in replicas.asked] == [(O, expected), (T, expected)]
    assert [e.origin_id for e in replicas.asked[0][2]] == [pid]
    (origin_sent,) = replicas.sent
    (target_home,) = chart.take()  # target's went home, on the connection's own node
    assert origin_sent[0] is O and target_home.cluster is T
    # the write carries its one timestamp on both paths: the same body
    assert m.decode_execute(origin_sent[2], 4).has_timestamp and origin_sent[2] == target_home.body
    origin_sent[3](void(target_home.frame))
    target_home.answer(void(target_home.frame))
    stream, frame = chart.reply()
    assert frame.opcode == Opcode.RESULT and chart.handler.in_flight == 0


def test_a_resend_after_unprepared_goes_home():
    replicas = Replicas(O, T)
    chart = chart_with(replicas, {O: cluster(A, B, C), T: cluster(A, B, C)})
    pid = prepare(chart)
    execute(chart, pid, k=1)
    (o, _, _, o_cb), (t, _, _, t_cb) = replicas.sent
    replicas.sent.clear()
    o_cb(void(chart_frame := _frame()))
    t_cb(unprepared(chart_frame, pid))  # the secondary forgot it: the proxy prepares again
    (reprepare,) = chart.take()
    assert reprepare.cluster is T and reprepare.opcode == Opcode.PREPARE
    reprepare.answer(response(reprepare.frame, Opcode.RESULT, prepared_result(4, pid, binds=("k", "v"),
                                                                               pk_indexes=(0,))))
    (resent,) = chart.take()  # on the connection's own node, which has just prepared it
    assert resent.cluster is T and resent.opcode == Opcode.EXECUTE and replicas.sent == []
    resent.answer(void(resent.frame))
    assert chart.reply()[1].opcode == Opcode.RESULT


def _frame():
    from zdm.cql.frame import Frame
    return Frame(4, False, 0, 7, Opcode.EXECUTE, b"")


def test_nothing_is_asked_of_single_node_clusters_or_unkeyed_requests():
    replicas = Replicas(O, T)
    chart = chart_with(replicas, {O: cluster(A), T: cluster(B)})
    pid = prepare(chart)
    execute(chart, pid, k=1)
    assert replicas.asked == [] and len(chart.take()) == 2  # single nodes: no key is worked out
    replicas = Replicas(O, T)
    chart = chart_with(replicas, {O: cluster(A, B, C), T: cluster(A, B, C)})
    pid = prepare(chart, pk_indexes=())  # v4 result without key markers (e.g. a range read)
    execute(chart, pid, k=1)
    chart.request(Opcode.QUERY, m.encode_query("INSERT INTO ks.t (k, v) VALUES (1, 1)", version=4))
    assert replicas.asked == []


def test_a_batch_on_one_partition_asks_for_its_replica_and_one_on_two_does_not():
    replicas = Replicas()
    chart = chart_with(replicas, {O: cluster(A, B, C), T: cluster(A, B, C)})
    pid = prepare(chart)
    key = struct.pack(">i", 5)

    def batch(*keys):  # an unlogged batch of EXECUTEs of the prepared INSERT
        body = p.write_byte(1) + p.write_short(len(keys))
        for k in keys:
            body += p.write_byte(1) + p.write_short_bytes(pid) + p.write_short(2) + p.write_bytes(k) + \
                p.write_bytes(b"\x00\x00\x00\x01")
        return body + p.write_short(1) + p.write_byte(0)
    chart.request(Opcode.BATCH, batch(key, key))
    assert {p for _, p, _ in replicas.asked} == {Partition("ks", token(key))}
    replicas.asked.clear()
    chart.request(Opcode.BATCH, batch(key, struct.pack(">i", 6)))
    assert replicas.asked == []


# -- choosing among links ------------------------------------------------------------------

class FakeDialer:
    def __init__(self, down=()):
        self.down = set(down)

    def reaches_nodes(self, cluster, topology):
        return True

    def is_down(self, cluster, node):
        return node.host_id in self.down


class FakeLinks:
    def __init__(self, topology, dialer=None):
        self._topology = topology
        self.dialer = dialer or FakeDialer()
        self.stats = ProxyStats()
        self.opened: list[Node] = []

    def topology(self, cluster):
        return self._topology

    def open(self, group, cluster, node, session):
        self.opened.append(node)
        group.links[node.host_id] = NodeLink(cluster, node)  # being opened: not ready


class FakeBackend:
    def __init__(self, node):
        self.endpoint = Endpoint(node.address, node.port)
        self.codec = None


class FakeSession:
    def __init__(self, home):
        self.backends = {O: FakeBackend(home)}
        self.closed = False


class RecordingLink(NodeLink):
    __slots__ = ("sent",)


def ready_link(node, prepared=()):
    link = RecordingLink(O, node)
    link.sent = []
    link.send = lambda flags, op, body, cb, timeout=None: link.sent.append((op, body, cb))
    link.prepared.update(prepared)
    return link


ENTRY = PreparedEntry("INSERT INTO ks.t (k, v) VALUES (?, ?)", "ks", None, b"\xaa" * 16, b"\xaa" * 16,
                      key_markers=KeyMarkers("ks", (0,)))


def partition_on(node):
    return Partition("ks", token(struct.pack(">i", key_owned_by(node))))


def test_home_coordinates_when_it_is_a_replica():
    links = FakeLinks(cluster(A, B, C))
    chooser = SessionReplicas(links, FakeSession(home=B), {O: LinkGroup("k")})
    assert chooser(O, partition_on(B), (ENTRY,)) is None
    assert links.opened == [] and links.stats.token_aware_replica == 1


def test_a_link_is_opened_then_prepared_in_the_background_and_used_once_both_are_done():
    links = FakeLinks(cluster(A, B, C))
    group = LinkGroup("k")
    chooser = SessionReplicas(links, FakeSession(home=A), {O: group})
    part = partition_on(C)
    assert chooser(O, part, (ENTRY,)) is None and links.opened == [C]  # home meanwhile
    assert chooser(O, part, (ENTRY,)) is None and links.opened == [C]  # opened only once
    link = group.links[C.host_id] = ready_link(C)
    assert chooser(O, part, (ENTRY,)) is None  # not prepared there yet: it is, in the background
    (op, body, used_cb), = link.sent  # v4 prepares in the connection's keyspace: USE it first
    assert op == Opcode.QUERY and m.decode_query(body, 4).query == 'USE "ks"'
    used_cb(void(_frame()))
    (op, body, prepared_cb) = link.sent[1]
    assert op == Opcode.PREPARE and m.decode_prepare(body, 4).query == ENTRY.query
    prepared_cb(response(_frame(), Opcode.RESULT, prepared_result(4, ENTRY.origin_id)))
    assert ENTRY.origin_id in link.prepared
    send = chooser(O, part, (ENTRY,))
    assert send == link.forward
    assert (links.stats.token_aware_replica, links.stats.token_aware_fallback) == (1, 3)


def test_a_link_that_answers_unprepared_is_not_used_for_that_statement_until_prepared_again():
    links = FakeLinks(cluster(A, B, C))
    group = LinkGroup("k")
    link = group.links[C.host_id] = ready_link(C, prepared={ENTRY.origin_id})
    chooser = SessionReplicas(links, FakeSession(home=A), {O: group})
    send = chooser(O, partition_on(C), (ENTRY,))
    got = []
    send(0, Opcode.EXECUTE, b"body", got.append)
    (_, _, cb), = link.sent
    link.sent.clear()
    answer = unprepared(_frame(), ENTRY.origin_id)
    cb(answer)
    assert got == [answer]  # the client's path decides what to do with it, as from home
    assert ENTRY.origin_id not in link.prepared
    assert chooser(O, partition_on(C), (ENTRY,)) is None  # home, and prepared there again
    assert [op for op, _, _ in link.sent] == [Opcode.QUERY]  # USE, then PREPARE


def test_replicas_are_taken_in_turn_and_a_down_one_is_not_dialed():
    links = FakeLinks(cluster(A, B, C, rf=3), FakeDialer(down={C.host_id}))
    group = LinkGroup("k")
    group.links[A.host_id] = ready_link(A, prepared={ENTRY.origin_id})
    group.links[B.host_id] = ready_link(B, prepared={ENTRY.origin_id})
    outside = Node("9" * 8 + "-0000-4000-8000-000000000000", "10.0.9.9", 9042, "dc1", "r1", ())
    chooser = SessionReplicas(links, FakeSession(home=outside), {O: group})
    chosen = {chooser(O, partition_on(A), (ENTRY,)) for _ in range(6)}
    assert chosen == {group.links[A.host_id].forward, group.links[B.host_id].forward}
    assert links.opened == []  # C is a replica too, but down lately
