"""v5 segments (v5 spec sections 2.1-2.2), plain and LZ4-compressed, with the python driver as oracle."""

import io
import zlib

import pytest
from cassandra import connection as driver_connection
from cassandra import segment as driver
from hypothesis import given, settings
from hypothesis import strategies as st

from zdm.cql.compression import LZ4, SNAPPY
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


def test_snappy_is_refused_for_segments():
    with pytest.raises(ValueError, match="snappy"):
        SegmentReader(codec=SNAPPY)


# -- compressed segments (section 2.2), the python driver's LZ4 segment codec as oracle --

def _driver_lz4_decode_all(raw):
    codec, buf, out = driver_connection.segment_codec_lz4, io.BytesIO(raw), []
    while buf.tell() < len(raw):
        header = codec.decode_header(buf)
        segment = codec.decode(buf, header)
        out.append((segment.payload, segment.is_self_contained))
    return out


def _driver_lz4_encode(payload):
    buf = io.BytesIO()
    driver_connection.segment_codec_lz4.encode(buf, payload)
    return buf.getvalue()


COMPRESSIBLE = [
    ("empty", b""),
    ("tiny-incompressible", b"\x01\x02\x03"),  # sent as it is: uncompressed length 0
    ("repetitive", b"abc" * 5000),
    ("random-ish", bytes((i * 7919) % 251 for i in range(4000))),
    ("max", bytes(i % 7 for i in range(MAX_SEGMENT_PAYLOAD))),
]


@pytest.mark.parametrize("payload", [c[1] for c in COMPRESSIBLE], ids=[c[0] for c in COMPRESSIBLE])
@pytest.mark.parametrize("self_contained", [True, False], ids=["self-contained", "part"])
def test_lz4_segment_decoded_by_driver(payload, self_contained):
    raw = encode_segment(payload, self_contained, LZ4)
    assert _driver_lz4_decode_all(raw) == [(payload, self_contained)]
    if len(payload) > 100 and len(set(payload)) < 10:
        assert len(raw) < len(payload) // 4  # really compressed


@pytest.mark.parametrize("size", [0, 1, 1000, MAX_SEGMENT_PAYLOAD, MAX_SEGMENT_PAYLOAD + 1,
                                  3 * MAX_SEGMENT_PAYLOAD + 7],
                         ids=lambda n: f"{n}-bytes")
def test_lz4_reader_decodes_driver_segments(size):
    payload = bytes(i % 13 for i in range(size))
    got, left = _read_all(_driver_lz4_encode(payload), codec=LZ4)
    assert b"".join(p for p, _ in got) == payload
    assert all(sc == (size <= MAX_SEGMENT_PAYLOAD) for _, sc in got)
    assert left == 0


@pytest.mark.parametrize("sizes,expected", [p[1:] for p in PACKING], ids=[p[0] for p in PACKING])
def test_lz4_encode_segments_packing_decoded_by_driver(sizes, expected):
    frames = b"".join(_frame(n, i) for i, n in enumerate(sizes))
    segments = _driver_lz4_decode_all(encode_segments(frames, LZ4))
    assert [sc for _, sc in segments] == [sc for _, sc in expected]
    assert b"".join(payload for payload, _ in segments) == frames


@given(st.binary(max_size=600) | st.builds(lambda b, n: b * n, st.binary(min_size=1, max_size=8),
                                            st.integers(1, 500)),
       st.booleans(), st.data())
def test_lz4_segment_round_trip_and_split_feeding(payload, self_contained, data):
    raw = encode_segment(payload, self_contained, LZ4) * 2
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=5)))
    reader, out = SegmentReader(codec=LZ4), []
    for a, b in zip([0] + cuts, cuts + [len(raw)]):
        reader.receive_data(raw[a:b])
        while (item := reader.next_payload()) is not None:
            out.append(item)
    assert out == [(payload, self_contained)] * 2


def test_lz4_segment_fed_byte_by_byte_with_trailing_bytes_kept():
    raw = encode_segment(b"xyz" * 1000, True, LZ4)
    reader, out = SegmentReader(codec=LZ4), []
    for i in range(len(raw)):
        reader.receive_data(raw[i:i + 1])
        while (item := reader.next_payload()) is not None:
            out.append(item)
    reader.receive_data(raw[:6])
    assert out == [(b"xyz" * 1000, True)] and reader.next_payload() is None and len(reader) == 6


def _compressed_segment(packed, size, self_contained=True):
    header = (len(packed) | size << 17 | (1 << 34 if self_contained else 0)).to_bytes(5, "little")
    return header + crc24(header).to_bytes(3, "little") + packed + \
        crc32(packed).to_bytes(4, "little")


BAD_COMPRESSED = [
    ("corrupt-block", _compressed_segment(b"\xff" * 20, 100), "LZ4"),
    ("size-too-small", _compressed_segment(LZ4.compress_block(b"a" * 500), 10), "LZ4"),
    ("size-too-large", _compressed_segment(LZ4.compress_block(b"a" * 500), 900), "LZ4"),
    ("header-crc", bytes([1]) + _compressed_segment(b"", 0)[1:], "CRC24"),
]


@pytest.mark.parametrize("raw,match", [b[1:] for b in BAD_COMPRESSED], ids=[b[0] for b in BAD_COMPRESSED])
def test_bad_compressed_segment_raises_and_poisons(raw, match):
    reader = SegmentReader(codec=LZ4)
    reader.receive_data(raw + encode_segment(b"next", True, LZ4))
    with pytest.raises(ProtocolError, match=match):
        reader.next_payload()
    with pytest.raises(ProtocolError):
        reader.next_payload()


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_only_raise_protocol_error_compressed(raw):
    reader = SegmentReader(codec=LZ4)
    reader.receive_data(raw)
    try:
        while reader.next_payload() is not None:
            pass
    except ProtocolError:
        pass


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
