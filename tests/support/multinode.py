"""Driver sessions straight to the nodes of the `multinode` sandbox, bypassing the proxy: to
set up and drop keyspaces, and to read each node's own counters."""

from __future__ import annotations

from cassandra.cluster import Cluster as DriverCluster
from cassandra.policies import RoundRobinPolicy, WhiteListRoundRobinPolicy

#: a node busy with a copy or a restart on two cores can take this long to accept a connection
CONNECT_TIMEOUT_S = 20
#: how long a schema change waits for every node to agree on the schema. The driver's default is
#: 10 s. A node restarted by the test before can take longer to apply a CREATE KEYSPACE; the
#: driver then only warns and goes on, and the CREATE TABLE after it fails on that node with
#: "Keyspace ... doesn't exist".
SCHEMA_AGREEMENT_S = 60


class direct:
    """A driver session to every node of one cluster, each with its connection pool open.

    The driver's ``connect()`` returns once its first pool is up; a request sent to another
    node before that node's pool is up fails with "Host has been marked down or removed".
    So this waits for all of them."""

    def __init__(self, multinode, cluster: str, *, protocol_version: int = 5) -> None:
        self.cluster = DriverCluster(multinode.addresses(cluster), port=multinode.nodes(cluster)[0].native_port,
                                     load_balancing_policy=RoundRobinPolicy(), protocol_version=protocol_version,
                                     connect_timeout=CONNECT_TIMEOUT_S,
                                     max_schema_agreement_wait=SCHEMA_AGREEMENT_S)

    def __enter__(self):
        session = self.cluster.connect(wait_for_all_pools=True)
        # schema changes wait for every node to agree: slow on small heaps and two cores
        session.default_timeout = 60
        return session

    def __exit__(self, *exc):
        self.cluster.shutdown()


class NodeSessions:
    """One session per node of one cluster, whitelisted to it: what each node says of itself
    (its ``system_views`` counters), whatever the others' state."""

    def __init__(self, multinode, cluster: str) -> None:
        port = multinode.nodes(cluster)[0].native_port
        self.sessions = {}
        self._clusters = []
        try:
            for address in multinode.addresses(cluster):
                c = DriverCluster([address], port=port, load_balancing_policy=WhiteListRoundRobinPolicy([address]),
                                  protocol_version=5, connect_timeout=CONNECT_TIMEOUT_S)
                self._clusters.append(c)
                self.sessions[address] = c.connect()
        except BaseException:
            self.close()
            raise

    def table_count(self, view: str, ks: str, table: str = "t") -> dict[str, int]:
        """Per node: the ``count`` of ``system_views.<view>`` for ``ks.table`` (0: none yet)."""
        out = {}
        for address, session in self.sessions.items():
            rows = list(session.execute(f"SELECT count FROM system_views.{view} "
                                        "WHERE keyspace_name = %s AND table_name = %s", (ks, table), timeout=30))
            out[address] = rows[0].count if rows else 0
        return out

    def close(self) -> None:
        for c in self._clusters:
            c.shutdown()

    def __enter__(self) -> NodeSessions:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def create_keyspace(multinode, prefix: str, rf: dict[str, int],
                    table: str = "CREATE TABLE {ks}.t (k int PRIMARY KEY, v text)") -> str:
    """A new keyspace ``<prefix><random>`` with SimpleStrategy at ``rf[cluster]`` on each
    cluster named, and ``table`` in it; its name."""
    import uuid

    ks = prefix + uuid.uuid4().hex[:8]
    for cluster, factor in rf.items():
        with direct(multinode, cluster) as s:
            s.execute(f"CREATE KEYSPACE {ks} WITH replication = "
                      f"{{'class': 'SimpleStrategy', 'replication_factor': {factor}}}")
            s.execute(table.format(ks=ks))
    return ks


def drop_keyspaces(multinode, *keyspaces: str) -> None:
    """Drop these keyspaces on both clusters (if they are there)."""
    for cluster in ("origin", "target"):
        with direct(multinode, cluster) as s:
            for ks in keyspaces:
                s.execute(f"DROP KEYSPACE IF EXISTS {ks}", timeout=120)
