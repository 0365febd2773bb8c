"""The application of the end-to-end tests: driver threads writing and reading through the
proxies, as a real one would, keeping what it saw.

Theory of operation: each of ``threads`` threads owns its keys (new ones from
``100_000 * (i + 1)``, and the old rows ``k % threads == i`` below ``updated_rows``), so the
last value a thread saw acknowledged for a key is that key's expected value.  A write is
idempotent: with ``timestamps`` it names its own writetime (``USING TIMESTAMP``, increasing
per thread), so a write retried after an error writes the very same cell.  A failed write is
retried (a new request) until it is acknowledged, as an application does; every failed
request is kept with the instants it started and ended, so a test can tell the requests in
flight when something broke from those sent afterwards.  Each acknowledged write is read back
(a misread: not the value just acknowledged), and the key is not written again for a while
(RECENT), so that no write races the proxy's comparison of that read.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Ack:
    """The last write of a key the application saw acknowledged."""

    value: str
    #: the writetime it chose (None: the driver's client-side timestamp)
    writetime: int | None
    #: whether it went through the proxies (else straight to target, after the cutover)
    via_proxy: bool


@dataclass(frozen=True)
class Failure:
    """A request the application saw fail (after the driver's own retries)."""

    #: time.monotonic() when the request was sent, and when it failed
    started: float
    ended: float
    what: str

    def in_flight_at(self, instant: tuple[float, float]) -> bool:
        """Whether it was in flight at an event that happened between ``instant``'s two ends."""
        return self.started < instant[1] and self.ended > instant[0]

    def __str__(self) -> str:
        return self.what


#: how many times one write is sent before the thread gives up on it
ATTEMPTS = 5
#: a thread writes none of its last RECENT keys again: in phase 3 the proxy still compares the
#: read of a key on target (async) when the thread has its answer from origin, and a new write
#: of that key reaching target first is a mismatch the migration's guard refuses
RECENT = 50


class App:
    """``threads`` driver sessions on ``contact`` (hosts, port), each writing its keys and reading
    each write back (see the module's docstring); ``consistency`` for every request (None: the
    driver's default)."""

    def __init__(self, keyspace: str, contact: tuple[list[str], int], *, threads: int = 4,
                 updated_rows: int = 0, consistency: int | None = None, timestamps: bool = False) -> None:
        self.keyspace, self.contact, self.threads = keyspace, contact, threads
        self.updated_rows, self.consistency, self.timestamps = updated_rows, consistency, timestamps
        self.acked: dict[int, Ack] = {}
        #: failed requests, in the order they failed
        self.errors: list[Failure] = []
        self.misreads: list[str] = []
        #: writes abandoned after ATTEMPTS failures (their key's value is then unknown)
        self.abandoned: list[int] = []
        self.ops = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._switch = [threading.Event() for _ in range(threads)]
        self._switched = [threading.Event() for _ in range(threads)]
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def switch_to(self, hosts: list[str], port: int) -> None:
        """Reconnect every thread to ``hosts:port`` (the cutover), one thread at a time."""
        self.contact = (hosts, port)
        for go, done in zip(self._switch, self._switched):
            go.set()
            assert done.wait(60), "a thread did not reconnect"

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)
        assert not any(t.is_alive() for t in self._threads), "a thread of the application hangs"

    def _connect(self):
        from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
        from cassandra.policies import ConstantReconnectionPolicy, RoundRobinPolicy

        hosts, port = self.contact
        profile = ExecutionProfile(load_balancing_policy=RoundRobinPolicy(), request_timeout=20)
        if self.consistency is not None:
            profile.consistency_level = self.consistency
        cluster = Cluster(hosts, port=port, execution_profiles={EXEC_PROFILE_DEFAULT: profile},
                          connect_timeout=10, idle_heartbeat_interval=5,
                          reconnection_policy=ConstantReconnectionPolicy(1.0, max_attempts=None))
        session = cluster.connect(self.keyspace)
        using = " USING TIMESTAMP ?" if self.timestamps else ""
        write = session.prepare(f"INSERT INTO t (k, v) VALUES (?, ?){using}")
        write.is_idempotent = True
        read = session.prepare("SELECT v FROM t WHERE k = ?")
        read.is_idempotent = True
        return cluster, session, write, read

    def _run(self, i: int) -> None:
        rng = random.Random(i)
        cluster, session, write, read = self._connect()
        via_proxy = True
        new_key = 100_000 * (i + 1)
        seq = writetime = 0
        recent: deque[int] = deque(maxlen=RECENT)
        try:
            while not self._stop.is_set():
                if self._switch[i].is_set() and not self._switched[i].is_set():
                    cluster.shutdown()
                    cluster, session, write, read = self._connect()
                    via_proxy = False
                    self._switched[i].set()
                seq += 1
                k = rng.randrange(i, self.updated_rows, self.threads) \
                    if i < self.updated_rows and rng.random() < 0.3 else None  # an old row it owns
                if k is None or k in recent:
                    new_key += 1
                    k = new_key
                recent.append(k)
                value = f"app-{i}-{seq}"
                values: tuple = (k, value)
                if self.timestamps:
                    writetime = max(time.time_ns() // 1000, writetime + 1)
                    values += (writetime,)
                if not self._send(session, write, values, f"write {k}"):
                    with self._lock:
                        self.abandoned.append(k)
                    continue
                with self._lock:
                    self.acked[k] = Ack(value, writetime if self.timestamps else None, via_proxy)
                    self.ops += 1
                started = time.monotonic()
                try:
                    row = session.execute(read, (k,)).one()
                except Exception as exc:  # noqa: BLE001 - the client's view, counted
                    self._fail(started, f"read {k}: {type(exc).__name__}: {exc}")
                    continue
                if row is None or row.v != value:
                    with self._lock:
                        self.misreads.append(f"read {k}: {row and row.v!r}, wrote {value!r}")
                time.sleep(0.005)
        finally:
            cluster.shutdown()

    def _send(self, session, write, values: tuple, what: str) -> bool:
        """Send one write until it is acknowledged (at most ATTEMPTS times)."""
        for _ in range(ATTEMPTS):
            started = time.monotonic()
            try:
                session.execute(write, values)
                return True
            except Exception as exc:  # noqa: BLE001 - the client's view, counted
                self._fail(started, f"{what}: {type(exc).__name__}: {exc}")
                time.sleep(0.1)
        return False

    def _fail(self, started: float, what: str) -> None:
        with self._lock:
            self.errors.append(Failure(started, time.monotonic(), what))
