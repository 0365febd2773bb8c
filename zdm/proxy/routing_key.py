"""The partition a request writes or reads, when the proxy can know it without parsing CQL.

Theory of operation: a PREPARED result (protocol v4+, section 4.2.5.4) names which bind
markers are the partition key's components, in the key's order (``pk_indexes``).  An
EXECUTE of that statement binds their values, so its routing key is:

* one component: the value's bytes as they are;
* several: each component as Cassandra's ``CompositeType`` serializes it --
  ``<length: 2 bytes, big-endian><bytes><end-of-component: 0x00>`` -- one after the other.

Its token is :func:`zdm.proxy.murmur3.token` of that key.  A key cannot be known when a
component is missing, null or unset (the node would refuse the request anyway), longer than
a composite can hold (65535 bytes), or when the statement has no partition-key indexes
(protocol v3, or a statement that is not on one partition).  The answer is then None and
the request is routed without a replica preference; a wrong guess is never made.

A BATCH has one partition when all its children are prepared statements of one keyspace
whose keys have one token; :func:`batch_partition` says which, or None.

On the request path the proxy keeps, per prepared statement, its :class:`KeyMarkers` (made
by :func:`key_markers` from the PREPARED result's metadata), and asks
:func:`execute_partition` / :func:`batch_body_partition` of a request's body: pure
functions of bytes, as the rest of the request path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

from zdm.cql import messages as m
from zdm.cql.errors import ProtocolError
from zdm.proxy.murmur3 import token

_COMPONENT_MAX = 0xFFFF


class Partition(NamedTuple):
    """Where a request goes on the ring: a keyspace (its replication) and a token."""

    keyspace: str
    token: int


class KeyMarkers(NamedTuple):
    """What the proxy keeps of a prepared statement to find its partition: the keyspace of
    its table and which bind markers are its partition key's components."""

    keyspace: str
    pk_indexes: tuple[int, ...]

    @property
    def values_needed(self) -> int:
        """How many leading bound values hold every component."""
        return max(self.pk_indexes) + 1


def key_markers(meta: m.PreparedMetadata) -> KeyMarkers | None:
    """From a PREPARED result's metadata (:func:`zdm.cql.messages.decode_prepared_metadata`):
    None when the statement names no whole partition key (v3 results have no indexes)."""
    if not meta.pk_indexes or max(meta.pk_indexes) >= len(meta.binds):
        return None
    # the table's own keyspace, which may differ from the connection's (a qualified name)
    return KeyMarkers(meta.binds[meta.pk_indexes[0]].keyspace, tuple(meta.pk_indexes))


def routing_key(pk_indexes: Sequence[int], values: Sequence[object]) -> bytes | None:
    """The serialized partition key of a statement whose markers ``pk_indexes`` are the key's
    components, bound to ``values`` (positional, as an EXECUTE without names binds them);
    None when it cannot be known."""
    if not pk_indexes:
        return None
    parts = []
    for index in pk_indexes:
        if not 0 <= index < len(values):
            return None
        value = values[index]
        if not isinstance(value, (bytes, bytearray, memoryview)):  # null or UNSET
            return None
        parts.append(bytes(value))
    if len(parts) == 1:
        return parts[0]
    out = bytearray()
    for part in parts:
        if len(part) > _COMPONENT_MAX:
            return None
        out += len(part).to_bytes(2, "big")
        out += part
        out.append(0)
    return bytes(out)


def partition(keyspace: str | None, pk_indexes: Sequence[int],
              values: Sequence[object]) -> Partition | None:
    """The partition an EXECUTE addresses: its statement's keyspace and its key's token."""
    if keyspace is None:
        return None
    key = routing_key(pk_indexes, values)
    return None if key is None else Partition(keyspace, token(key))


def batch_partition(children: Iterable[tuple[str | None, Sequence[int], Sequence[object]] | None]
                    ) -> Partition | None:
    """The one partition a BATCH's children all address, or None.  Each child is
    (keyspace, pk_indexes, values) for a prepared statement the proxy knows, or None (a
    query string, or a statement it does not know): one None, and the batch has none."""
    found: Partition | None = None
    for child in children:
        here = None if child is None else partition(*child)
        if here is None or (found is not None and here != found):
            return None  # replicas depend only on the keyspace and the token
        found = here
    return found


def execute_partition(body: bytes, version: int, markers: KeyMarkers | None, *,
                      flags: int = 0) -> Partition | None:
    """The partition of an EXECUTE of a statement with ``markers``; None when it cannot be
    known (values bound by name, which drivers do not send for prepared statements, are not
    matched to markers here)."""
    if markers is None:
        return None
    try:
        values = m.execute_leading_values(body, version, markers.values_needed, flags=flags)
    except ProtocolError:
        return None  # the cluster answers it; routing does not
    if values is None:
        return None
    return partition(markers.keyspace, markers.pk_indexes, values)


def batch_body_partition(body: bytes, version: int, markers_of: Callable[[bytes], KeyMarkers | None], *,
                         flags: int = 0) -> Partition | None:
    """The one partition of a BATCH whose children are all prepared statements that
    ``markers_of(prepared_id)`` knows, or None."""
    try:
        info = m.decode_batch(body, version, flags=flags)
    except ProtocolError:
        return None

    if not info.children:
        return None
    return children_partition(info.children, [markers_of(c.prepared_id) if c.kind == 1 else None
                                              for c in info.children])


def children_partition(children: Sequence[m.BatchChild], markers: Iterable[KeyMarkers | None]
                       ) -> Partition | None:
    """The one partition of a BATCH's ``children``, given each one's statement's ``markers``
    (None: a query string or a statement the proxy does not know)."""
    return batch_partition(None if k is None else (k.keyspace, k.pk_indexes, c.values)
                           for c, k in zip(children, markers))
