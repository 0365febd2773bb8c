"""Moving a client's connection to a cluster onto another node when its node goes away.

Theory of operation: a client connection past its handshake keeps one connection to each
cluster.  When one of them is lost (the node died, restarted, or the network cut it), the
client stays connected and sees what a driver sees when a coordinator dies:

1. the requests in flight on the lost connection fail at once (the
   :class:`~zdm.proxy.connection.BackendConnection` fails every pending callback): the client
   gets a SERVER_ERROR naming the lost node, which drivers retry on another host when the
   statement is idempotent;
2. the requests sent from then on wait here, in order, while the session dials another node of
   that cluster (the dialer tries the lost node last), replays the STARTUP (with that leg's
   compression), logs in again (with the proxy's credentials, or the client's own
   AUTH_RESPONSEs, recorded during the handshake), and replays the connection's ``USE`` and
   ``REGISTER``;
3. then they go out on the new connection, and the request handler sends there from then on.
   Prepared statements are prepared again on demand: the new node answers UNPREPARED, which
   the usual rules handle (:mod:`~zdm.proxy.pending`).

If no node of the cluster answers, the waiting requests fail, and the session closes the
client connection: its driver reconnects, as it would to a node that went away.
"""

from __future__ import annotations

import time
from typing import Callable

from zdm.cql import messages as m
from zdm.cql.constants import Opcode
from zdm.cql.frame import Frame
from zdm.phases.model import Cluster
from zdm.proxy.aggregate import Failure, Outcome
from zdm.proxy.auth import login
from zdm.proxy.connection import BackendConnection

Callback = Callable[[Outcome], None]

#: requests that may wait for a new connection; past that they fail at once (OVERLOADED-like)
MAX_WAITING = 10_000


class Waiting:
    """The requests sent to a cluster while its connection is being replaced: ``send`` with
    the signature of :meth:`BackendConnection.send` (version bound), queued in order.  Each
    keeps the deadline it would have had on a connection (its own timeout, or
    ``request_timeout``); :meth:`sweep` fails those past it, as a connection's sweep does."""

    __slots__ = ("cluster", "queue", "request_timeout", "_clock")

    def __init__(self, cluster: Cluster, request_timeout: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cluster = cluster
        self.request_timeout = request_timeout
        self._clock = clock
        self.queue: list[tuple[int, int, bytes, Callback, float | None, float]] = []

    def send(self, flags: int, opcode: int, body: bytes, callback: Callback, timeout: float | None = None) -> None:
        if len(self.queue) >= MAX_WAITING:
            callback(Failure(f"too many requests waiting for a new connection to {self.cluster.value}"))
            return
        deadline = self._clock() + (timeout or self.request_timeout)
        self.queue.append((flags, opcode, body, callback, timeout, deadline))

    def release(self, send: Callable[..., None]) -> None:
        """Send every waiting request with ``send`` (a new connection's)."""
        queue, self.queue = self.queue, []
        for flags, opcode, body, callback, timeout, _ in queue:
            send(flags, opcode, body, callback, timeout)

    def sweep(self, now: float) -> None:
        """Fail the requests that have waited past their deadline."""
        if not any(entry[5] <= now for entry in self.queue):
            return
        expired = [e for e in self.queue if e[5] <= now]
        self.queue = [e for e in self.queue if e[5] > now]
        for *_, callback, timeout, _ in expired:
            callback(Failure(f"no connection to {self.cluster.value} within "
                             f"{timeout or self.request_timeout:g}s (its node was lost)"))

    def fail(self, reason: str) -> None:
        queue, self.queue = self.queue, []
        for *_, callback, _, _ in queue:
            callback(Failure(reason))


async def handshake(backend: BackendConnection, version: int, startup: dict[str, str], *,
                    credentials: tuple[str, str] | None, client_auth: list[bytes],
                    keyspace: str | None, register: bytes | None) -> str | None:
    """Bring a new connection to where the lost one was: STARTUP, login, USE, REGISTER.
    ``client_auth``: the client's AUTH_RESPONSE bodies when its own login went to this
    cluster (else the proxy logs in with ``credentials``).  The problem, or None."""
    name = backend.cluster.value
    codec = backend.codec
    body = m.encode_startup({**startup, "COMPRESSION": codec.name} if codec is not None else startup)
    answer = await backend.request(version, Opcode.STARTUP, body)
    if not isinstance(answer, Frame) or answer.opcode not in (Opcode.READY, Opcode.AUTHENTICATE):
        return f"{name}: STARTUP on the new connection failed: {_describe(answer)}"
    backend.in_handshake = False
    backend.version = version
    backend.start_compression()
    if answer.opcode == Opcode.AUTHENTICATE:
        if client_auth:
            problem = await _replay_login(backend, version, client_auth)
        else:
            problem = await login(backend, credentials, version, m.decode_authenticate(answer.body))
        if problem is not None:
            return problem
    if keyspace is not None:
        answer = await backend.request(version, Opcode.QUERY,
                                       m.encode_query(f'USE "{keyspace}"', version=version))
        if not isinstance(answer, Frame) or answer.opcode != Opcode.RESULT:
            return f"{name}: USE {keyspace} on the new connection failed: {_describe(answer)}"
    if register is not None:
        answer = await backend.request(version, Opcode.REGISTER, register)
        if not isinstance(answer, Frame) or answer.opcode != Opcode.READY:
            return f"{name}: REGISTER on the new connection failed: {_describe(answer)}"
    return None


async def _replay_login(backend: BackendConnection, version: int, tokens: list[bytes]) -> str | None:
    answer = None
    for token in tokens:
        answer = await backend.request(version, Opcode.AUTH_RESPONSE, token)
        if not isinstance(answer, Frame) or answer.opcode != Opcode.AUTH_CHALLENGE:
            break
    if isinstance(answer, Frame) and answer.opcode == Opcode.AUTH_SUCCESS:
        return None
    return f"{backend.cluster.value}: the client's login on the new connection failed: {_describe(answer)}"


def _describe(answer) -> str:
    if isinstance(answer, Frame) and answer.opcode == Opcode.ERROR:
        return m.decode_error(answer.body, flags=answer.flags).message
    if isinstance(answer, Frame):
        return f"unexpected {getattr(answer.opcode, 'name', answer.opcode)}"
    return getattr(answer, "message", str(answer))
