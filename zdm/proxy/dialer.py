"""Opening the proxy's connections to a cluster's nodes: where they are, and TLS.

Theory of operation: each cluster has a :class:`Route`, made once, on the first connection:

* the cluster's nodes, as the control connection discovered them
  (:class:`~zdm.proxy.cluster_topology.ClusterTopology`): the live nodes of the local DC, in
  turn, so that the connections of many clients spread over its coordinators, each proxy
  instance starting at another node (``spread``, its place among ``proxy.instances``), as
  zdm-proxy assigns hosts to instances; another DC's nodes only once no local one answers;
* before the topology is known, or when a contact point is no node's address (a load
  balancer, a NAT, a relay in front of the cluster: connecting to the nodes' own addresses
  would go around it), the contact points (``origin.contact_points`` / ``port``), in turn.
  With ``<cluster>.tls`` every connection is TLS with the context
  :func:`zdm.clusters.tls.client_context` makes, checking the node's name;
* a secure connect bundle (``<cluster>.secure_connect_bundle``, Astra DB): the metadata
  service names one SNI proxy and every node's host id; each connection goes to the SNI
  proxy with the next host id as its SNI name, over the bundle's mutual TLS.

A node that refuses a connection, or whose connection is lost, is marked down for a while
(1 s, doubling up to 30 s while it keeps failing; a connection that works clears it): the
next connections go to the other nodes first, and a dial that fails tries the next node at
once, so that one dead node never fails a client's STARTUP while another answers.

A connection that fails is explained: a TLS failure with :func:`zdm.clusters.tls_diagnosis.explain` (on a
thread, since it may look at the port again), naming the setting that fixes it; no key or
password is ever part of a message.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Callable

from zdm.config import ClusterConfig, Config
from zdm.cql.frame import Frame
from zdm.errors import ZdmError
from zdm.phases.model import Cluster
from zdm.proxy.cluster_topology import ClusterTopology, Node
from zdm.proxy.connection import BackendConnection
from zdm.clusters.bundle import resolve
from zdm.clusters.tls import client_context
from zdm.clusters.tls_diagnosis import classify, explain


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    #: the TLS server name to send (None: no TLS, or no name check)
    server_name: str | None = None
    #: what the node is called in metrics and messages
    label: str = ""


#: how long a node that failed is tried only after the others, doubling while it fails again
DOWN_FIRST_S, DOWN_MAX_S = 1.0, 30.0


class Route:
    """Where one cluster's connections go, in turn, and with which TLS context."""

    def __init__(self, endpoints: list[Endpoint], tls: ssl.SSLContext | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.endpoints = endpoints
        self.tls = tls
        self._clock = clock
        self._turn = -1  # the first connection goes to the first node
        #: an Astra DB bundle's SNI endpoints: the nodes are reached through them, always
        self.bundle = False
        #: endpoint -> (down until, the backoff it was given)
        self._down: dict[Endpoint, tuple[float, float]] = {}
        #: the last topology reaches_nodes was asked about, and its answer
        self._reach: tuple[object, bool] = (None, False)

    def next(self) -> Endpoint:
        """The endpoint a connection would go to now (the contact points, in turn)."""
        return self.candidates()[0]

    def candidates(self, avoid: Endpoint | None = None, topology: ClusterTopology | None = None,
                   spread: int = 0) -> list[Endpoint]:
        """Every endpoint once, in the order to try them: from the next one in turn, ``avoid``
        (a node just lost) last, and before it those this route found failing; with a usable
        ``topology``, its nodes instead of the contact points: the live ones of the local DC
        first, then other DCs', then those gossip says are down."""
        self._turn += 1
        nodes = self.nodes_of(topology)
        if nodes is None:
            endpoints, rank = self.endpoints, {}
        else:
            endpoints = [self.endpoint_of(n) for n in nodes]
            rank = {e: (not n.up, n.dc != topology.local_dc) for e, n in zip(endpoints, nodes)}
        now = self._clock()

        def key(e: Endpoint) -> tuple:
            return (e == avoid, self._down.get(e, (0.0, 0.0))[0] > now, rank.get(e, (False, False)))

        ordered: list[Endpoint] = []
        for _, group in itertools.groupby(sorted(endpoints, key=key), key=key):
            group = list(group)  # each group in turn, from another node each time
            start = (self._turn + spread) % len(group)
            ordered += group[start:] + group[:start]
        return ordered

    def nodes_of(self, topology: ClusterTopology | None) -> list[Node] | None:
        """The topology's nodes, by host id, when the contact points are among them."""
        if topology is None or not topology.nodes or self.bundle:
            return None
        if not all(topology.node_at(e.host, e.port) is not None for e in self.endpoints):
            return None
        return sorted(topology.nodes, key=lambda n: n.host_id)

    def reaches_nodes(self, topology: ClusterTopology) -> bool:
        """True when connections go to ``topology``'s nodes at their own addresses."""
        seen, answer = self._reach
        if seen is not topology:
            answer = self.nodes_of(topology) is not None
            self._reach = (topology, answer)
        return answer

    def endpoint_of(self, node: Node) -> Endpoint:
        verify = self.tls is not None and self.tls.check_hostname
        return Endpoint(node.address, node.port, node.address if verify else None,
                        f"{node.address}:{node.port}")

    def mark_down(self, endpoint: Endpoint) -> None:
        _, backoff = self._down.get(endpoint, (0.0, 0.0))
        backoff = min(DOWN_MAX_S, backoff * 2) if backoff else DOWN_FIRST_S
        self._down[endpoint] = (self._clock() + backoff, backoff)

    def mark_up(self, endpoint: Endpoint) -> None:
        self._down.pop(endpoint, None)

    def is_down(self, endpoint: Endpoint) -> bool:
        return self._down.get(endpoint, (0.0, 0.0))[0] > self._clock()

    @classmethod
    def of(cls, cfg: ClusterConfig, name: str) -> "Route":
        """The route for ``cfg`` (may call a bundle's metadata service: blocking)."""
        if cfg.secure_connect_bundle is not None:
            astra = resolve(cfg.secure_connect_bundle, key=f"{name}.secure_connect_bundle")
            route = cls([Endpoint(astra.sni_host, astra.sni_port, host_id, host_id)
                         for host_id in astra.host_ids], astra.ssl_context)
            route.bundle = True
            return route
        tls = None
        if cfg.tls is not None:
            tls = client_context(cfg.tls, name=name)
        return cls([Endpoint(host, port, host if tls is not None and tls.check_hostname else None,
                             f"{host}:{port}") for host, port in cfg.endpoints()], tls)


class Dialer:
    """Opens connections to cluster nodes by each cluster's :class:`Route`."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._routes: dict[Cluster, Route] = {}
        self._making: dict[Cluster, asyncio.Future] = {}
        #: (cluster, node label) -> the NodeStats connections to that node count into
        self.node_stats: Callable | None = None
        #: cluster -> None, called when a connection to it cannot be made
        self.on_failure: Callable[[Cluster], None] | None = None
        #: cluster -> its topology as last published (None: contact points only)
        self.topology: Callable[[Cluster], ClusterTopology | None] = lambda _cluster: None
        #: where this proxy instance starts in a cluster's list of nodes
        self.spread = 0

    def _cluster(self, cluster: Cluster) -> ClusterConfig:
        return self.config.origin if cluster is Cluster.ORIGIN else self.config.target

    async def route(self, cluster: Cluster) -> Route:
        route = self._routes.get(cluster)
        if route is not None:
            return route
        making = self._making.get(cluster)
        if making is None:  # one metadata call however many clients connect at once
            making = self._making[cluster] = asyncio.ensure_future(
                asyncio.to_thread(Route.of, self._cluster(cluster), cluster.value))
        try:
            route = await asyncio.shield(making)
        except BaseException:
            self._making.pop(cluster, None)  # the next connection tries again
            raise
        self._routes[cluster] = route
        return route

    async def dial(self, cluster: Cluster, *, on_event: Callable[[Frame], None] | None = None,
                   on_lost: Callable[[BackendConnection, str], None] | None = None,
                   avoid: Endpoint | None = None) -> BackendConnection:
        """A connection to a node of ``cluster``: the next in turn that answers (``avoid``, a
        node just lost, only if no other does); raises the first node's failure, explained."""
        try:
            route = await self.route(cluster)
        except ZdmError:
            self.failed(cluster)
            raise
        first: ZdmError | None = None
        for endpoint in route.candidates(avoid, self.topology(cluster), self.spread):
            try:
                backend = await self._connect(cluster, route, endpoint, on_event, on_lost)
            except ZdmError as exc:
                route.mark_down(endpoint)
                first = first or exc
                continue
            route.mark_up(endpoint)
            return backend
        raise first

    def reaches_nodes(self, cluster: Cluster, topology: ClusterTopology) -> bool:
        """True when this proxy connects to ``cluster``'s nodes at their own addresses (not
        through a bundle's SNI proxy, a load balancer or a NAT named as contact points)."""
        route = self._routes.get(cluster)
        return route is not None and route.reaches_nodes(topology)

    def is_down(self, cluster: Cluster, node: Node) -> bool:
        """True while ``node`` is tried only after the others (it failed lately)."""
        route = self._routes.get(cluster)
        return route is not None and route.is_down(route.endpoint_of(node))

    async def dial_node(self, cluster: Cluster, node: Node, *,
                        on_lost: Callable[[BackendConnection, str], None] | None = None) -> BackendConnection:
        """A connection to that very ``node`` (token-aware forwarding); raises its failure,
        explained, and marks it down."""
        route = await self.route(cluster)
        endpoint = route.endpoint_of(node)
        try:
            backend = await self._connect(cluster, route, endpoint, None, on_lost)
        except ZdmError:
            route.mark_down(endpoint)
            raise
        route.mark_up(endpoint)
        return backend

    def lost(self, backend: BackendConnection) -> None:
        """``backend``'s connection was lost: its node is tried after the others for a while."""
        route = self._routes.get(backend.cluster)
        if route is not None and backend.endpoint is not None:
            route.mark_down(backend.endpoint)

    async def _connect(self, cluster: Cluster, route: Route, endpoint: Endpoint, on_event,
                       on_lost) -> BackendConnection:
        cfg = self._cluster(cluster)
        pc = self.config.proxy
        loop = asyncio.get_running_loop()
        stats = self.node_stats(cluster, endpoint.label) if self.node_stats else None
        backend = BackendConnection(cluster, (endpoint.host, endpoint.port), max_frame_bytes=pc.max_frame_bytes,
                                    request_timeout=pc.request_timeout_s,
                                    on_event=on_event, on_lost=on_lost, node_stats=stats)
        extra = {} if route.tls is None else {"ssl": route.tls, "ssl_handshake_timeout": cfg.connect_timeout_s,
                                              "server_hostname": endpoint.server_name or ""}
        try:
            await asyncio.wait_for(loop.create_connection(lambda: backend, endpoint.host, endpoint.port,
                                                          **extra), cfg.connect_timeout_s)
        except (OSError, asyncio.TimeoutError) as exc:
            self.failed(cluster)
            raise await self._explained(cluster, cfg, route, endpoint, exc) from None
        sock = backend.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        backend.endpoint = endpoint
        return backend

    async def explain_lost(self, backend: BackendConnection, reason: str) -> ZdmError | None:
        """A connection lost before its first answer: the TLS failure it was (TLS 1.3 sends a
        refused client certificate's alert only after the handshake; a TLS node resets a
        plaintext client), or None."""
        route = self._routes.get(backend.cluster)
        endpoint = getattr(backend, "endpoint", None)
        if route is None or endpoint is None or classify(reason) is None:
            return None
        return await self._explained(backend.cluster, self._cluster(backend.cluster), route, endpoint,
                                     ConnectionError(reason))

    def failed(self, cluster: Cluster) -> None:
        if self.on_failure is not None:
            self.on_failure(cluster)

    async def _explained(self, cluster: Cluster, cfg: ClusterConfig, route: Route, endpoint: Endpoint,
                         exc: BaseException) -> ZdmError:
        name = cluster.value
        where = f"{name} ({endpoint.host}:{endpoint.port}" + \
            (f", node {endpoint.server_name})" if cfg.secure_connect_bundle else ")")
        error = exc if str(exc) else f"{type(exc).__name__}: timed out"
        if cfg.secure_connect_bundle is not None:
            tls = " (TLS)" if classify(error) is not None else ""
            return ZdmError(f"{where} is not reachable{tls}: {error}",
                            hint=f"check the database is active and the bundle "
                                 f"({name}.secure_connect_bundle) is its current one (download it "
                                 f"again from the Astra console), and that this host reaches "
                                 f"{endpoint.host}:{endpoint.port}")
        if route.tls is not None or classify(error) is not None:
            explanation = await asyncio.to_thread(
                explain, error, name=name, tls=cfg.tls, host=endpoint.host, port=endpoint.port,
                server_hostname=endpoint.server_name, timeout=min(cfg.connect_timeout_s, 5.0))
            if explanation is not None:
                return ZdmError(f"{name}: {explanation.message}", hint=explanation.hint)
        return ZdmError(f"{where} is not reachable: {error}",
                        hint=f"check {name}.contact_points / {name}.port")
