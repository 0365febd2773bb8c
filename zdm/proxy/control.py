"""The proxy instance's own connections to the clusters (its control connections).

Theory of operation: before a proxy instance listens it opens one connection to each
cluster, proving both reachable, learning which of them require a login and which
compression algorithms each offers (its answer to OPTIONS, asked first, as drivers do),
and reading origin's ``system.local`` for the virtual topology.  The connections stay open: the
instance's tick reconnects a lost one and keeps idle ones alive with heartbeats, and
:attr:`ControlPlane.connected` is what the instance reports as its health.
"""

from __future__ import annotations

import asyncio
import logging
import time

from zdm.config import Config
from zdm.cql import messages as m
from zdm.cql.constants import ErrorCode, Opcode, ResultKind
from zdm.cql.errors import ProtocolError
from zdm.cql.frame import Frame
from zdm.cql.types import deserialize
from zdm.errors import ZdmError
from zdm.phases.model import Cluster
from zdm.proxy.auth import login
from zdm.proxy.connection import BackendConnection
from zdm.proxy.dialer import Dialer
from zdm.proxy.dataplane import keep_alive
from zdm.proxy.topology import CLUSTER_FACTS

log = logging.getLogger("zdm.proxy")

#: the protocol versions the proxy tries on its own connections, newest first
VERSIONS_TO_TRY = (5, 4, 3)


class ProxyError(ZdmError):
    """The proxy cannot start or run."""


class ControlPlane:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.dialer = Dialer(config)
        self.connections: dict[Cluster, BackendConnection] = {}
        self.requires_auth: dict[Cluster, bool] = {}
        #: the highest protocol version each cluster speaks (negotiated as a driver does)
        self.versions: dict[Cluster, int] = {}
        #: the compression algorithms each cluster offers (the COMPRESSION of its SUPPORTED)
        self.compression: dict[Cluster, tuple[str, ...]] = {}
        self.heartbeats = 0
        self._reconnecting: set[Cluster] = set()
        self.closing = False

    @property
    def connected(self) -> dict[Cluster, bool]:
        return {c: c in self.connections and not self.connections[c].closed for c in Cluster}

    async def probe(self) -> dict:
        """Open both control connections; origin's cluster facts (its system.local)."""
        for cluster in Cluster:
            await self._open(cluster)
        return await self._read_local(self.connections[Cluster.ORIGIN], self.versions[Cluster.ORIGIN])

    @property
    def max_client_version(self) -> int:
        """The newest protocol version a client may use: one both clusters speak."""
        return min(self.versions.values())

    async def _open(self, cluster: Cluster) -> None:
        """Connect and log in, at the newest protocol version the cluster speaks."""
        known = self.versions.get(cluster)
        for version in ((known,) if known else VERSIONS_TO_TRY):
            try:
                backend = await self.dialer.dial(cluster)
            except ZdmError as exc:
                raise ProxyError(exc.message, hint=exc.hint) from None
            answer = await backend.request(version, Opcode.OPTIONS, b"")
            if isinstance(answer, Frame) and answer.opcode == Opcode.SUPPORTED:
                try:
                    offer = m.decode_supported(answer.body).get("COMPRESSION", ())
                except ProtocolError:
                    offer = ()  # a cluster that cannot say gets uncompressed connections
                self.compression[cluster] = tuple(offer)
                answer = await backend.request(version, Opcode.STARTUP,
                                               m.encode_startup({"CQL_VERSION": "3.0.0"}))
            if not isinstance(answer, Frame):
                tls_failure = await self.dialer.explain_lost(backend, answer.message)
                if tls_failure is not None:
                    self.dialer.failed(cluster)
                    raise ProxyError(tls_failure.message, hint=tls_failure.hint)
            refused = not isinstance(answer, Frame) or (answer.opcode == Opcode.ERROR and
                                                        _unsupported_version(answer))
            if refused and known is None and version != VERSIONS_TO_TRY[-1]:
                backend.close()  # as drivers do: a new connection, one version lower
                continue
            break
        self.connections[cluster] = backend
        self.versions[cluster] = backend.version = version
        backend.in_handshake = False
        if not isinstance(answer, Frame) or answer.opcode == Opcode.ERROR:
            detail = m.decode_error(answer.body).message if isinstance(answer, Frame) else answer.message
            raise ProxyError(f"{cluster.value} refused the proxy's connection: {detail}")
        self.requires_auth[cluster] = answer.opcode == Opcode.AUTHENTICATE
        if self.requires_auth[cluster]:
            creds = self.config.origin.credentials if cluster is Cluster.ORIGIN else \
                self.config.target.credentials
            problem = await login(backend, creds, version, m.decode_authenticate(answer.body))
            # the proxy logs into the cluster that does not get the client's credentials: origin,
            # or target with forward_client_credentials_to_origin
            own = Cluster.TARGET if self.config.proxy.forward_client_credentials_to_origin \
                else Cluster.ORIGIN
            if problem is not None and cluster in (own, Cluster.ORIGIN):
                raise ProxyError(problem.removeprefix("zdm proxy: "),
                                 hint=f"set {cluster.value}.username and {cluster.value}.password "
                                      "(or password_env) in zdm.yaml")

    async def _reconnect(self, cluster: Cluster) -> None:
        try:
            await self._open(cluster)
            log.info("control connection to %s restored", cluster.value)
        except Exception as exc:  # noqa: BLE001 - retried on a later tick
            log.warning("control connection to %s: %s", cluster.value, exc)
        finally:
            self._reconnecting.discard(cluster)

    async def _read_local(self, backend: BackendConnection, version: int) -> dict:
        answer = await backend.request(version, Opcode.QUERY,
                                       m.encode_query("SELECT * FROM system.local WHERE key='local'",
                                                      version=version))
        if not isinstance(answer, Frame):
            raise ProxyError(f"cannot read origin's system.local: {answer.message}")
        if answer.opcode != Opcode.RESULT or m.result_kind(answer.body, flags=answer.flags) != ResultKind.ROWS:
            raise ProxyError("cannot read origin's system.local: "
                             f"{m.decode_error(answer.body, flags=answer.flags).message}")
        rows = m.decode_rows(answer.body, version, flags=answer.flags)
        if not rows.rows:
            raise ProxyError("origin's system.local is empty")
        return {spec.name: deserialize(spec.type, raw) for spec, raw in zip(rows.columns, rows.rows[0])
                if spec.name in CLUSTER_FACTS}

    def tick(self, now: float | None = None) -> None:
        """Reconnect a lost control connection; heartbeats on idle ones."""
        now = time.monotonic() if now is None else now
        for cluster, backend in list(self.connections.items()):
            if backend.closed:
                if cluster not in self._reconnecting and not self.closing:
                    self._reconnecting.add(cluster)
                    asyncio.ensure_future(self._reconnect(cluster))
                continue
            self.heartbeats += keep_alive(backend, now, self.config.proxy.heartbeat_interval_s)

    def close(self) -> None:
        self.closing = True
        for backend in self.connections.values():
            backend.close()


def _unsupported_version(answer: Frame) -> bool:
    info = m.decode_error(answer.body, flags=answer.flags)
    return info.code == ErrorCode.PROTOCOL_ERROR and "version" in info.message.lower()
