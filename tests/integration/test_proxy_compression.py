"""Compression through the proxy against the real sandbox: the python driver negotiates LZ4
or Snappy as it would with a node, writes land on both clusters and reads come back right,
and a STARTUP asking for what cannot be given is refused as Cassandra refuses it."""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from cassandra.query import BatchStatement

from tests.support.harness import RunningProxy
from tests.support.net import driver_cluster, free_port
from tests.support.rawcql import RawClient
from zdm.config import ProxyConfig
from zdm.cql import messages as m
from zdm.cql.compression import CODECS, inflate_frame
from zdm.cql.constants import COMPRESSION, ErrorCode, Opcode, ResultKind
from zdm.cql.frame import encode_frame
from zdm.phases.model import Cluster

LARGE = "".join(f"row {i:05d} of a large value; " for i in range(800))  # about 20 kB


@pytest.fixture(scope="module")
def proxy(zdm_config):
    config = dataclasses.replace(zdm_config, proxy=ProxyConfig(listen_port=free_port(),
                                                               request_timeout_s=10))
    running = RunningProxy(config)
    yield running
    running.stop()


def _sessions(proxy):
    return [s for w in proxy.server.workers for s in w.plane.sessions]


def test_the_proxy_offers_what_both_clusters_offer(proxy):
    assert {c: set(a) for c, a in proxy.server.control.compression.items()} == \
        {Cluster.ORIGIN: {"lz4", "snappy"}, Cluster.TARGET: {"lz4", "snappy"}}
    for version, expected in ((3, ["lz4", "snappy"]), (4, ["lz4", "snappy"]), (5, ["lz4"])):
        with RawClient(proxy.port, version=version) as client:
            supported = m.decode_supported(client.request(Opcode.OPTIONS, b"").body)
            assert supported["COMPRESSION"] == expected, version


DRIVERS = [("v4-lz4", 4, "lz4"), ("v4-snappy", 4, "snappy"), ("v3-snappy", 3, "snappy"),
           ("v5-lz4", 5, "lz4")]


@pytest.mark.parametrize("version,algorithm", [d[1:] for d in DRIVERS], ids=[d[0] for d in DRIVERS])
def test_driver_with_compression_writes_both_and_reads_back(proxy, version, algorithm,
                                                            origin_session, target_session):
    cluster = driver_cluster(proxy.port, version, compression=algorithm)
    session = cluster.connect()
    ks = "c_" + uuid.uuid4().hex[:10]
    try:
        assert cluster.protocol_version == version
        assert cluster.control_connection._connection._compression_type == algorithm
        # the proxy's legs: the client's and each cluster's use the algorithm asked for
        legs = {(s.codec.name, *(b.codec.name for b in s.backends.values())) for s in _sessions(proxy)
                if s.codec is not None and s.version == version}
        assert legs == {(algorithm, algorithm, algorithm)}

        session.execute(f"CREATE KEYSPACE {ks} WITH replication = "
                        "{'class': 'SimpleStrategy', 'replication_factor': 1}")
        session.execute(f"CREATE TABLE {ks}.t (k int PRIMARY KEY, v text)")
        session.execute(f"INSERT INTO {ks}.t (k, v) VALUES (1, 'simple')")
        insert = session.prepare(f"INSERT INTO {ks}.t (k, v) VALUES (?, ?)")
        session.execute(insert, (2, LARGE))
        batch = BatchStatement()
        batch.add(insert, (3, LARGE[::-1]))
        batch.add(f"INSERT INTO {ks}.t (k, v) VALUES (4, 'batched')")
        session.execute(batch)
        expected = {1: "simple", 2: LARGE, 3: LARGE[::-1], 4: "batched"}
        for direct in (origin_session, target_session):
            assert {r.k: r.v for r in direct.execute(f"SELECT k, v FROM {ks}.t")} == expected
        assert {r.k: r.v for r in session.execute(f"SELECT k, v FROM {ks}.t")} == expected
        select = session.prepare(f"SELECT v FROM {ks}.t WHERE k = ?")
        assert session.execute(select, (2,)).one().v == LARGE
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {ks}")
        cluster.shutdown()


@pytest.mark.parametrize("version,algorithm", [(5, "lz4"), (4, "snappy")], ids=["v5-lz4", "v4-snappy"])
def test_a_value_larger_than_a_segment(proxy, version, algorithm, keyspace, origin_session,
                                       target_session):
    """Above 128 KiB a v5 frame spans several compressed segments (section 2.2), both ways."""
    huge = "".join(f"{i:07d}-{(i * 7919) % 100003:05d};" for i in range(25_000))  # 350 kB
    for direct in (origin_session, target_session):
        direct.execute(f"CREATE TABLE {keyspace}.t (k int PRIMARY KEY, v text)")
    cluster = driver_cluster(proxy.port, version, compression=algorithm)
    session = cluster.connect()
    try:
        insert = session.prepare(f"INSERT INTO {keyspace}.t (k, v) VALUES (?, ?)")
        session.execute(insert, (1, huge))
        for direct in (origin_session, target_session):
            assert direct.execute(f"SELECT v FROM {keyspace}.t WHERE k = 1").one().v == huge
        assert session.execute(f"SELECT v FROM {keyspace}.t WHERE k = 1").one().v == huge
    finally:
        cluster.shutdown()


@pytest.mark.parametrize("algorithm", ["lz4", "snappy"])
def test_raw_compressed_frames_both_ways(proxy, algorithm, keyspace, origin_session, target_session):
    """What the driver hides: requests arrive compressed (a write goes on to both clusters
    as it came), answers leave compressed."""
    codec = CODECS[algorithm]
    for direct in (origin_session, target_session):
        direct.execute(f"CREATE TABLE {keyspace}.t (k int PRIMARY KEY, v text)")

    def compressed(client, stream, query):
        client.sock.sendall(encode_frame(4, Opcode.QUERY, codec.compress(m.encode_query(query, version=4)),
                                         stream=stream, flags=COMPRESSION))
        answer = client.receive()
        assert answer.stream == stream and answer.flags & COMPRESSION
        return answer

    with RawClient(proxy.port) as client:
        ready = client.request(Opcode.STARTUP, m.encode_startup({"CQL_VERSION": "3.0.0",
                                                                 "COMPRESSION": algorithm}))
        assert ready.opcode == Opcode.READY
        written = compressed(client, 5, f"INSERT INTO {keyspace}.t (k, v) VALUES (1, '{LARGE}')")
        assert m.result_kind(inflate_frame(written, codec, 1 << 20).body) == ResultKind.VOID
        for direct in (origin_session, target_session):
            assert direct.execute(f"SELECT v FROM {keyspace}.t WHERE k = 1").one().v == LARGE
        answer = compressed(client, 6, f"SELECT v FROM {keyspace}.t WHERE k = 1")
        assert len(answer.body) < len(LARGE) // 4  # really compressed
        plain = inflate_frame(answer, codec, 1 << 20)
        assert m.decode_rows(plain.body, 4).rows[0][0] == LARGE.encode()
        # an uncompressed request on a compressed connection is fine too, as on a node
        assert client.request(Opcode.OPTIONS, b"").flags & COMPRESSION


REFUSED = [("unknown", 4, "zstd"), ("unknown-v5", 5, "foo"), ("snappy-v5", 5, "snappy")]


@pytest.mark.parametrize("version,algorithm", [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_what_cannot_be_given_is_refused_as_cassandra_refuses_it(proxy, sandbox, version, algorithm):
    startup = m.encode_startup({"CQL_VERSION": "3.0.0", "COMPRESSION": algorithm})
    answers = []
    for port in (9042, proxy.port):  # a node, then the proxy
        with RawClient(port, version=version) as client:
            answer = client.request(Opcode.STARTUP, startup)
            assert answer.opcode == Opcode.ERROR
            answers.append(m.decode_error(answer.body))
            # the connection stays open: a STARTUP without compression then succeeds
            again = client.request(Opcode.STARTUP, m.encode_startup({"CQL_VERSION": "3.0.0"}))
            assert again.opcode == Opcode.READY
    node, proxied = answers
    assert proxied.code == node.code == ErrorCode.PROTOCOL_ERROR
    assert proxied.message == node.message


def test_a_cluster_that_does_not_offer_it_gets_an_uncompressed_leg(proxy, keyspace, origin_session,
                                                                   target_session):
    """The client's leg and each cluster's are independent: with target offering only Snappy,
    an LZ4 client still writes to both (target's leg plain, origin's LZ4)."""
    ctx = proxy.server.workers[0].plane.ctx
    offered = ctx.compression[Cluster.TARGET]
    for direct in (origin_session, target_session):
        direct.execute(f"CREATE TABLE {keyspace}.t (k int PRIMARY KEY, v text)")
    ctx.compression[Cluster.TARGET] = frozenset({"snappy"})
    try:
        with RawClient(proxy.port) as client:
            assert client.request(Opcode.STARTUP, m.encode_startup(
                {"CQL_VERSION": "3.0.0", "COMPRESSION": "lz4"})).opcode == Opcode.READY
            mine = [s for s in _sessions(proxy) if s.codec is not None and s.backends
                    and s.backends[Cluster.TARGET].codec is None]
            assert len(mine) == 1 and mine[0].backends[Cluster.ORIGIN].codec.name == "lz4"
            query = m.encode_query(f"INSERT INTO {keyspace}.t (k, v) VALUES (7, '{LARGE}')", version=4)
            client.sock.sendall(encode_frame(4, Opcode.QUERY, CODECS["lz4"].compress(query), stream=9,
                                             flags=COMPRESSION))
            answer = client.receive()
            assert answer.stream == 9 and answer.flags & COMPRESSION
            assert m.result_kind(inflate_frame(answer, CODECS["lz4"], 1 << 20).body) == ResultKind.VOID
    finally:
        ctx.compression[Cluster.TARGET] = offered
    for direct in (origin_session, target_session):
        assert direct.execute(f"SELECT v FROM {keyspace}.t WHERE k = 7").one().v == LARGE
