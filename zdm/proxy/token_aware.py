"""Token-aware forwarding: a request whose partition the proxy knows goes to one of its replicas.

Theory of operation: a client connection's requests go to its cluster connection on each
cluster (its *home* node, :mod:`~zdm.proxy.dialer`), as a driver's go to the node it picked.
A driver that knows the ring would rather send an EXECUTE to a replica of the partition it
binds, so that the coordinator holds the data; behind a proxy it cannot (the proxy shows
its own instances as the cluster).  So the proxy does it on the driver's behalf, on each
cluster, by that cluster's own ring (:mod:`~zdm.proxy.token_map`):

* The partition of an EXECUTE, or of a BATCH whose prepared children share one, comes from
  the statement's partition-key markers (:mod:`~zdm.proxy.routing_key`): nothing is parsed.
* When the home node is a live local replica, the request stays there (no new connection).
* Otherwise it goes over a *node link*: a connection of the worker's to that replica, shared
  by the client connections that logged in the same way (same protocol version,
  compression, STARTUP options and credentials: the cluster authorizes a request by the
  login of the connection it arrives on).  A link lives while one of them is connected.
* A link is opened in the background the first time it would have been used, and each
  statement is prepared on it in the background the first time it would have been run
  there; until both are done the request goes home, as it would without token awareness.
  So a request never waits for a link, and an UNPREPARED from a node always means what it
  means from the home node (the cluster forgot the statement: a schema change), which
  :mod:`~zdm.proxy.pending` handles as before.  A link that answers UNPREPARED forgets that
  statement until it is prepared there again.
* A link whose node goes away fails its requests in flight, as a coordinator's death does
  (drivers retry idempotent statements); the dialer marks the node down, and the requests
  after it go home until a new link is up.
* Among several local replicas, requests take them in turn.

Nodes of another DC are never chosen (a replica there is further than the home node), and
nothing of this runs when a cluster has one node, when its contact points are not its nodes'
addresses (a load balancer, a NAT: :meth:`~zdm.proxy.dialer.Dialer.node_endpoint`), or with
``proxy.token_aware: false``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Callable, Iterable

from zdm.cql import messages as m
from zdm.cql.constants import Opcode
from zdm.cql.frame import Frame
from zdm.errors import ZdmError
from zdm.phases.model import Cluster
from zdm.proxy.aggregate import Outcome
from zdm.proxy.cluster_topology import ClusterTopology, Node
from zdm.proxy.connection import BackendConnection
from zdm.proxy.pending import unprepared_id
from zdm.proxy.prepared import PreparedEntry
from zdm.proxy.reconnect import handshake
from zdm.proxy.routing_key import Partition
from zdm.proxy.token_map import local_replicas

log = logging.getLogger("zdm.proxy")

Send = Callable[..., None]
#: STARTUP options that only name the client; links are shared whatever they say
_NAMING_OPTIONS = frozenset({"DRIVER_NAME", "DRIVER_VERSION", "CLIENT_ID", "APPLICATION_NAME",
                             "APPLICATION_VERSION"})


class NodeLink:
    """One connection of the worker's to one node, and the statements prepared on it."""

    __slots__ = ("cluster", "node", "backend", "send", "prepared", "_queue", "_busy", "_keyspace",
                 "version", "closed")

    def __init__(self, cluster: Cluster, node: Node) -> None:
        self.cluster = cluster
        self.node = node
        self.backend: BackendConnection | None = None  # None while it is being opened
        self.send: Send | None = None
        self.version = 4
        #: the ids (as this cluster runs them) this node has prepared for the proxy
        self.prepared: set[bytes] = set()
        self._queue: list[PreparedEntry] = []  # statements to prepare, one at a time
        self._busy = False
        self._keyspace: str | None = None  # the USE of this connection (v3/v4 prepares)
        self.closed = False

    @property
    def ready(self) -> bool:
        return self.send is not None and not self.closed

    def forward(self, flags: int, opcode: int, body: bytes, callback, timeout=None) -> None:
        """Send a request on this link; an UNPREPARED answer unmarks the statement."""
        def done(outcome: Outcome) -> None:
            if outcome.__class__ is Frame and outcome.opcode == Opcode.ERROR:
                pid = unprepared_id(outcome)
                if pid is not None:
                    self.prepared.discard(pid)
            callback(outcome)
        self.send(flags, opcode, body, done, timeout)

    def prepare(self, entries: Iterable[PreparedEntry]) -> None:
        """Prepare ``entries`` on this node, in the background, one after the other."""
        queued = {id(e) for e in self._queue}
        for entry in entries:
            if id(entry) not in queued and entry.id_on(self.cluster) is not None:
                self._queue.append(entry)
        if not self._busy and self.send is not None:
            self._next()

    def _next(self) -> None:
        while self._queue and not self.closed:
            entry = self._queue.pop(0)
            pid = entry.id_on(self.cluster)
            if pid is None or pid in self.prepared:
                continue
            self._busy = True
            if self.version < 5 and entry.keyspace and entry.keyspace != self._keyspace:
                # before v5 a PREPARE takes the connection's keyspace: set it first
                body = m.encode_query(f'USE "{entry.keyspace}"', version=self.version)
                self.send(0, Opcode.QUERY, body, lambda outcome, e=entry: self._used(e, outcome))
            else:
                self._send_prepare(entry)
            return
        self._busy = False

    def _used(self, entry: PreparedEntry, outcome: Outcome) -> None:
        if outcome.__class__ is Frame and outcome.opcode == Opcode.RESULT:
            self._keyspace = entry.keyspace
            self._send_prepare(entry)
        else:
            self._next()

    def _send_prepare(self, entry: PreparedEntry) -> None:
        version = self.version
        body = m.encode_prepare(entry.run_query, version, keyspace=entry.keyspace if version >= 5 else None)
        pid = entry.id_on(self.cluster)

        def prepared(outcome: Outcome) -> None:
            if outcome.__class__ is Frame and outcome.opcode == Opcode.RESULT:
                result = m.decode_prepared_result(outcome.body, version, flags=outcome.flags)
                if result.prepared_id == pid:  # else the node runs another statement: never used
                    self.prepared.add(pid)
            self._next()
        self.send(0, Opcode.PREPARE, body, prepared)

    def close(self) -> None:
        self.closed = True
        self._queue.clear()
        if self.backend is not None:
            self.backend.close()


class LinkGroup:
    """The node links of the client connections of one login on one cluster."""

    __slots__ = ("key", "links", "members")

    def __init__(self, key: tuple) -> None:
        self.key = key
        self.links: dict[str, NodeLink] = {}  # by host id
        self.members = 0


class NodeLinks:
    """A worker's node links, by login; what a client connection asks for a replica."""

    def __init__(self, dialer, *, topology: Callable[[Cluster], ClusterTopology | None],
                 stats=None) -> None:
        self.dialer = dialer
        self.topology = topology
        self.stats = stats
        self._groups: dict[tuple, LinkGroup] = {}
        self._tasks: set[asyncio.Task] = set()

    def backends(self):
        """Every open link's connection (swept and kept alive by the worker's tick)."""
        for group in self._groups.values():
            for link in group.links.values():
                if link.backend is not None and not link.closed:
                    yield link.backend

    def join(self, session) -> "SessionReplicas":
        """The replicas chooser of a client connection past its handshake."""
        groups = {}
        for cluster, backend in session.backends.items():
            key = _login_key(session, cluster, backend)
            group = self._groups.get(key)
            if group is None:
                group = self._groups[key] = LinkGroup(key)
            group.members += 1
            groups[cluster] = group
        return SessionReplicas(self, session, groups)

    def leave(self, groups: Iterable[LinkGroup]) -> None:
        for group in groups:
            group.members -= 1
            if group.members <= 0 and self._groups.get(group.key) is group:
                del self._groups[group.key]
                for link in group.links.values():
                    link.close()

    def open(self, group: LinkGroup, cluster: Cluster, node: Node, session) -> None:
        """Open a link to ``node`` in the background, logged in as ``session`` was."""
        link = group.links[node.host_id] = NodeLink(cluster, node)
        task = asyncio.ensure_future(self._open(group, link, session))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _open(self, group: LinkGroup, link: NodeLink, session) -> None:
        cluster, node = link.cluster, link.node

        def lost(backend: BackendConnection, reason: str) -> None:
            if link.closed:
                return  # closed on purpose: its node is fine
            self.dialer.lost(backend)
            _drop(group, link)
            log.info("token-aware link to %s node %s lost: %s", cluster.value, node.endpoint, reason)

        try:
            backend = await self.dialer.dial_node(cluster, node, on_lost=lost)
        except ZdmError as exc:
            log.info("token-aware link to %s node %s: %s", cluster.value, node.endpoint, exc.message)
            _drop(group, link)
            return
        link.backend = backend
        if link.closed:
            backend.close()
            return
        home = session.backends.get(cluster)
        backend.codec = home.codec if home is not None else None
        problem = await handshake(
            backend, session.version, session.startup, credentials=session.credentials.get(cluster),
            client_auth=session.client_auth if cluster is session.login_cluster else [],
            keyspace=None, register=None)
        if problem is not None:
            log.info("token-aware link to %s node %s: %s", cluster.value, node.endpoint, problem)
            self.dialer.lost(backend)  # not tried again for a while
            _drop(group, link)
            backend.close()
            return
        if link.closed:
            backend.close()
            return
        link.version = session.version
        link.send = backend.sender(session.version)
        link.prepare(())  # anything asked for while it was being opened


class SessionReplicas:
    """For one client connection: the send to a replica of a partition, or None (home)."""

    __slots__ = ("links", "session", "groups", "_turn")

    def __init__(self, links: NodeLinks, session, groups: dict[Cluster, LinkGroup]) -> None:
        self.links = links
        self.session = session
        self.groups = groups
        self._turn = 0

    def __call__(self, cluster: Cluster, partition: Partition,
                 entries: tuple[PreparedEntry, ...]) -> Send | None:
        links = self.links
        topology = links.topology(cluster)
        if topology is None or len(topology.nodes) < 2 or \
                not topology.partitioner.endswith("Murmur3Partitioner"):
            return None
        local = local_replicas(topology, partition.keyspace, partition.token)
        if not local:
            return None
        home = self.session.backends.get(cluster)
        endpoint = getattr(home, "endpoint", None)
        stats = links.stats
        if endpoint is not None:
            for node in local:
                if node.address == endpoint.host and node.port == endpoint.port:
                    if stats is not None:
                        stats.token_aware_replica += 1
                    return None  # home is a replica: it coordinates
        group = self.groups.get(cluster)
        if group is None or not links.dialer.reaches_nodes(cluster, topology):
            return None
        self._turn += 1
        count = len(local)
        for i in range(count):
            node = local[(self._turn + i) % count]
            link = group.links.get(node.host_id)
            if link is None:
                if not links.dialer.is_down(cluster, node):
                    links.open(group, cluster, node, self.session)
                continue
            if not link.ready:
                if not link.closed:
                    link.prepare(entries)  # queued until it is open
                continue
            missing = [e for e in entries if e.id_on(cluster) not in link.prepared]
            if missing:
                link.prepare(missing)
                continue
            if stats is not None:
                stats.token_aware_replica += 1
            return link.forward
        if stats is not None:
            stats.token_aware_fallback += 1
        return None

    def close(self) -> None:
        self.links.leave(self.groups.values())
        self.groups = {}


def _drop(group: LinkGroup, link: NodeLink) -> None:
    link.closed = True
    if group.links.get(link.node.host_id) is link:
        del group.links[link.node.host_id]


def _login_key(session, cluster: Cluster, backend: BackendConnection) -> tuple:
    """What a link must share with a client connection to carry its requests."""
    startup = tuple(sorted((k, v) for k, v in session.startup.items() if k not in _NAMING_OPTIONS))
    codec = backend.codec.name if backend.codec is not None else None
    if cluster is session.login_cluster and session.client_auth:
        login = hashlib.sha256(b"\0".join(session.client_auth)).hexdigest()
    else:
        login = "proxy"
    return (cluster, session.version, codec, startup, login)
