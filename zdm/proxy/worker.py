"""Workers: the data planes of one proxy instance, in this process or in processes of their own.

Theory of operation: the instance (:class:`~zdm.proxy.server.ProxyServer`) accepts every
client connection and hands it to its least busy worker.  A worker is either a
:class:`LocalWorker` (the instance's own event loop serves the connection: an in-process
proxy, tests, the demo) or a :class:`WorkerProcess`, a ``python -m zdm.proxy.worker``
process with its own event loop (uvloop where installed) on its own core, linked to the
instance by a :class:`~zdm.proxy.channel.Channel`.  Both offer the instance the same few
operations: hand over a socket, apply a routing (returning once the worker routes by it),
report counters, drain.

The channel's messages, instance -> worker: ``init`` (config, topology, routing), ``conn``
(with the socket), ``routing`` (routing, revision), ``schema`` (origin's primary keys, in
parts of :data:`SCHEMA_PART` tables, the last one flagged), ``topology`` (a cluster and its
real topology, pickled, in parts of :data:`TOPOLOGY_PART` bytes, the last one flagged), ``stats?``, ``drain`` (timeout);
worker -> instance: ``ready``, ``closed`` (how many connections ended), ``ack``
(revision), ``stats`` (snapshot), ``drained``; and ``logging`` (level, format) when the
instance reloads its settings.

A worker process ignores SIGTERM, SIGINT and SIGHUP: the signals that reach a whole process
group or control group are the instance's to act on (it drains its workers, and tells them of
new settings); a worker that lost its instance drains and stops by itself.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import signal
import socket
import subprocess
import sys

from zdm import logs
from zdm.config import Config
from zdm.phases.model import Cluster, Routing
from zdm.proxy import channel
from zdm.proxy.cluster_topology import ClusterTopology
from zdm.proxy.dataplane import DataPlane
from zdm.proxy.schema import KeySchema
from zdm.proxy.topology import Instance, VirtualTopology

log = logging.getLogger("zdm.proxy")

START_TIMEOUT = 30.0
ACK_TIMEOUT = 10.0
#: tables per ``schema`` message: a channel message must stay well below its size limit
SCHEMA_PART = 2000
#: bytes of a pickled cluster topology per ``topology`` message (300 nodes of 256 tokens: ~650 KB)
TOPOLOGY_PART = 256 * 1024


class LocalWorker:
    """A data plane on the instance's own event loop."""

    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane
        self.index = 0
        self.alive = True

    @property
    def connections(self) -> int:
        return self.plane.connections

    def hand(self, sock: socket.socket) -> None:
        self.plane.adopt(sock)

    async def set_routing(self, routing: Routing, revision: int | None) -> None:
        self.plane.set_routing(routing)

    def set_schema(self, schema: KeySchema) -> None:
        self.plane.ctx.schema = schema

    def set_topology(self, cluster: Cluster, topology: ClusterTopology) -> None:
        self.plane.ctx.set_cluster(cluster, topology)

    async def refresh_stats(self) -> None:
        pass

    def stats_snapshot(self) -> dict:
        return self.plane.snapshot()

    async def drain(self, timeout: float) -> None:
        await self.plane.drain(timeout)

    def set_logging(self, level: str, fmt: str) -> None:
        pass  # this process's logging: the instance set it


class WorkerProcess:
    """A worker process, seen from the instance."""

    def __init__(self, index: int, config: Config, topology: VirtualTopology, me: Instance,
                 routing: Routing, *, name: str, max_version: int, compression=None,
                 on_exit=None, schema: KeySchema | None = None,
                 topologies: dict[Cluster, ClusterTopology] | None = None) -> None:
        self.index = index
        self.max_version = max_version
        self.compression = compression  # per cluster, what its SUPPORTED offers
        self.name = f"{name}.w{index}"
        self.config = config
        self.topology = topology
        self.me = me
        self.routing = routing
        self.schema = schema
        self.topologies = dict(topologies or {})
        self.on_exit = on_exit
        self.connections = 0
        self.alive = False
        self.proc: subprocess.Popen | None = None
        self._channel: channel.Channel | None = None
        self._snapshot: dict = {}
        self._acked: int | None = None
        self._waiters: list[tuple[str, object, asyncio.Future]] = []

    async def start(self) -> None:
        mine, theirs = channel.pair()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "zdm.proxy.worker", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),))
        finally:
            theirs.close()
        self._channel = channel.Channel(mine, self._message, self._closed)
        self._channel.send("init", self.index, self.name, self.config, self.topology, self.me,
                           self.routing, self.max_version, self.compression)
        if self.schema is not None:
            self._send_schema(self.schema)
        for cluster, topology in self.topologies.items():
            self._send_topology(cluster, topology)
        try:
            await self._wait("ready", None, START_TIMEOUT)
        except asyncio.TimeoutError:
            self.kill()
            raise RuntimeError(f"proxy worker {self.index} did not start") from None
        self.alive = True

    def hand(self, sock: socket.socket) -> None:
        self.connections += 1
        self._channel.send("conn", sock=sock)

    def set_schema(self, schema: KeySchema) -> None:
        self.schema = schema
        if self._channel is not None:
            self._send_schema(schema)

    def _send_schema(self, schema: KeySchema) -> None:
        items = list(schema.tables.items())
        for start in range(0, max(len(items), 1), SCHEMA_PART):
            self._channel.send("schema", items[start:start + SCHEMA_PART], start + SCHEMA_PART >= len(items))

    def set_topology(self, cluster: Cluster, topology: ClusterTopology) -> None:
        self.topologies[cluster] = topology
        if self._channel is not None:
            self._send_topology(cluster, topology)

    def _send_topology(self, cluster: Cluster, topology: ClusterTopology) -> None:
        for message in topology_messages(cluster, topology):
            self._channel.send(*message)

    async def set_routing(self, routing: Routing, revision: int | None) -> None:
        self.routing = routing
        self._channel.send("routing", routing, revision)
        await self._wait("ack", revision, ACK_TIMEOUT)

    def set_logging(self, level: str, fmt: str) -> None:
        """Log at ``level`` in ``fmt`` from now on (a reload); a worker started later is told
        by its config."""
        if self.alive:
            self._channel.send("logging", level, fmt)

    async def refresh_stats(self) -> None:
        if self.alive:
            self._channel.send("stats?")
            try:
                await self._wait("stats", None, 2.0)
            except asyncio.TimeoutError:
                log.warning("proxy worker %d did not report its counters", self.index)

    def stats_snapshot(self) -> dict:
        return self._snapshot

    async def drain(self, timeout: float) -> None:
        if not self.alive:
            return
        self._channel.send("drain", timeout)
        try:
            await self._wait("exit", None, timeout + 10)
        except asyncio.TimeoutError:
            log.warning("proxy worker %d did not stop; killing it", self.index)
            self.kill()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    # -- the channel -----------------------------------------------------------------
    def _wait(self, kind: str, value, timeout: float):
        future = asyncio.get_running_loop().create_future()
        self._waiters.append((kind, value, future))
        return asyncio.wait_for(future, timeout)

    def _wake(self, kind: str, value=None) -> None:
        keep = []
        for waiter in self._waiters:
            want_kind, want, future = waiter
            if future.done():
                continue
            if want_kind == kind and (want is None or value is None or value >= want):
                future.set_result(value)
            else:
                keep.append(waiter)
        self._waiters = keep

    def _message(self, message: tuple, sock: socket.socket | None) -> None:
        kind = message[0]
        if kind == "closed":
            self.connections -= message[1]
        elif kind == "stats":
            self._snapshot = message[1]
            self._wake("stats")
        elif kind == "ack":
            self._acked = message[1]
            self._wake("ack", message[1])
        elif kind == "ready":
            self._wake("ready")

    def _closed(self) -> None:
        self.alive = False
        self.connections = 0
        if self.proc is not None:
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()
        self._wake("exit")
        if self.on_exit is not None:
            self.on_exit(self)


def topology_messages(cluster: Cluster, topology: ClusterTopology) -> list[tuple]:
    """The ``topology`` messages that carry ``topology`` to a worker process."""
    data = pickle.dumps(topology, protocol=pickle.HIGHEST_PROTOCOL)
    return [("topology", cluster, data[start:start + TOPOLOGY_PART], start + TOPOLOGY_PART >= len(data))
            for start in range(0, max(len(data), 1), TOPOLOGY_PART)]


class TopologyParts:
    """The worker's side: parts of ``topology`` messages in, whole snapshots out."""

    def __init__(self) -> None:
        self._parts: dict[Cluster, list[bytes]] = {}

    def add(self, cluster: Cluster, part: bytes, last: bool) -> ClusterTopology | None:
        self._parts.setdefault(cluster, []).append(part)
        return pickle.loads(b"".join(self._parts.pop(cluster))) if last else None


# -- the worker process itself -------------------------------------------------------------

def main(argv: list[str]) -> None:
    # The instance alone decides when its workers stop, drains them and tells them of new
    # settings.  Ctrl-C, `kill -- -PGID` and systemd's control-group kill signal the whole
    # group at once: a worker acting on its own would exit before the instance knew it was
    # stopping, and be taken for crashed.  Without an instance (it died) a worker drains
    # and stops by itself (the channel closes).
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    sock = socket.socket(fileno=int(argv[1]))
    sock.settimeout(START_TIMEOUT)
    init = pickle.loads(sock.recv(channel.MAX_MESSAGE))
    _, index, name, config, topology, me, routing, max_version, compression = init
    label = f"w{index}"
    logs.configure(config.proxy.log_level, config.proxy.log_format, worker=label)
    try:
        import uvloop  # type: ignore[import-not-found]
    except ImportError:
        asyncio.run(_serve(sock, label, name, config, topology, me, routing, max_version, compression))
    else:
        uvloop.run(_serve(sock, label, name, config, topology, me, routing, max_version, compression))


async def _serve(sock: socket.socket, label: str, name: str, config: Config, topology: VirtualTopology,
                 me: Instance, routing: Routing, max_version: int, compression) -> None:
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    closed = [0]

    def report_closed() -> None:
        if not closed[0]:
            loop.call_soon(flush_closed)
        closed[0] += 1

    def flush_closed() -> None:
        link.send("closed", closed[0])
        closed[0] = 0

    plane = DataPlane(config, topology, me, routing, name=name, max_version=max_version,
                      compression=compression,
                      on_connection_ended=report_closed)

    async def drain(timeout: float) -> None:
        await plane.drain(timeout)
        stopped.set()

    schema_parts: list = []
    topology_parts = TopologyParts()

    def message(msg: tuple, conn: socket.socket | None) -> None:
        kind = msg[0]
        if kind == "conn" and conn is not None:
            plane.adopt(conn)
        elif kind == "routing":
            plane.set_routing(msg[1])
            link.send("ack", msg[2])
        elif kind == "schema":
            schema_parts.extend(msg[1])
            if msg[2]:  # the last part: swap in the whole snapshot at once
                plane.ctx.schema = KeySchema(dict(schema_parts))
                schema_parts.clear()
        elif kind == "topology":
            topology = topology_parts.add(*msg[1:])
            if topology is not None:  # the whole snapshot, swapped in at once
                plane.ctx.set_cluster(msg[1], topology)
        elif kind == "logging":
            logs.configure(msg[1], msg[2], worker=label)
            log.debug("logging at %s, as %s", msg[1], msg[2])
        elif kind == "stats?":
            link.send("stats", plane.snapshot())
        elif kind == "drain" and not plane.ctx.draining:
            asyncio.ensure_future(drain(msg[1]))

    def lost() -> None:  # the instance is gone: finish what is in flight, then stop
        if not plane.ctx.draining:
            asyncio.ensure_future(drain(5.0))

    link = channel.Channel(sock, message, lost)
    plane.start()
    link.send("ready")
    await stopped.wait()
    link.close()


if __name__ == "__main__":
    main(sys.argv)
