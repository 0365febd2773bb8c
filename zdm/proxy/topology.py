"""The virtual topology: ``system.local`` / ``peers`` / ``peers_v2`` as the proxy answers them.

Theory of operation: a driver discovers the cluster from these tables and then
connects to every node it finds.  The proxy answers them itself so that the only
nodes a driver ever sees are the configured proxy instances: the instance a
connection arrived on is ``system.local``, the other instances are the peers.
Cluster-wide facts (cluster name, partitioner, release and CQL versions, data
centre, schema version) are origin's, read once when the proxy starts; each
instance gets an evenly spaced Murmur3 token and a host id derived from its
address, so every instance describes the same ring.
"""

from __future__ import annotations

import re
import struct
import uuid
from dataclasses import dataclass

from zdm.cql.messages import ColumnSpec, encode_rows
from zdm.cql.types import parse_type, serialize
from zdm.releases import PORTS_IN_SYSTEM_TABLES_SINCE, parse_version

_COLUMNS = {
    "local": [
        ("key", "text"), ("bootstrapped", "text"), ("broadcast_address", "inet"),
        ("broadcast_port", "int"), ("cluster_name", "text"), ("cql_version", "text"),
        ("data_center", "text"), ("gossip_generation", "int"), ("host_id", "uuid"),
        ("listen_address", "inet"), ("listen_port", "int"), ("native_protocol_version", "text"),
        ("partitioner", "text"), ("rack", "text"), ("release_version", "text"),
        ("rpc_address", "inet"), ("rpc_port", "int"), ("schema_version", "uuid"),
        ("tokens", "set<text>"), ("truncated_at", "map<uuid, blob>"),
    ],
    "peers": [
        ("peer", "inet"), ("data_center", "text"), ("host_id", "uuid"), ("preferred_ip", "inet"),
        ("rack", "text"), ("release_version", "text"), ("rpc_address", "inet"),
        ("schema_version", "uuid"), ("tokens", "set<text>"),
    ],
    "peers_v2": [
        ("peer", "inet"), ("peer_port", "int"), ("data_center", "text"), ("host_id", "uuid"),
        ("native_address", "inet"), ("native_port", "int"), ("preferred_ip", "inet"),
        ("preferred_port", "int"), ("rack", "text"), ("release_version", "text"),
        ("schema_version", "uuid"), ("tokens", "set<text>"),
    ],
}
#: system.local as releases before 4.0 have it: no port columns, a thrift_version
_COLUMNS_BEFORE_4 = {
    "local": [c for c in _COLUMNS["local"] if c[0] not in ("broadcast_port", "listen_port", "rpc_port")]
    + [("thrift_version", "text")],
    "peers": _COLUMNS["peers"],
}
_TYPES = {table: {name: parse_type(t) for name, t in cols}
          for table, cols in {**_COLUMNS, "local": _COLUMNS["local"] + [("thrift_version", "text")]}.items()}
_SELECT = re.compile(r"^\s*select\s+(?:json\s+)?(.*?)\s+from\s", re.IGNORECASE | re.DOTALL)
_ALIAS = re.compile(r"^(.*?)\s+as\s+(\S+)$", re.IGNORECASE)

#: what the proxy takes from origin's system.local
CLUSTER_FACTS = ("cluster_name", "cql_version", "data_center", "rack", "partitioner",
                 "release_version", "schema_version", "native_protocol_version", "thrift_version")


@dataclass(frozen=True)
class Instance:
    host: str
    port: int

    @property
    def host_id(self) -> uuid.UUID:
        return uuid.uuid5(uuid.NAMESPACE_URL, f"zdm-proxy://{self.host}:{self.port}")


class VirtualTopology:
    def __init__(self, instances: list[Instance], facts: dict) -> None:
        if not instances:
            raise ValueError("a topology needs at least one proxy instance")
        self.instances = instances
        self.facts = dict(facts)
        # the tables and columns a driver finds on origin's release (peers_v2 since 4.0)
        release = parse_version(self.facts.get("release_version"))
        self.columns = _COLUMNS if release is None or release >= PORTS_IN_SYSTEM_TABLES_SINCE \
            else _COLUMNS_BEFORE_4
        #: the virtual system tables origin's release has (what routing answers, not refuses)
        self.tables = frozenset(self.columns)
        step = 2**64 // len(instances)
        self._tokens = {inst: str(-2**63 + i * step) for i, inst in enumerate(instances)}

    def token_of(self, instance: Instance) -> str:
        return self._tokens[instance]

    def _common(self, inst: Instance) -> dict:
        f = self.facts
        return {"data_center": f.get("data_center") or "dc1", "rack": f.get("rack") or "rack1",
                "release_version": f.get("release_version"), "schema_version": f.get("schema_version"),
                "host_id": inst.host_id, "tokens": [self._tokens[inst]]}

    def local_row(self, me: Instance) -> dict:
        f = self.facts
        return {**self._common(me), "key": "local", "bootstrapped": "COMPLETED",
                "broadcast_address": me.host, "broadcast_port": 7000, "listen_address": me.host,
                "listen_port": 7000, "rpc_address": me.host, "rpc_port": me.port,
                "cluster_name": f.get("cluster_name"), "cql_version": f.get("cql_version"),
                "partitioner": f.get("partitioner") or "org.apache.cassandra.dht.Murmur3Partitioner",
                "native_protocol_version": f.get("native_protocol_version"), "gossip_generation": 0,
                "truncated_at": None, "thrift_version": f.get("thrift_version")}

    def peer_rows(self, me: Instance) -> list[dict]:
        rows = []
        for inst in self.instances:
            if inst == me:
                continue
            rows.append({**self._common(inst), "peer": inst.host, "peer_port": 7000,
                         "preferred_ip": None, "preferred_port": None, "rpc_address": inst.host,
                         "native_address": inst.host, "native_port": inst.port})
        return rows

    def has(self, table: str) -> bool:
        """Whether origin's release has ``system.<table>`` (the proxy answers as it would)."""
        return table in self.tables

    def _rows(self, table: str, me: Instance) -> list[dict]:
        return [self.local_row(me)] if table == "local" else self.peer_rows(me)

    def answer(self, table: str, query: str, me: Instance) -> bytes:
        """A RESULT ROWS body answering ``query`` on ``system.<table>``."""
        rows = self._rows(table, me)
        types = _TYPES[table]
        selected = selected_columns(query)
        if selected is None:
            selected = [(name, name) for name, _ in self.columns[table]]
        columns = [("system", table, alias, types.get(name, types.get("key") or _TEXT))
                   for name, alias in selected]
        values = [[row.get(name) for name, _ in selected] for row in rows]
        return encode_rows(columns, values)

    def answer_prepared(self, table: str, query: str, columns: list[ColumnSpec], me: Instance, *,
                        no_metadata: bool) -> bytes:
        """The answer to an EXECUTE of a prepared read of ``system.<table>``.

        ``columns`` are the result columns origin described when the statement was prepared:
        the driver decodes rows by them (it asks to skip the metadata), so the answer has
        exactly those columns, in that order, with origin's types; a column the proxy has no
        value for is null.
        """
        rows = self._rows(table, me)
        selected = selected_columns(query)
        if selected is None or len(selected) != len(columns):
            names = [c.name for c in columns]  # SELECT *: origin's own column list
        else:
            names = [name for name, _ in selected]
        values = [[_fit(col.type, row.get(name)) for col, name in zip(columns, names)]
                  for row in rows]
        specs = [(c.keyspace, c.table, c.name, c.type) for c in columns]
        return encode_rows(specs, values, no_metadata=no_metadata)


_TEXT = parse_type("text")


def _fit(cql_type, value):
    """``value`` if it serializes as ``cql_type``, else None (a column whose type differs on
    origin's release is better null than undecodable)."""
    if value is None:
        return None
    try:
        serialize(cql_type, value)
    except (TypeError, ValueError, AttributeError, OverflowError, struct.error):
        return None
    return value


def selected_columns(query: str) -> list[tuple[str, str]] | None:
    """[(column, alias)] of a SELECT, or None for ``*``."""
    match = _SELECT.match(query)
    if not match or match.group(1).strip() == "*":
        return None
    out = []
    for part in match.group(1).split(","):
        part = part.strip()
        alias = _ALIAS.match(part)
        name, shown = (alias.group(1), alias.group(2)) if alias else (part, part)
        out.append((name.strip().strip('"').lower(), shown.strip('"')))
    return out
