"""Murmur3 tokens and the routing keys of EXECUTE and BATCH, with no socket.

The golden tokens were read from a Cassandra 5.0.8 node with ``SELECT token(k)``; the
integration test tests/integration/test_proxy_cluster_topology.py checks the same against the
running sandbox.  Hypothesis compares every byte string with the DataStax driver's own
(C) Murmur3, an independent implementation.
"""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zdm.cql.primitives import UNSET
from zdm.cql.types import parse_type, serialize
from zdm.proxy.murmur3 import MAX_TOKEN, MIN_TOKEN, token, token_python
from zdm.proxy.routing_key import Partition, batch_partition, partition, routing_key

INT, TEXT, UUID = parse_type("int"), parse_type("text"), parse_type("uuid")

GOLDEN = [  # (type, value, token from Cassandra 5.0.8)
    ("int", 0, -3485513579396041028),
    ("int", 1, -4069959284402364209),
    ("int", -2147483648, -420533958509279465),
    ("bigint", -1, 7071048584287372947),
    ("bigint", 9223372036854775807, -1722304415079482439),
    ("text", "a", -8839064797231613815),
    ("text", "é日本語", 4077731479029314900),          # tail bytes >= 0x80: sign-extended
    ("text", "x" * 15, 2088934356530938522),
    ("text", "y" * 16, 8880037273788572859),           # exactly one block, no tail
    ("text", "z" * 17, 1197921854538287573),
    ("uuid", uuid.UUID("7ebe0f44-654d-4ea2-accf-416be9ed7d58"), -6437040419531848461),
    ("blob", b"\xff" * 9, 8434364767658694854),        # a tail longer than 8: both halves
]


@pytest.mark.parametrize("cql_type, value, expected", GOLDEN, ids=lambda v: repr(v)[:24])
@pytest.mark.parametrize("hash_key", [token, token_python], ids=["token", "python"])
def test_golden_tokens(cql_type, value, expected, hash_key):
    assert hash_key(serialize(parse_type(cql_type), value)) == expected


def test_a_composite_key_is_each_component_with_its_length_and_an_end_byte():
    key = routing_key([0, 1, 2], [serialize(INT, 1), serialize(TEXT, "x"), serialize(UUID, uuid.UUID(int=5))])
    assert key == b"\x00\x04\x00\x00\x00\x01\x00" + b"\x00\x01x\x00" + b"\x00\x10" + uuid.UUID(int=5).bytes + b"\x00"
    assert token(key) == 9050609383335361448  # Cassandra's token(a, b, c)


@pytest.mark.parametrize("pk_indexes, values, expected", [
    ([1], [b"a", b"\x00\x00\x00\x07"], b"\x00\x00\x00\x07"),       # one component: as it is
    ([1, 0], [b"a", b"bc"], b"\x00\x02bc\x00\x00\x01a\x00"),       # the key's order, not the markers'
    ([], [b"a"], None),                                          # v3, or not one partition
    ([0], [None], None),                                          # null: the node refuses it
    ([0, 1], [b"a", UNSET], None),                                # unset
    ([2], [b"a"], None),                                          # fewer values than markers
    ([0, 1], [b"a", b"x" * 65536], None),                          # too long for a composite
    ([0], [b"x" * 65536], b"x" * 65536),                           # a single one has no such limit
], ids=["single", "composite", "no-indexes", "null", "unset", "missing", "long-component", "long-single"])
def test_routing_key(pk_indexes, values, expected):
    assert routing_key(pk_indexes, values) == expected


def test_partition_of_an_execute():
    assert partition("ks", [0], [serialize(INT, 1)]) == Partition("ks", -4069959284402364209)
    assert partition(None, [0], [serialize(INT, 1)]) is None


@pytest.mark.parametrize("children, expected", [
    ([("ks", [0], [b"\x00\x00\x00\x01", b"v"]), ("ks", [1], [b"w", b"\x00\x00\x00\x01"])],
     Partition("ks", -4069959284402364209)),                      # two tables, one partition
    ([("ks", [0], [b"\x00\x00\x00\x01"]), ("ks", [0], [b"\x00\x00\x00\x02"])], None),
    ([("ks", [0], [b"\x00\x00\x00\x01"]), ("other", [0], [b"\x00\x00\x00\x01"])], None),
    ([("ks", [0], [b"\x00\x00\x00\x01"]), None], None),            # a query string child
    ([], None),
], ids=["one-partition", "two-keys", "two-keyspaces", "unknown-child", "empty"])
def test_batch_partition(children, expected):
    assert batch_partition(children) == expected


@given(st.binary(max_size=300))
def test_any_bytes_get_the_token_the_driver_computes(data):
    from cassandra.cmurmur3 import murmur3

    theirs = murmur3(data)
    assert token_python(data) == token(data) == (MAX_TOKEN if theirs == MIN_TOKEN else theirs)
    assert MIN_TOKEN < token(data) <= MAX_TOKEN


@given(st.lists(st.one_of(st.none(), st.just(UNSET), st.binary(max_size=40)), max_size=5),
       st.lists(st.integers(-2, 6), max_size=4))
def test_routing_key_never_crashes(values, pk_indexes):
    key = routing_key(pk_indexes, values)
    assert key is None or isinstance(token(key), int)


def test_an_execute_with_named_values_or_a_malformed_body_has_no_partition():
    from zdm.cql import messages as m
    from tests.support.primitives import write_short, write_short_bytes, write_string, write_value
    from zdm.proxy.routing_key import KeyMarkers, execute_partition

    markers = KeyMarkers("ks", (0,))
    positional = m.encode_execute(b"id", [serialize(INT, 1)], 4)
    assert execute_partition(positional, 4, markers) == Partition("ks", -4069959284402364209)
    named = write_short_bytes(b"id") + write_short(1) + bytes([0x41]) + write_short(1) + \
        write_string("k") + write_value(serialize(INT, 1))
    assert execute_partition(named, 4, markers) is None
    assert execute_partition(positional[:-2], 4, markers) is None
    assert execute_partition(positional, 4, None) is None


@given(st.lists(st.one_of(st.none(), st.binary(max_size=30)), min_size=1, max_size=6),
       st.sampled_from([4, 5]), st.data())
def test_the_leading_values_are_the_first_bound_values_read_in_place(values, version, data):
    from zdm.cql import messages as m
    from zdm.cql.errors import ProtocolError

    kw = {"result_metadata_id": b"\x01" * 16} if version >= 5 else {}
    body = m.encode_execute(b"\xaa" * 16, values, version, **kw)
    count = data.draw(st.integers(1, len(values)))
    assert m.execute_leading_values(body, version, count) == m.execute_values(body, version)[:count]
    assert m.execute_leading_values(body, version, len(values) + 1) is None  # fewer values bound
    cut = data.draw(st.integers(0, len(body) - 1))
    try:
        found = m.execute_leading_values(body[:cut], version, len(values))
    except ProtocolError:
        return
    assert found is None or found == m.execute_values(body, version)[:len(values)]
