"""Per-process resources for range work: driver sessions, prepared statements, the rate limiter,
and what batching the copy's writes needs to know of target (its batch limits, its replicas).
Also each cluster's :class:`~zdm.ranges.replicas.ReplicaRouter`, which sends a range read
to a replica of the range.  Also :class:`RunSettings`, how range work runs (engine,
processes, concurrency, pacing), which migrate and validate share.  Each engine builds one
:class:`WorkerContext` per worker process (:mod:`zdm.ranges.pool`,
:mod:`zdm.ranges.spark.executor`) and hands it to every job it runs.

Also applies one driver workaround: the driver's compiled list decoder rejects null
elements, and Cassandra 5.0's ``TTL(collection)`` returns ``list<int>`` with a null for
each element that has no TTL.  Decoding ``list<int>`` with the driver's generic
(pure-Python) decoder, which maps a null element to None, avoids it.
"""

from __future__ import annotations

import time

import os
from dataclasses import dataclass
from typing import Callable, Hashable

from cassandra import ConsistencyLevel
from cassandra.cluster import EXEC_PROFILE_DEFAULT, NoHostAvailable
from cassandra.query import SimpleStatement, tuple_factory

from zdm.config import Config
from zdm.clusters.connect import connect_error, make_cluster
from zdm.errors import ConfigError
from zdm.ranges.batches import SETTINGS, BatchLimits, ReplicaGroups
from zdm.ranges.ratelimit import RateLimiter
from zdm.ranges.replicas import ReplicaRouter


def _patch_list_decoder() -> None:
    try:
        import cassandra.deserializers as des  # here: the compiled driver only has it
    except ImportError:  # pure-Python driver: already null-safe
        return
    setattr(des, "DesListType(Int32Type)", des.GenericDeserializer)


_patch_list_decoder()


@dataclass(frozen=True)
class RunSettings:
    """How range work runs: shared by migrate and validate."""

    #: what runs the range jobs: "local" (worker processes, zdm.ranges.pool) or "spark"
    #: (a Spark cluster's executors, zdm.ranges.spark); see zdm.ranges.engine
    engine: str = "local"
    master: str | None = None  # the Spark master URL (engine "spark" only)
    workers: int = 2  # processes; 0 runs everything in the calling process
    concurrency: int = 4  # ranges in flight per process
    write_window: int = 128  # writes in flight per range
    fetch_size: int = 1000
    rate_limit: float | None = None  # rows/s over all processes; None = unlimited
    read_consistency: str = "LOCAL_QUORUM"
    write_consistency: str = "LOCAL_QUORUM"
    splits: int | None = None  # ranges to cut the ring into; None: 8 per (process x concurrency)
    request_timeout_s: float = 30.0

    def range_count(self) -> int:
        return self.splits or max(32, 8 * max(1, self.workers) * self.concurrency)


def consistency(name: str) -> int:
    try:
        return ConsistencyLevel.name_to_value[name.upper()]
    except KeyError:
        raise ConfigError(f"unknown consistency level {name!r}",
                          hint="use e.g. ONE, LOCAL_ONE, QUORUM, LOCAL_QUORUM, ALL") from None


#: The newest native protocol range work asks for when the configuration pins none: the
#: driver frames v5 in Python (a CRC24 and a CRC32 per segment, each way), which costs the
#: copy about a fifth more CPU per row than v4, and v4 has all that range work uses.
RANGE_WORK_PROTOCOL = 4


def connect(cfg, name: str, request_timeout: float, *, token_aware: bool = False):
    """A (cluster, session) pair returning rows as plain tuples; ``token_aware``: requests
    with a routing key (a write, a batch: its first statement's) go to one of its replicas."""
    cluster = make_cluster(cfg, name=name, request_timeout=request_timeout, token_aware=token_aware)
    cluster.profile_manager.profiles[EXEC_PROFILE_DEFAULT].row_factory = tuple_factory
    if cfg.protocol_version is None and cluster.protocol_version > RANGE_WORK_PROTOCOL:
        cluster.protocol_version = RANGE_WORK_PROTOCOL  # not pinned: still negotiated lower
    try:
        session = cluster.connect()
    except NoHostAvailable as exc:
        cluster.shutdown()
        raise connect_error(exc, cfg, name) from None
    await_pools(cluster, session, cfg.connect_timeout_s)
    return cluster, session


def await_pools(cluster, session, timeout: float) -> None:
    """Wait (``timeout`` at most) until ``session`` holds connections to every live node it
    may use.  The driver's connect() returns once its first node's pool is up and opens the
    others in the background; a range read sent meanwhile would not find its replica among
    the nodes it can reach (:mod:`zdm.ranges.replicas`) and go to another node."""
    from cassandra.policies import HostDistance

    deadline = time.monotonic() + timeout
    while True:
        pools = session.get_pool_state()
        missing = [h for h in cluster.metadata.all_hosts() if h.is_up is not False and h not in pools
                   and cluster.profile_manager.distance(h) != HostDistance.IGNORED]
        if not missing or time.monotonic() >= deadline:
            return
        time.sleep(0.05)


def target_batch_limits(session) -> BatchLimits:
    """The batch limits of the cluster behind ``session``, from its settings table when it has
    one (Cassandra 4.0+), else Cassandra's defaults."""
    names = ", ".join(f"'{n}'" for n in SETTINGS)
    query = SimpleStatement(f"SELECT name, value FROM system_views.settings WHERE name IN ({names})")
    try:
        rows = session.execute(query, timeout=10)
    except Exception:  # noqa: BLE001 - no such table (before 4.0, some services): the defaults
        return BatchLimits()
    return BatchLimits.from_settings({r[0]: r[1] for r in rows})


class WorkerContext:
    """Sessions to both clusters plus caches; one per process."""

    def __init__(self, config: Config, run: RunSettings, *, rate_share: float | None = None) -> None:
        self.config = config
        self.run = run
        # token-aware on origin too: a point read (a validation's re-read) goes to a replica
        self._origin_cluster, self.origin = connect(config.origin, "origin", run.request_timeout_s,
                                                    token_aware=True)
        try:
            self._target_cluster, self.target = connect(config.target, "target", run.request_timeout_s,
                                                        token_aware=True)
        except BaseException:
            self._origin_cluster.shutdown()
            raise
        self.limiter = RateLimiter(rate_share if rate_share is not None else run.rate_limit)
        self.read_cl = consistency(run.read_consistency)
        self.write_cl = consistency(run.write_consistency)
        self._prepared: dict[tuple[str, str], object] = {}
        self._by_shape: dict[tuple[str, tuple], object] = {}
        self._groups: dict[str, ReplicaGroups] = {}
        self.batch_limits = target_batch_limits(self.target)
        self._parent = os.getppid()
        self._routers = {"origin": ReplicaRouter(self._origin_cluster, self.origin),
                         "target": ReplicaRouter(self._target_cluster, self.target)}

    def session(self, side: str):
        """The session to ``side`` ("origin" or "target")."""
        return self.origin if side == "origin" else self.target

    def router(self, side: str) -> ReplicaRouter:
        """Where ``side``'s range reads go (:mod:`zdm.ranges.replicas`)."""
        return self._routers[side]

    def prepare(self, side: str, cql: str, *, write: bool = False):
        key = (side, cql)
        stmt = self._prepared.get(key)
        if stmt is None:
            stmt = self.session(side).prepare(cql)
            stmt.consistency_level = self.write_cl if write else self.read_cl
            stmt.fetch_size = self.run.fetch_size
            # a read may be sent again when a node fails (zdm.ranges.failover); a write only
            # in a batch that says so (zdm.migrate.writer)
            stmt.is_idempotent = not write
            self._prepared[key] = stmt
        return stmt

    def write_statement(self, shape: Hashable, cql: Callable[[], str]):
        """The statement prepared on target for writes of one ``shape``; ``cql()`` makes its
        text, once (:func:`zdm.migrate.statements.statement_for`)."""
        stmt = self._by_shape.get(shape)
        if stmt is None:
            stmt = self._by_shape[shape] = self.prepare("target", cql(), write=True)
        return stmt

    def replica_groups(self, keyspace: str) -> ReplicaGroups:
        """Which of target's token ranges of ``keyspace`` share replicas (one group when
        origin's tokens are not target's: another partitioner)."""
        groups = self._groups.get(keyspace)
        if groups is None:
            origin, target = self._origin_cluster.metadata, self._target_cluster.metadata
            if origin.partitioner != target.partitioner:
                groups = ReplicaGroups.single()
            else:
                groups = ReplicaGroups.from_token_map(target.token_map, keyspace)
            self._groups[keyspace] = groups
        return groups

    def close(self) -> None:
        self._origin_cluster.shutdown()
        self._target_cluster.shutdown()
