"""Frame-body compression (v4 spec section 5): LZ4 and Snappy, the python driver as oracle."""

import pytest
from cassandra.connection import locally_supported_compressions as driver_codecs
from hypothesis import given, settings
from hypothesis import strategies as st

from zdm.cql.compression import (CODECS, LZ4, SNAPPY, Inflated, deflate_body, inflate_frame,
                                 negotiate, offered)
from zdm.cql.constants import COMPRESSION, Opcode
from zdm.cql.errors import FrameTooLarge, ProtocolError
from zdm.cql.frame import Frame, FrameReader, encode_frame

CODEC_IDS = list(CODECS)
BODIES = [
    ("empty", b""),
    ("one-byte", b"\x00"),
    ("text", b"INSERT INTO ks.t (k, v) VALUES (?, ?)"),
    ("large-repetitive", b"0123456789abcdef" * 1300),  # 20 kB
    ("incompressible", bytes((i * 7919 + i // 3) % 256 for i in range(3000))),
]
bodies = st.binary(max_size=2000) | st.builds(lambda b, n: b * n, st.binary(min_size=1, max_size=16),
                                               st.integers(1, 400))


@pytest.mark.parametrize("name", CODEC_IDS)
@pytest.mark.parametrize("body", [b[1] for b in BODIES], ids=[b[0] for b in BODIES])
def test_bodies_match_the_driver_both_ways(name, body):
    codec = CODECS[name]
    driver_compress, driver_decompress = driver_codecs[name]
    packed = codec.compress(body)
    assert driver_decompress(packed) == body
    theirs = driver_compress(body)
    assert codec.decompress(theirs, codec.uncompressed_size(theirs)) == body


@pytest.mark.parametrize("name", CODEC_IDS)
@given(body=bodies)
def test_round_trip(name, body):
    codec = CODECS[name]
    packed = codec.compress(body)
    assert codec.uncompressed_size(packed) == len(body)
    assert codec.decompress(packed, len(body)) == body


def _compressed_frame(codec, body, *, version=4, stream=3, flags=0, response=False):
    return encode_frame(version, Opcode.QUERY if not response else Opcode.RESULT,
                        codec.compress(body), stream=stream, flags=flags | COMPRESSION,
                        response=response)


@pytest.mark.parametrize("name", CODEC_IDS)
@given(body=bodies, flags=st.sampled_from([0, 0x02, 0x04, 0x08]))
def test_inflate_frame_clears_the_flag_and_keeps_the_rest(name, body, flags):
    codec = CODECS[name]
    reader = FrameReader(expect_response=False)
    reader.receive_data(_compressed_frame(codec, body, flags=flags))
    frame = inflate_frame(reader.next_frame(), codec, 1 << 20)
    assert frame == Frame(4, False, flags, 3, Opcode.QUERY, body)


@pytest.mark.parametrize("name", CODEC_IDS)
def test_reader_fed_whole_and_byte_by_byte_with_trailing_bytes(name):
    codec = CODECS[name]
    bodies_sent = [b"a" * 5000, b"", b"xyz", bytes(range(256)) * 40]
    raw = b"".join(_compressed_frame(codec, b, stream=i) for i, b in enumerate(bodies_sent))
    for chunk in (len(raw), 1):
        reader, got = FrameReader(expect_response=False), []
        for i in range(0, len(raw), chunk):
            reader.receive_data(raw[i:i + chunk])
            while (frame := reader.next_frame()) is not None:
                got.append(inflate_frame(frame, codec, 1 << 20))
        assert [(f.stream, f.body) for f in got] == list(enumerate(bodies_sent))
    reader.receive_data(raw[:7])
    assert reader.next_frame() is None and len(reader) == 7


@pytest.mark.parametrize("name", CODEC_IDS)
def test_unchanged_body_passes_through_compressed(name):
    codec = CODECS[name]
    packed = codec.compress(b"v" * 20000)
    frame = inflate_frame(Frame(4, False, COMPRESSION, 1, Opcode.QUERY, packed), codec, 1 << 20)
    assert type(frame.body) is Inflated
    assert deflate_body(codec, frame.body) is packed  # no compression done again
    other = LZ4 if codec is SNAPPY else SNAPPY
    assert other.decompress(p := deflate_body(other, frame.body), len(frame.body)) == b"v" * 20000
    assert p is not packed
    changed = frame.body[:100] + b"w"  # a rewritten body is plain bytes: compressed again
    assert type(changed) is bytes
    assert codec.decompress(deflate_body(codec, changed), 101) == changed


@pytest.mark.parametrize("name", CODEC_IDS)
def test_one_body_sent_to_both_clusters_is_compressed_once(name, monkeypatch):
    codec = CODECS[name]
    calls = []
    real = type(codec).compress
    monkeypatch.setattr(type(codec), "compress", lambda self, body: calls.append(body) or real(self, body))
    body = b"rewritten with a timestamp " * 50
    first = deflate_body(codec, body)
    assert deflate_body(codec, body) is first and len(calls) == 1
    equal_but_another = bytes(bytearray(body))
    assert deflate_body(codec, equal_but_another) == first and len(calls) == 2  # identity, not equality
    assert codec.decompress(first, len(body)) == body


def test_declared_size_above_the_limit_is_refused_before_decompressing():
    packed = LZ4.compress(b"\x00" * 100_000)
    with pytest.raises(FrameTooLarge, match="decompresses to 100000 bytes") as info:
        inflate_frame(Frame(4, False, COMPRESSION, 9, Opcode.QUERY, packed), LZ4, 65536)
    assert info.value.stream == 9 and info.value.version == 4


REFUSED_FRAMES = [
    ("not-negotiated", 4, None, b"\x00\x00\x00\x00\x00", "negotiated no compression"),
    ("lz4-short", 4, LZ4, b"\x00\x01", "lacks its 4-byte length"),
    ("lz4-corrupt", 4, LZ4, b"\x00\x00\x00\x64" + b"\xff" * 10, "corrupt LZ4"),
    ("lz4-wrong-size", 4, LZ4, b"\x00\x00\x00\x09" + LZ4.compress(b"abc")[4:], "corrupt LZ4"),
    ("snappy-corrupt", 4, SNAPPY, b"\x10\xff\xff\xff", "corrupt Snappy"),
]


@pytest.mark.parametrize("codec", [LZ4, None], ids=["lz4-segments", "no-compression"])
def test_a_v5_frames_compression_flag_is_ignored_as_cassandra_ignores_it(codec):
    """The Java driver 4 sets the flag on every frame inside its compressed v5 segments; the
    frame itself is not compressed (v5 compresses segments), and Cassandra ignores the flag."""
    frame = inflate_frame(Frame(5, False, COMPRESSION | 0x02, 12, Opcode.QUERY, b"\x00\x00\x00\x01x"),
                          codec, 1 << 20)
    assert frame == Frame(5, False, 0x02, 12, Opcode.QUERY, b"\x00\x00\x00\x01x")


@pytest.mark.parametrize("version,codec,body,match", [r[1:] for r in REFUSED_FRAMES],
                         ids=[r[0] for r in REFUSED_FRAMES])
def test_bad_compressed_frames_raise_protocol_error_with_stream(version, codec, body, match):
    with pytest.raises(ProtocolError, match=match) as info:
        inflate_frame(Frame(version, False, COMPRESSION, 12, Opcode.QUERY, body), codec, 1 << 20)
    assert info.value.stream == 12 and info.value.version == version


@pytest.mark.parametrize("name", CODEC_IDS)
@settings(max_examples=300)
@given(raw=st.binary(max_size=300))
def test_arbitrary_bodies_only_raise_protocol_error(name, raw):
    try:
        frame = inflate_frame(Frame(4, False, COMPRESSION, 0, Opcode.QUERY, raw), CODECS[name], 1 << 16)
    except ProtocolError:
        return
    assert len(frame.body) <= 1 << 16


# Cassandra 5.0's answers to these STARTUPs (checked against a node with a raw client):
# PROTOCOL_ERROR with exactly these messages, the connection left open.
NEGOTIATIONS = [
    ("none", None, 4, None),
    ("lz4", "lz4", 4, LZ4),
    ("upper-case", "LZ4", 4, LZ4),
    ("snappy-v3", "snappy", 3, SNAPPY),
    ("lz4-v5", "lz4", 5, LZ4),
    ("unknown", "foo", 4, "Unknown compression algorithm: foo"),
    ("unknown-v5", "zstd", 5, "Unknown compression algorithm: zstd"),
    ("snappy-v5", "snappy", 5, "Snappy compression is not supported in protocol V5"),
]


@pytest.mark.parametrize("requested,version,expected", [n[1:] for n in NEGOTIATIONS],
                         ids=[n[0] for n in NEGOTIATIONS])
def test_negotiate(requested, version, expected):
    if isinstance(expected, str):
        with pytest.raises(ProtocolError) as info:
            negotiate(requested, version)
        assert info.value.message == expected and info.value.code == 0x000A
    else:
        assert negotiate(requested, version) is expected


OFFERS = [
    ("both-offer-both", 4, [["snappy", "lz4"], ["lz4", "snappy"]], ["lz4", "snappy"]),
    ("v5-no-snappy", 5, [["snappy", "lz4"], ["snappy", "lz4"]], ["lz4"]),
    ("one-lacks-lz4", 4, [["snappy"], ["snappy", "lz4"]], ["snappy"]),
    ("one-offers-none", 4, [[], ["snappy", "lz4"]], []),
    ("unknown-ignored", 3, [["zstd", "LZ4"], ["lz4", "zstd"]], ["lz4"]),
    ("nothing-learned", 4, [], ["lz4", "snappy"]),
]


@pytest.mark.parametrize("version,clusters,expected", [o[1:] for o in OFFERS], ids=[o[0] for o in OFFERS])
def test_offered(version, clusters, expected):
    assert offered(version, *clusters) == expected
