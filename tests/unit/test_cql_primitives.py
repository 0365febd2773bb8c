"""[short], [string], [bytes], ... (v5 spec section 3) and the receive buffer."""

import ipaddress
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support import primitives as p
from zdm.cql.buffer import ReceiveBuffer
from zdm.cql.errors import ProtocolError

KNOWN = [
    ("short", p.write_short(0x1234), p.read_short, 0x1234),
    ("int-negative", p.write_int(-2), p.read_int, -2),
    ("long", p.write_long(-1), p.read_long, -1),
    ("byte", p.write_byte(255), p.read_byte, 255),
    ("string", b"\x00\x03abc", p.read_string, "abc"),
    ("string-utf8", b"\x00\x02\xc3\xa9", p.read_string, "é"),
    ("long-string", b"\x00\x00\x00\x02hi", p.read_long_string, "hi"),
    ("short-bytes", b"\x00\x01\xff", p.read_short_bytes, b"\xff"),
    ("bytes-null", b"\xff\xff\xff\xff", p.read_bytes, None),
    ("bytes-empty", b"\x00\x00\x00\x00", p.read_bytes, b""),
    ("value-unset", b"\xff\xff\xff\xfe", p.read_value, p.UNSET),
    ("string-list", b"\x00\x02\x00\x01a\x00\x00", p.read_string_list, ["a", ""]),
    ("string-map", b"\x00\x01\x00\x01k\x00\x01v", p.read_string_map, {"k": "v"}),
    ("multimap", b"\x00\x01\x00\x01k\x00\x01\x00\x01v", p.read_string_multimap, {"k": ["v"]}),
    ("inet4", b"\x04\x7f\x00\x00\x01\x00\x00\x23\x52", p.read_inet,
     (ipaddress.ip_address("127.0.0.1"), 9042)),
    ("uuid", bytes(range(16)), p.read_uuid, uuid.UUID(bytes=bytes(range(16)))),
]


@pytest.mark.parametrize("raw,reader,expected", [k[1:] for k in KNOWN], ids=[k[0] for k in KNOWN])
def test_known_encodings(raw, reader, expected):
    assert reader(raw + b"tail", 0) == (expected, len(raw))
    assert reader(memoryview(b"xx" + raw), 2) == (expected, 2 + len(raw))


@pytest.mark.parametrize("raw,reader,expected", [k[1:] for k in KNOWN], ids=[k[0] for k in KNOWN])
def test_every_truncation_raises_protocol_error(raw, reader, expected):
    for cut in range(len(raw)):
        with pytest.raises(ProtocolError):
            reader(raw[:cut], 0)


MALFORMED = [
    ("bad-utf8", b"\x00\x01\xff", p.read_string),
    ("negative-long-string", b"\xff\xff\xff\xff", p.read_long_string),
    ("value-below-minus-2", b"\xff\xff\xff\xfd", p.read_value),
    ("inet-size-5", b"\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00", p.read_inet),
]


@pytest.mark.parametrize("raw,reader", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_raises_protocol_error(raw, reader):
    with pytest.raises(ProtocolError):
        reader(raw, 0)


text = st.text(max_size=50)


@given(st.integers(0, 0xFFFF), st.integers(-2**31, 2**31 - 1), st.integers(-2**63, 2**63 - 1))
def test_integers_round_trip(short, int_, long_):
    raw = p.write_short(short) + p.write_int(int_) + p.write_long(long_)
    v1, off = p.read_short(raw, 0)
    v2, off = p.read_int(raw, off)
    v3, off = p.read_long(raw, off)
    assert (v1, v2, v3, off) == (short, int_, long_, len(raw))


ROUND_TRIPS = [
    ("string", text, p.write_string, p.read_string),
    ("long-string", text, p.write_long_string, p.read_long_string),
    ("short-bytes", st.binary(max_size=50), p.write_short_bytes, p.read_short_bytes),
    ("bytes", st.none() | st.binary(max_size=50), p.write_bytes, p.read_bytes),
    ("value", st.none() | st.just(p.UNSET) | st.binary(max_size=50), p.write_value, p.read_value),
    ("string-list", st.lists(text, max_size=5), p.write_string_list, p.read_string_list),
    ("string-map", st.dictionaries(text, text, max_size=5), p.write_string_map, p.read_string_map),
    ("multimap", st.dictionaries(text, st.lists(text, max_size=3), max_size=4),
     p.write_string_multimap, p.read_string_multimap),
    ("bytes-map", st.dictionaries(text, st.none() | st.binary(max_size=9), max_size=4),
     p.write_bytes_map, p.read_bytes_map),
    ("uuid", st.uuids(), p.write_uuid, p.read_uuid),
]


@pytest.mark.parametrize("strategy,writer,reader", [r[1:] for r in ROUND_TRIPS],
                         ids=[r[0] for r in ROUND_TRIPS])
@given(data=st.data())
def test_round_trip(strategy, writer, reader, data):
    value = data.draw(strategy)
    raw = writer(value)
    assert reader(raw, 0) == (value, len(raw))


@given(st.ip_addresses(), st.integers(-2**31, 2**31 - 1))
def test_inet_round_trip(address, port):
    raw = p.write_inet(address, port)
    assert p.read_inet(raw, 0) == ((address, port), len(raw))


READERS = [p.read_byte, p.read_short, p.read_int, p.read_long, p.read_string,
           p.read_long_string, p.read_short_bytes, p.read_bytes, p.read_value,
           p.read_string_list, p.read_string_map, p.read_string_multimap, p.read_bytes_map,
           p.read_inet, p.read_uuid]


@given(st.binary(max_size=40), st.integers(0, 45))
def test_arbitrary_bytes_only_raise_protocol_error(raw, offset):
    for reader in READERS:
        try:
            _, end = reader(raw, offset)
        except ProtocolError:
            continue
        assert offset <= end <= len(raw)


# --- ReceiveBuffer ----------------------------------------------------------------

def test_buffer_never_consumes_partially():
    buf = ReceiveBuffer()
    buf.feed(b"abc")
    assert buf.consume_exactly(4) is None
    assert buf.peek(4) is None
    assert len(buf) == 3
    assert buf.peek(2) == b"ab"
    assert buf.consume_exactly(2) == b"ab"
    buf.feed(b"de")
    assert buf.consume_exactly(3) == b"cde"
    assert len(buf) == 0 and not buf


def test_buffer_compacts_with_many_small_reads():
    buf = ReceiveBuffer()
    chunk = bytes(range(100))
    for _ in range(5000):
        buf.feed(chunk)
        buf.feed(chunk[:7])
        assert buf.consume_exactly(100) is not None
    assert len(buf) == 5000 * 7
    assert len(buf._data) < 5000 * 7 + 140 * 1024  # consumed prefix was dropped


@given(st.lists(st.binary(max_size=20), max_size=30), st.lists(st.integers(0, 25), max_size=30))
def test_buffer_matches_a_plain_bytes_model(feeds, reads):
    buf, model = ReceiveBuffer(), b""
    for i in range(max(len(feeds), len(reads))):
        if i < len(feeds):
            buf.feed(feeds[i])
            model += feeds[i]
        if i < len(reads):
            n = reads[i]
            got = buf.consume_exactly(n)
            if len(model) < n:
                assert got is None
            else:
                assert got == model[:n]
                model = model[n:]
        assert len(buf) == len(model)
