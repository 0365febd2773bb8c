"""v5 segments (v5 spec sections 2.1-2.2), with the python driver as oracle."""

import io
import zlib

import pytest
from cassandra import segment as driver
from hypothesis import given, settings
from hypothesis import strategies as st

from zdm.cql.constants import MAX_SEGMENT_PAYLOAD
from zdm.cql.errors import ProtocolError
from zdm.cql.frame import encode_frame
from zdm.cql.segment import SegmentReader, crc24, crc32, encode_segment, encode_segments

# Expected values were computed once with the python driver's bit-by-bit algorithm
# (cassandra/segment.py compute_crc24) and zlib seeded as in CRC32_INITIAL.
CRC24_VECTORS = [
    ("empty", b"", 0x875060),
    ("header-len5-self-contained", (5 | 1 << 17).to_bytes(3, "little"), 0x9A9919),
    ("zeros", b"\x00\x00\x00", 0x7DE777),
    ("ones", b"\xff\xff\xff", 0x7A86FF),
]


@pytest.mark.parametrize("data,expected", [v[1:] for v in CRC24_VECTORS],
                         ids=[v[0] for v in CRC24_VECTORS])
def test_crc24_matches_driver(data, expected):
    value = int.from_bytes(data, "little")
    assert crc24(data) == driver.compute_crc24(value, len(data))
    assert crc24(data) == expected


@given(st.binary(min_size=1, max_size=8))
def test_crc24_matches_driver_on_arbitrary_headers(data):
    assert crc24(data) == driver.compute_crc24(int.from_bytes(data, "little"), len(data))


CRC32_VECTORS = [
    ("empty", b"", zlib.crc32(b"\xfa\x2d\x55\xca")),
    ("hello", b"hello", zlib.crc32(b"\xfa\x2d\x55\xcahello")),
]


@pytest.mark.parametrize("data,expected", [v[1:] for v in CRC32_VECTORS],
                         ids=[v[0] for v in CRC32_VECTORS])
def test_crc32_is_seeded_like_cassandra(data, expected):
    assert crc32(data) == expected == driver.compute_crc32(data, driver.CRC32_INITIAL)


def _driver_decode_all(raw):
    codec, buf, out = driver.SegmentCodec(), io.BytesIO(raw), []
    while buf.tell() < len(raw):
        header = codec.decode_header(buf)
        segment = codec.decode(buf, header)
        out.append((segment.payload, segment.is_self_contained))
    return out


def _driver_encode(payload):
    buf = io.BytesIO()
    driver.SegmentCodec().encode(buf, payload)
    return buf.getvalue()


def _read_all(raw, **kwargs):
    reader, out = SegmentReader(**kwargs), []
    reader.receive_data(raw)
    while (item := reader.next_payload()) is not None:
        out.append(item)
    return out, len(reader)


def _frame(n, stream=0):
    return encode_frame(5, 0x07, bytes([stream % 256]) * n, stream=stream)


PACKING = [
    ("one-small-frame", [10], [(1, True)]),
    ("several-frames-one-segment", [10, 20, 30], [(3, True)]),
    ("exactly-max", [MAX_SEGMENT_PAYLOAD - 9], [(1, True)]),
    ("overflow-starts-new-segment", [MAX_SEGMENT_PAYLOAD - 9, 1], [(1, True), (1, True)]),
    ("large-frame-split", [MAX_SEGMENT_PAYLOAD], [(None, False), (None, False)]),
    ("small-large-small", [5, 300_000, 5], [(1, True), (None, False), (None, False),
                                            (None, False), (1, True)]),
]


@pytest.mark.parametrize("sizes,expected", [p[1:] for p in PACKING], ids=[p[0] for p in PACKING])
def test_encode_segments_packing_decoded_by_driver(sizes, expected):
    frames = b"".join(_frame(n, i) for i, n in enumerate(sizes))
    segments = _driver_decode_all(encode_segments(frames))
    assert [sc for _, sc in segments] == [sc for _, sc in expected]
    assert b"".join(payload for payload, _ in segments) == frames
    assert all(len(payload) <= MAX_SEGMENT_PAYLOAD for payload, _ in segments)


@pytest.mark.parametrize("size", [0, 1, 1000, MAX_SEGMENT_PAYLOAD, MAX_SEGMENT_PAYLOAD + 1,
                                  3 * MAX_SEGMENT_PAYLOAD + 7],
                         ids=lambda n: f"{n}-bytes")
def test_reader_decodes_driver_segments(size):
    payload = bytes(i % 251 for i in range(size))
    got, left = _read_all(_driver_encode(payload))
    assert b"".join(p for p, _ in got) == payload
    assert all(sc == (size <= MAX_SEGMENT_PAYLOAD) for _, sc in got)
    assert left == 0


@given(st.binary(max_size=300), st.booleans(), st.data())
def test_segment_round_trip_and_split_feeding(payload, self_contained, data):
    raw = encode_segment(payload, self_contained) * 2
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=5)))
    reader, out = SegmentReader(), []
    for a, b in zip([0] + cuts, cuts + [len(raw)]):
        reader.receive_data(raw[a:b])
        while (item := reader.next_payload()) is not None:
            out.append(item)
    assert out == [(payload, self_contained)] * 2


def test_trailing_partial_segment_stays_buffered():
    raw = encode_segment(b"abc", True)
    got, left = _read_all(raw + raw[:7])
    assert got == [(b"abc", True)] and left == 7


CORRUPTIONS = [("header-byte", 0), ("header-crc", 4), ("payload", 7), ("payload-crc", -1)]


@pytest.mark.parametrize("index", [c[1] for c in CORRUPTIONS], ids=[c[0] for c in CORRUPTIONS])
def test_crc_mismatch_raises_and_poisons(index):
    raw = bytearray(encode_segment(b"hello", True))
    raw[index] ^= 0x01
    reader = SegmentReader()
    reader.receive_data(bytes(raw) + encode_segment(b"next", True))
    with pytest.raises(ProtocolError, match="CRC"):
        reader.next_payload()
    with pytest.raises(ProtocolError):
        reader.next_payload()


def test_compression_is_refused_clearly():
    with pytest.raises(ProtocolError, match="compressed"):
        SegmentReader(compressed=True)


def test_encode_segments_rejects_partial_frames():
    with pytest.raises(ProtocolError):
        encode_segments(_frame(10)[:-1])


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_only_raise_protocol_error(raw):
    reader = SegmentReader()
    reader.receive_data(raw)
    try:
        while reader.next_payload() is not None:
            pass
    except ProtocolError:
        pass
