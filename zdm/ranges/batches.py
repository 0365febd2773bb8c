"""Group the copy's writes into UNLOGGED batches that target applies without complaint (sans-I/O).

It lives with range work because each worker's context (:mod:`zdm.ranges.context`) reads
target's batch limits and replicas once, when it starts, for all the copy jobs it runs.

Theory of operation: a batch saves target one request per statement, and the copy one
driver round trip, but only when target can apply it locally: every statement of a batch
belongs to partitions with the same replicas on target (:class:`ReplicaGroups`, from
target's token map), so the coordinator the driver routes it to (a replica of its first
statement) is a replica of all of them.  A batch also stays within what target tolerates
quietly (:class:`BatchLimits`, read from target's settings where it exposes them):

- at most ``max_partitions`` partitions: above ``unlogged_batch_across_partitions_warn_threshold``
  target warns the client on every batch (and logs it once a minute);
- at most ``max_bytes``, estimated (:func:`estimate_size`) from the bound values: above
  ``batch_size_warn_threshold`` target logs every multi-partition batch, and above
  ``batch_size_fail_threshold`` it refuses it.  Target measures its mutations' data: per
  row its clustering and liveness (timestamp, TTL, expiry), per cell a timestamp, a TTL
  and expiry when it has one, its value and its path (a list element's is a 16-byte
  time UUID).  The estimate counts every bound byte (keys, writetime and TTL included)
  and :data:`PER_CELL` for each cell's metadata, twice for a list element, so it is never
  below target's figure, and the bound is taken under the warn threshold.

Partitions are counted as runs (a statement for a partition other than the previous
statement's starts a new one), which the copy's token-ordered scan makes exact and is
never an undercount.  A statement too big for a batch goes out alone: a batch of one
statement, which target applies as that statement (its batch checks need two partitions).  :class:`Batcher` only decides; the copy sends.
Each batch holds writes of one kind: counter updates cannot share a batch with other
writes, so the kind is part of the group.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass
from typing import Any, Hashable, Iterable, Mapping, Sequence

#: target's defaults (cassandra.yaml) where it does not say
DEFAULT_WARN_BYTES = 5 * 1024
DEFAULT_FAIL_BYTES = 50 * 1024
DEFAULT_PARTITIONS_WARN = 10

#: the share of the warn threshold a batch may fill, by estimate
BYTES_SHARE = 0.8

#: the settings (system_views.settings, Cassandra 4.0+) the limits come from; 5.0 names
#: sizes with units, 4.x (and 5.0's compatibility names) in KiB
SETTINGS = ("batch_size_warn_threshold", "batch_size_fail_threshold",
            "batch_size_warn_threshold_in_kb", "batch_size_fail_threshold_in_kb",
            "unlogged_batch_across_partitions_warn_threshold")

PER_STATEMENT = 16  # a row's liveness: timestamp, TTL and expiry
PER_CELL = 16  # a cell's timestamp, TTL and expiry (a list element: twice, for its path)


@dataclass(frozen=True)
class BatchLimits:
    max_bytes: int = int(DEFAULT_WARN_BYTES * BYTES_SHARE)
    max_partitions: int = DEFAULT_PARTITIONS_WARN

    def __post_init__(self) -> None:
        if self.max_bytes < 1 or self.max_partitions < 1:
            raise ValueError(f"batch limits must be positive: {self}")

    @classmethod
    def from_settings(cls, settings: Mapping[str, str]) -> "BatchLimits":
        """The limits for a target whose ``system_views.settings`` holds ``settings``
        (name -> value); a setting missing or unreadable takes Cassandra's default."""
        warn = _size(settings, "batch_size_warn_threshold") or DEFAULT_WARN_BYTES
        fail = _size(settings, "batch_size_fail_threshold") or DEFAULT_FAIL_BYTES
        partitions = _int(settings.get("unlogged_batch_across_partitions_warn_threshold"))
        return cls(max_bytes=max(1, int(min(warn, fail) * BYTES_SHARE)),
                   max_partitions=max(1, partitions or DEFAULT_PARTITIONS_WARN))


_UNITS = {"b": 1, "kib": 1024, "mib": 1024 ** 2, "gib": 1024 ** 3,
          # the units 5.0 still accepts from older configurations
          "kb": 1024, "mb": 1024 ** 2, "gb": 1024 ** 3, "bytes": 1}


def parse_size(text: str | None) -> int | None:
    """Bytes of a data-storage setting as Cassandra prints it (``5KiB``, ``1MiB``, ``512B``)."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*([A-Za-z]*)\s*", text)
    if m is None:
        return None
    unit = _UNITS.get(m.group(2).lower() or "b")
    return int(m.group(1)) * unit if unit else None


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _size(settings: Mapping[str, str], name: str) -> int | None:
    size = parse_size(settings.get(name))
    if size is None:
        kib = _int(settings.get(f"{name}_in_kb"))
        size = kib * 1024 if kib is not None else None
    return size if size else None


def estimate_size(values: Iterable[bytes | None], cells: int) -> int:
    """At least the data one statement adds to a batch (see the module docstring): its bound
    values serialized, and the metadata of ``cells`` cells (a list element counts two)."""
    size = PER_STATEMENT + PER_CELL * cells
    for v in values:
        if v is not None:
            size += len(v)
    return size


class ReplicaGroups:
    """Which target token ranges share replicas: ``group_of(token)`` is equal for two
    tokens exactly when target stores them on the same replicas.

    ``ring`` is target's ring (sorted token values, each the inclusive end of the range
    that starts after the previous one; the first range wraps around from the last) and
    ``replicas`` the replica set of each (host ids, any hashable)."""

    def __init__(self, ring: Sequence[int], replicas: Sequence[Iterable[Hashable]]) -> None:
        if len(ring) != len(replicas):
            raise ValueError("one replica set per ring token")
        if list(ring) != sorted(ring):
            raise ValueError("the ring must be sorted")
        ids: dict[frozenset, int] = {}
        self._ends = list(ring)
        self._ids = [ids.setdefault(frozenset(r), len(ids)) for r in replicas]

    @classmethod
    def single(cls) -> "ReplicaGroups":
        """Every token in one group (one node, or no token map)."""
        return cls([0], [()])

    @classmethod
    def from_token_map(cls, token_map, keyspace: str) -> "ReplicaGroups":
        """From a driver ``TokenMap`` (cassandra.metadata); one group when it has none."""
        if token_map is None or not token_map.ring:
            return cls.single()
        ring = token_map.ring
        replicas = [[h.host_id for h in token_map.get_replicas(keyspace, t)] for t in ring]
        return cls([t.value for t in ring], replicas)

    @property
    def count(self) -> int:
        return len(set(self._ids))

    def group_of(self, token: int) -> int:
        point = bisect_left(self._ends, token)
        return self._ids[point if point < len(self._ends) else 0]


class Batcher:
    """Statements in, batches out: :meth:`fits` says whether a statement may join the
    open batch, :meth:`add` adds it, :meth:`take` closes the batch and returns its items."""

    def __init__(self, limits: BatchLimits) -> None:
        self.limits = limits
        self.items: list[Any] = []
        self._bytes = 0
        self._partitions = 0
        self._group: Hashable = None
        self._partition: Hashable = None

    def __len__(self) -> int:
        return len(self.items)

    def fits(self, group: Hashable, partition: Hashable, size: int) -> bool:
        if not self.items:
            return True
        if group != self._group:
            return False
        if partition != self._partition and self._partitions >= self.limits.max_partitions:
            return False
        return self._bytes + size <= self.limits.max_bytes

    def add(self, item: Any, group: Hashable, partition: Hashable, size: int) -> None:
        """Add ``item`` (the caller checked :meth:`fits`, or the batch is empty)."""
        if not self.items:
            self._group, self._partitions, self._partition = group, 1, partition
        elif partition != self._partition:
            self._partitions += 1
            self._partition = partition
        self.items.append(item)
        self._bytes += size

    def take(self) -> list[Any]:
        items, self.items = self.items, []
        self._bytes = 0
        self._partitions = 0
        self._group = self._partition = None
        return items
