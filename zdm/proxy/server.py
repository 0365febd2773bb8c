"""A proxy instance: the listener, its workers, its control connections and its record.

Theory of operation: :meth:`ProxyServer.start` first talks to both clusters
(:class:`~zdm.proxy.control.ControlPlane`: reachable, which require a login, origin's
facts for the virtual topology), starts the workers (:mod:`~zdm.proxy.worker`: the
data planes, in this process or one process per core), then listens.  The listener is
this process's: each accepted connection goes to the worker with the fewest client
connections, or, past ``proxy.max_client_connections``, gets an OVERLOADED error and is
closed without disturbing anyone else.

Once a second the instance reconnects lost control connections, picks up routing
changes from the state store and pushes them to every worker, acknowledging a revision
only once all of them route by it, and publishes its health with the workers' counters
summed.  The store's file I/O runs on a thread, never on the event loop.

:meth:`ProxyServer.shutdown` stops accepting, has every worker answer new requests
with OVERLOADED and drain the ones in flight, then closes everything.

:func:`serve` runs an instance as a service: SIGTERM or SIGINT shuts it down (the workers
ignore both: the instance drains them), SIGHUP reloads its live settings
(:mod:`~zdm.proxy.live_settings`), and systemd hears of each step over ``$NOTIFY_SOCKET``
(:mod:`~zdm.proxy.sd_notify`): READY=1 once it listens, RELOADING=1 then READY=1 around a
reload, STOPPING=1 when it drains.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time


from zdm import logs
from zdm.config import Config, parse_host_port
from zdm.cql.constants import ErrorCode
from zdm.errors import ZdmError
from zdm.state.divergences import DivergenceLog
from zdm.phases.model import Cluster, Phase, Routing, routing_for
from zdm.proxy.control import ControlPlane, ProxyError
from zdm.proxy.dataplane import DataPlane
from zdm.proxy.endpoint import HttpEndpoint
from zdm.proxy.live_settings import Reload, compare
from zdm.proxy.refusal import Refusal
from zdm.proxy.registration import Registration
from zdm.proxy.reporting import Reporting, counters
from zdm.proxy.sd_notify import Notifier
from zdm.proxy.stats import ProxyStats, merge, utc_now
from zdm.proxy.topology import Instance, VirtualTopology
from zdm.proxy.worker import LocalWorker, WorkerProcess

log = logging.getLogger("zdm.proxy")

TICK_SECONDS = 1.0

__all__ = ["ProxyError", "ProxyServer", "run", "serve"]


class ProxyServer:
    """One proxy instance.  ``workers``: None serves every client on this event loop; N
    starts N worker processes."""

    def __init__(self, config: Config, *, state_store=None, name: str | None = None,
                 routing: Routing | None = None, workers: int | None = None) -> None:
        self.config = config
        pc = config.proxy
        self.listen = (pc.listen_host, pc.listen_port)
        self.name = name or pc.name or f"{pc.listen_host}:{pc.listen_port}"
        self.worker_count = workers
        self.control = ControlPlane(config)
        self.workers: list[LocalWorker | WorkerProcess] = []
        self.registration = Registration(state_store, self.name, f"{self.listen[0]}:{self.listen[1]}",
                                         local=DivergenceLog(config.state_dir)) \
            if state_store is not None else None
        self.draining = False
        self.topology: VirtualTopology | None = None
        self.me: Instance | None = None
        self.refused = 0
        self._routing = routing or routing_for(Phase.PROXY)
        self.routing_revision: int | None = None
        self.phase: Phase | None = None
        self.endpoint: HttpEndpoint | None = None
        self.reporting = Reporting(self)
        self._listener: socket.socket | None = None
        self._tick_task: asyncio.Task | None = None
        self._store_task: asyncio.Task | None = None
        self._last_refusal_log = 0.0

    # -- start / stop ------------------------------------------------------------------
    async def start(self) -> None:
        facts = await self.control.probe()
        pc = self.config.proxy
        self.me = Instance(pc.advertise_host or pc.listen_host, pc.listen_port)
        instances = [Instance(*parse_host_port(i)) for i in pc.instances] or [self.me]
        if self.me not in instances:
            raise ProxyError(f"this proxy is {self.me.host}:{self.me.port} (proxy.advertise_host or "
                             f"listen_host, and listen_port), which is not among proxy.instances "
                             f"({', '.join(pc.instances)})",
                             hint="add it to proxy.instances in zdm.yaml, or fix proxy.advertise_host / "
                                  "listen_port")
        self.topology = VirtualTopology(instances, facts)
        self._listener = self._bind()
        change = None
        if self.registration is not None:
            await asyncio.to_thread(self.registration.register)
            change = await asyncio.to_thread(self.registration.poll_routing)
            if change is not None:
                self._routing, _, self.phase = change
        # a worker starts with the topologies of the moment, and gets each later one
        self.control.on_topology = self._publish_topology
        try:
            await self._start_workers()
        except BaseException:
            self._listener.close()
            await self._stop_workers()
            raise
        self.control.on_schema = self._publish_schema  # each worker started with the first one
        if change is not None:  # every worker started with it
            self.routing_revision = change[1]
            await asyncio.to_thread(self.registration.ack, change[1])
        if self.config.proxy.metrics_enabled:
            await self._start_endpoint()
        self._listener.listen(1024)  # only now: a client that can connect is served
        loop = asyncio.get_running_loop()
        loop.add_reader(self._listener.fileno(), self._accept)
        self._tick_task = asyncio.ensure_future(self._tick_forever())
        if self.registration is not None:
            self._store_task = asyncio.ensure_future(self._follow_store_forever())
        log.info("proxy %s listening on %s:%s (%s)", self.name, *self.listen, self.describe_workers())

    async def _start_endpoint(self) -> None:
        pc = self.config.proxy
        self.endpoint = HttpEndpoint(pc.metrics_address, pc.metrics_port, {
            "/metrics": self.reporting.metrics, "/health/liveness": self.reporting.liveness,
            "/health/readiness": self.reporting.readiness})
        try:
            await self.endpoint.start()
        except OSError as exc:
            self._listener.close()
            await self._stop_workers()
            raise ProxyError(f"cannot serve metrics on {pc.metrics_address}:{pc.metrics_port}: {exc.strerror}",
                             hint="another process uses that port: set proxy.metrics_port, or "
                                  "proxy.metrics_enabled: false") from None

    @property
    def metrics_port(self) -> int | None:
        return self.endpoint.port if self.endpoint is not None else None

    def _bind(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET6 if ":" in self.listen[0] else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(self.listen)
        except OSError as exc:
            sock.close()
            raise ProxyError(f"cannot listen on {self.listen[0]}:{self.listen[1]}: {exc.strerror}",
                             hint="another process uses that port: stop it or set proxy.listen_port") \
                from None
        sock.setblocking(False)
        return sock  # bound (the port is ours), listening once the instance is ready

    async def _start_workers(self) -> None:
        if self.worker_count is None:
            self.workers = [LocalWorker(DataPlane(self.config, self.topology, self.me, self._routing,
                                                  name=self.name,
                                                  max_version=self.control.max_client_version,
                                                  compression=self.control.compression))]
            self.workers[0].set_schema(self.control.schema)
            for cluster, topology in self.control.topologies.items():
                self.workers[0].set_topology(cluster, topology)
            self.workers[0].plane.start()
            return
        self.workers = [self._worker_process(i) for i in range(self.worker_count)]
        await asyncio.gather(*(w.start() for w in self.workers))

    def _worker_process(self, index: int) -> WorkerProcess:
        return WorkerProcess(index, self.config, self.topology, self.me, self._routing, name=self.name,
                             max_version=self.control.max_client_version,
                             compression=self.control.compression, on_exit=self._worker_exited,
                             schema=self.control.schema, topologies=self.control.topologies)

    def _publish_schema(self, schema) -> None:
        """Origin's primary keys changed: every worker names divergent rows by the new ones."""
        for worker in self.workers:
            worker.set_schema(schema)

    def _publish_topology(self, cluster: Cluster, topology) -> None:
        """A cluster's nodes or replication changed: every worker routes by the new snapshot."""
        for worker in self.workers:
            worker.set_topology(cluster, topology)

    def describe_workers(self) -> str:
        if self.worker_count is None:
            return "in-process"
        return f"{self.worker_count} worker process{'es' if self.worker_count != 1 else ''}"

    @property
    def port(self) -> int:
        return self._listener.getsockname()[1]

    async def shutdown(self, drain_timeout: float = 10.0) -> None:
        """Stop accepting, let in-flight requests finish, answer new ones OVERLOADED, close."""
        if self.draining:
            return
        self.draining = True
        if self._listener is not None:
            asyncio.get_running_loop().remove_reader(self._listener.fileno())
            self._listener.close()
        await asyncio.gather(*(w.drain(drain_timeout) for w in self.workers))
        await self._stop_workers()
        self.control.close()
        for task in (self._tick_task, self._store_task):
            if task is not None:
                task.cancel()
        if self.endpoint is not None:
            await self.endpoint.close()
        if self.registration is not None:
            # a stopped proxy must not hold up routing changes; `zdm proxy start` registers again
            await asyncio.to_thread(self.registration.deregister)

    async def _stop_workers(self) -> None:
        for worker in self.workers:
            if isinstance(worker, WorkerProcess):
                worker.kill()

    def _worker_exited(self, worker: WorkerProcess) -> None:
        if self.draining:
            return
        log.error("proxy worker %d exited unexpectedly (code %s); starting it again; its "
                  "clients reconnect", worker.index, worker.proc.returncode if worker.proc else "?")
        replacement = self._worker_process(worker.index)
        self.workers[self.workers.index(worker)] = replacement
        task = asyncio.ensure_future(replacement.start())
        task.add_done_callback(lambda t: t.cancelled() or t.exception() is None or
                               log.error("proxy worker %d could not be restarted: %s",
                                         replacement.index, t.exception()))

    # -- live settings -------------------------------------------------------------------
    def reload(self, config: Config) -> Reload:
        """Run by ``config``'s live settings from now on (the others wait for a restart)."""
        change = compare(self.config, config)
        self.config = change.config  # a worker started again later gets these too
        pc = self.config.proxy
        logs.configure(pc.log_level, pc.log_format)
        for worker in self.workers:
            worker.set_logging(pc.log_level, pc.log_format)
        return change

    # -- accepting -----------------------------------------------------------------------
    def _accept(self) -> None:
        for _ in range(256):
            try:
                conn, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of file descriptors: pause accepting for a moment
                log.error("cannot accept client connections: %s", exc)
                loop = asyncio.get_running_loop()
                loop.remove_reader(self._listener.fileno())
                loop.call_later(0.5, lambda: self.draining or
                                loop.add_reader(self._listener.fileno(), self._accept))
                return
            self._dispatch(conn)

    def _dispatch(self, conn: socket.socket) -> None:
        live = [w for w in self.workers if w.alive]
        limit = self.config.proxy.max_client_connections
        if not live or sum(w.connections for w in live) >= limit:
            self._refuse(conn, limit)
            return
        min(live, key=lambda w: w.connections).hand(conn)

    def _refuse(self, conn: socket.socket, limit: int) -> None:
        self.refused += 1
        now = time.monotonic()
        if now - self._last_refusal_log > 10:
            self._last_refusal_log = now
            log.warning("refusing client connections: proxy.max_client_connections (%d) reached "
                        "(%d refused so far)", limit, self.refused)
        message = (f"zdm proxy {self.name}: too many client connections ({limit}, "
                   f"proxy.max_client_connections); connect to another proxy instance, or raise the limit")
        conn.setblocking(False)
        loop = asyncio.get_running_loop()
        task = loop.create_task(loop.connect_accepted_socket(lambda: Refusal(ErrorCode.OVERLOADED, message), conn))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    # -- routing -------------------------------------------------------------------------
    @property
    def routing(self) -> Routing:
        return self._routing

    @routing.setter
    def routing(self, routing: Routing) -> None:
        """Route later requests by ``routing`` (in-process workers apply it at once)."""
        self._routing = routing
        for worker in self.workers:
            if isinstance(worker, LocalWorker):
                worker.plane.set_routing(routing)
            else:
                asyncio.ensure_future(worker.set_routing(routing, None))

    async def apply_routing(self, routing: Routing, revision: int | None) -> None:
        """Route later requests by ``routing``; returns once every worker does."""
        self._routing = routing
        await asyncio.gather(*(w.set_routing(routing, revision) for w in self.workers if w.alive))

    async def _follow_routing(self) -> None:
        change = await asyncio.to_thread(self.registration.poll_routing)
        if change is None:
            return
        routing, revision, phase = change
        self.phase = phase
        if routing != self._routing:
            log.info("routing: %s -> %s (phase %s)", self._routing, routing, phase.label)
        await self.apply_routing(routing, revision)
        self.routing_revision = revision
        await asyncio.to_thread(self.registration.ack, revision)

    # -- counters and health -------------------------------------------------------------
    @property
    def stats(self) -> ProxyStats:
        """The instance's counters: its workers' summed (as of their last report)."""
        total = merge(w.stats_snapshot() for w in self.workers)
        total.refused_connections += self.refused
        total.heartbeats += self.control.heartbeats
        return total

    @property
    def client_connections(self) -> int:
        return sum(w.connections for w in self.workers)

    @property
    def requires_auth(self) -> dict[Cluster, bool]:
        return self.control.requires_auth

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            try:
                self.control.tick()
            except Exception:  # noqa: BLE001 - the tick must survive anything
                log.exception("proxy tick failed")

    async def _follow_store_forever(self) -> None:
        """Routing changes and health, on a loop of its own: a slow store delays neither
        heartbeats nor clients (the instance keeps routing by what it last applied)."""
        failing = False
        while True:
            await asyncio.sleep(TICK_SECONDS)
            try:
                await self._follow_routing()
                await self._publish_health()
                if failing:
                    log.warning("the state store (%s) answers again", self.registration.store.describe())
                failing = False
            except ZdmError as exc:
                if not failing:
                    log.warning("%s; routing stays as last applied (revision %s) until it answers",
                                exc.message, self.routing_revision)
                failing = True
            except Exception:  # noqa: BLE001 - following the store must survive anything
                log.exception("following the state store failed")

    async def _publish_health(self) -> None:
        await asyncio.gather(*(w.refresh_stats() for w in self.workers))
        connected = self.control.connected
        stats = self.stats
        await asyncio.to_thread(
            self.registration.publish, pid=os.getpid(), heartbeat_at=utc_now(), running=True,
            origin_connected=connected[Cluster.ORIGIN], target_connected=connected[Cluster.TARGET],
            async_reads=stats.async_reads(), client_connections=self.client_connections,
            workers=len(self.workers), counters=counters(stats), live=self.reporting.live(stats),
            metrics_port=self.metrics_port)


async def serve(config: Config, *, store=None, name: str | None = None, ready=None,
                workers: int | None = None, reread=None) -> None:
    """Run a proxy instance until SIGTERM/SIGINT, then shut down gracefully.  ``reread``: a
    function that reads the configuration again, for SIGHUP (None: SIGHUP is logged, no more)."""
    import signal

    notifier = Notifier.from_environ()
    server = ProxyServer(config, state_store=store, name=name, workers=workers)
    await server.start()
    if ready is not None:
        ready(server)
    listening = f"listening on {server.listen[0]}:{server.port} ({server.describe_workers()})"
    notifier.ready(listening)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    one_at_a_time = asyncio.Lock()  # a SIGHUP during a reload reloads again once it is done

    async def reload() -> None:
        async with one_at_a_time:
            if not server.draining:
                await _reload(server, reread, notifier, listening)

    loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(reload()))
    await stop.wait()
    log.info("shutting down: draining in-flight requests")
    notifier.stopping("draining in-flight requests")
    await server.shutdown()


async def _reload(server: ProxyServer, reread, notifier: Notifier, listening: str) -> None:
    notifier.reloading()
    if reread is None:
        log.warning("SIGHUP: this proxy was started without a configuration to read again; "
                    "nothing changed")
        notifier.ready(listening)
        return
    try:
        config = await asyncio.to_thread(reread)
    except ZdmError as exc:
        log.error("settings not reloaded, the proxy keeps running by its current ones: %s%s",
                  exc.message, f" ({exc.hint})" if exc.hint else "")
        notifier.ready(f"{listening}; settings not reloaded: {exc.message}")
        return
    except Exception as exc:  # noqa: BLE001 - a reload must never take the proxy down
        log.exception("settings not reloaded, the proxy keeps running by its current ones")
        notifier.ready(f"{listening}; settings not reloaded: {exc}")
        return
    change = server.reload(config)
    log.info("%s", change.describe())
    if change.need_restart:
        log.warning("changed in the configuration, kept as they were until the proxy restarts: %s",
                    ", ".join(change.need_restart))
    notifier.ready(listening)


def run(config: Config, **kwargs) -> None:
    try:
        import uvloop  # type: ignore[import-not-found]
    except ImportError:
        uvloop = None
    if uvloop is not None:
        uvloop.run(serve(config, **kwargs))
    else:
        asyncio.run(serve(config, **kwargs))
