"""FrameReader: the 9-byte header (v5 spec section 2.4), version checks and v5 segments."""

import io

import pytest
from cassandra import segment as driver_segment
from cassandra.protocol import ProtocolException
from cassandra.protocol import ProtocolHandler as DriverHandler
from cassandra.protocol import QueryMessage, StartupMessage
from hypothesis import given, settings
from hypothesis import strategies as st

from zdm.cql.constants import MAX_SEGMENT_PAYLOAD, Opcode
from zdm.cql.errors import FrameTooLarge, ProtocolError, UnsupportedVersion
from zdm.cql.frame import (HEADER_SIZE, Frame, FrameReader, encode_frame,
                           encode_unsupported_version, starts_segment_framing)
from zdm.cql.segment import encode_segment, encode_segments


def read_all(reader):
    frames = []
    while (frame := reader.next_frame()) is not None:
        frames.append(frame)
    return frames


def feed_in_chunks(raw, cuts, *, response=False, segmented=False):
    reader = FrameReader(expect_response=response)
    if segmented:
        reader.start_segments()
    frames = []
    for a, b in zip([0, *cuts], [*cuts, len(raw)]):
        reader.receive_data(raw[a:b])
        frames += read_all(reader)
    return frames, len(reader)


FRAMES = [encode_frame(4, Opcode.QUERY, b"q" * n, stream=s, flags=f)
          for n, s, f in [(0, 0, 0), (1, 1, 2), (300, 32767, 4), (17, 5, 0)]]
STREAM = b"".join(FRAMES)


def test_header_fields():
    raw = encode_frame(4, Opcode.RESULT, b"body", stream=-1, flags=0x08, response=True)
    assert raw[:HEADER_SIZE] == b"\x84\x08\xff\xff\x08\x00\x00\x00\x04"
    frame = read_all(_reader(raw, response=True))[0]
    assert frame == Frame(4, True, 0x08, -1, Opcode.RESULT, b"body")
    assert frame.to_bytes() == raw
    assert frame.header(stream=7) == b"\x84\x08\x00\x07\x08\x00\x00\x00\x04"
    assert frame.to_bytes(stream=7)[HEADER_SIZE:] == b"body"


def _reader(raw, *, response=False, **kwargs):
    reader = FrameReader(expect_response=response, **kwargs)
    reader.receive_data(raw)
    return reader


def test_unknown_opcode_is_kept_as_int():
    frame = read_all(_reader(encode_frame(4, 0x42, b"")))[0]
    assert frame.opcode == 0x42 and not isinstance(frame.opcode, Opcode)


@pytest.mark.parametrize("feeding", ["whole", "byte-by-byte"])
def test_same_frames_whatever_the_chunking(feeding):
    cuts = [] if feeding == "whole" else list(range(1, len(STREAM)))
    frames, left = feed_in_chunks(STREAM + FRAMES[2][:20], cuts)
    assert [f.to_bytes() for f in frames] == FRAMES
    assert left == 20  # the trailing partial frame stays buffered


@given(st.lists(st.integers(0, len(STREAM)), max_size=8), st.integers(0, len(FRAMES[2]) - 1))
def test_random_splits_yield_the_same_frames(cuts, trailing):
    frames, left = feed_in_chunks(STREAM + FRAMES[2][:trailing], sorted(cuts))
    assert [f.to_bytes() for f in frames] == FRAMES
    assert left == trailing


frame_args = st.tuples(st.sampled_from([3, 4, 5]), st.sampled_from(list(Opcode)),
                       st.binary(max_size=64), st.integers(-32768, 32767), st.integers(0, 255),
                       st.booleans())


@given(frame_args)
def test_encode_decode_round_trip(args):
    version, opcode, body, stream, flags, response = args
    raw = encode_frame(version, opcode, body, stream=stream, flags=flags, response=response)
    assert read_all(_reader(raw, response=response)) == [
        Frame(version, response, flags, stream, opcode, body)]


UNSUPPORTED = [
    ("v1", b"\x01\x00\x05\x01", 1, 5),
    ("v2-negative-stream", b"\x02\x00\xff\x01\x00\x00\x00\x00", 2, -1),
    ("v6", b"\x06\x00\x01\x02\x01\x00\x00\x00\x00", 6, 0x0102),
    ("dse-v1", b"\x41\x00\x00\x09\x01\x00\x00\x00\x00", 0x41, 9),
    ("dse-v2", b"\x42\x00\x00\x03\x01\x00\x00\x00\x00", 0x42, 3),
    ("v2-first-byte-only", b"\x02", 2, None),
    ("dse-v2-short-header", b"\x42\x00\x00", 0x42, None),
    ("v0", b"\x00\x00\x00\x01", 0, 1),
]


@pytest.mark.parametrize("raw,version,stream", [u[1:] for u in UNSUPPORTED],
                         ids=[u[0] for u in UNSUPPORTED])
def test_unsupported_versions(raw, version, stream):
    reader = _reader(raw)
    with pytest.raises(UnsupportedVersion) as info:
        reader.next_frame()
    assert (info.value.version, info.value.stream) == (version, stream)
    assert info.value.code == 0x000A
    assert info.value.message == (f"Invalid or unsupported protocol version ({version}); "
                                  "supported versions are (3/v3, 4/v4, 5/v5)")
    with pytest.raises(UnsupportedVersion):  # poisoned
        reader.next_frame()


@pytest.mark.parametrize("version", [0x41, 0x42, 6])
def test_unsupported_version_answer_makes_the_driver_downgrade(version):
    raw = encode_unsupported_version(version, stream=3)
    frame = read_all(_reader(raw, response=True))[0]
    assert (frame.version, frame.stream, frame.opcode) == (4, 3, Opcode.ERROR)
    msg = DriverHandler.decode_message(4, {}, frame.stream, frame.flags, frame.opcode,
                                       frame.body, None, None)
    assert isinstance(msg, ProtocolException)
    # cassandra/connection.py: `if 'unsupported protocol version' in response.message`
    assert "unsupported protocol version" in msg.message


@pytest.mark.parametrize("version", [1, 2])
def test_unsupported_version_answer_uses_the_old_header_for_v1_v2(version):
    raw = encode_unsupported_version(version, stream=-1)
    assert raw[:4] == bytes([0x80 | version, 0, 0xFF, 0])
    assert int.from_bytes(raw[4:8], "big") == len(raw) - 8


DIRECTION = [("request-on-response-reader", b"\x04", True),
             ("response-on-request-reader", b"\x84", False)]


@pytest.mark.parametrize("first,response", [d[1:] for d in DIRECTION],
                         ids=[d[0] for d in DIRECTION])
def test_wrong_direction(first, response):
    with pytest.raises(ProtocolError, match="expected a"):
        _reader(first + b"\x00\x00\x07\x07\x00\x00\x00\x00", response=response).next_frame()


def test_too_large_raises_before_the_body_arrives():
    reader = _reader(b"\x04\x00\x00\x09\x07" + (1025).to_bytes(4, "big"), max_frame_bytes=1024)
    with pytest.raises(FrameTooLarge) as info:
        reader.next_frame()
    assert (info.value.stream, info.value.version, info.value.code) == (9, 4, 0x000A)


def test_negative_length_is_rejected():
    with pytest.raises(FrameTooLarge):
        _reader(b"\x04\x00\x00\x01\x07\xff\xff\xff\xff").next_frame()


@settings(max_examples=300)
@given(st.binary(max_size=120), st.booleans(), st.booleans())
def test_arbitrary_bytes_only_raise_protocol_error(raw, response, segmented):
    reader = FrameReader(1000, expect_response=response)
    if segmented:
        reader.start_segments()
    reader.receive_data(raw)
    try:
        read_all(reader)
    except ProtocolError:
        pass


# --- v5 segments (spec section 2.3.1) -----------------------------------------------

def driver_frame(msg, version=5, stream=0):
    return DriverHandler.encode_message(msg, stream, version, None, False)


def test_request_direction_switches_after_startup():
    startup = driver_frame(StartupMessage("3.0.0", {}))
    queries = [driver_frame(QueryMessage(f"SELECT {i}", 1), stream=i + 1) for i in range(3)]
    wire = startup + encode_segments(b"".join(queries))
    reader = _reader(wire)
    first = reader.next_frame()
    assert first.opcode == Opcode.STARTUP
    reader.start_segments()  # the server answered READY/AUTHENTICATE to that STARTUP
    assert [f.to_bytes() for f in read_all(reader)] == queries


@pytest.mark.parametrize("answer", [Opcode.READY, Opcode.AUTHENTICATE])
def test_response_direction_switches_right_after_ready_or_authenticate(answer):
    body = b"" if answer == Opcode.READY else b"\x00\x03abc"
    handshake = encode_frame(5, answer, body, stream=1, response=True)
    later = [encode_frame(5, Opcode.RESULT, b"\x00\x00\x00\x01", stream=s, response=True)
             for s in (2, 3)]
    reader = _reader(handshake + encode_segments(b"".join(later)), response=True)
    frame = reader.next_frame()
    assert starts_segment_framing(frame)
    reader.start_segments()
    assert [f.to_bytes() for f in read_all(reader)] == later


def test_supported_does_not_start_segments():
    frame = read_all(_reader(encode_frame(5, Opcode.SUPPORTED, b"\x00\x00", response=True),
                             response=True))[0]
    assert not starts_segment_framing(frame)


def test_large_frame_over_several_segments_and_small_frames_together():
    big = encode_frame(5, Opcode.QUERY, bytes(300_000), stream=1)
    small = [encode_frame(5, Opcode.QUERY, b"x" * i, stream=i) for i in (2, 3)]
    frames, left = feed_in_chunks(encode_segments(small[0] + big + small[1]), [], segmented=True)
    assert [f.to_bytes() for f in frames] == [small[0], big, small[1]]
    assert left == 0


def test_driver_encoded_segments_are_reassembled():
    big = driver_frame(QueryMessage("SELECT '" + "x" * 200_000 + "'", 1), stream=4)
    buf = io.BytesIO()
    driver_segment.SegmentCodec().encode(buf, big)
    frames, _ = feed_in_chunks(buf.getvalue(), [], segmented=True)
    assert [f.to_bytes() for f in frames] == [big]


@given(st.lists(st.integers(0, 400), min_size=1, max_size=5), st.data())
def test_segment_mode_random_splits(sizes, data):
    frames = [encode_frame(5, Opcode.QUERY, bytes([i]) * n, stream=i) for i, n in enumerate(sizes)]
    wire = encode_segments(b"".join(frames))
    trailing = data.draw(st.integers(0, 10))
    tail = encode_segment(b"zz", True)[:trailing]
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=6)))
    got, left = feed_in_chunks(wire + tail, cuts, segmented=True)
    assert [f.to_bytes() for f in got] == frames
    assert left == trailing


def test_self_contained_segment_while_frame_incomplete_is_rejected():
    frame = encode_frame(5, Opcode.QUERY, b"abcdef")
    wire = encode_segment(frame[:8], False) + encode_segment(frame, True)
    with pytest.raises(ProtocolError, match="incomplete"):
        feed_in_chunks(wire, [], segmented=True)


def test_non_v5_frame_inside_segments_is_rejected():
    with pytest.raises(ProtocolError, match="inside a v5 segment"):
        feed_in_chunks(encode_segments(encode_frame(4, Opcode.QUERY, b"")), [], segmented=True)


def test_segment_crc_error_poisons_the_frame_reader():
    wire = bytearray(encode_segments(encode_frame(5, Opcode.QUERY, b"abc")))
    wire[8] ^= 0xFF
    reader = FrameReader(expect_response=False)
    reader.start_segments()
    reader.receive_data(bytes(wire))
    for _ in range(2):
        with pytest.raises(ProtocolError, match="CRC"):
            reader.next_frame()


def test_frame_too_large_inside_segments():
    wire = encode_segments(encode_frame(5, Opcode.QUERY, bytes(MAX_SEGMENT_PAYLOAD + 10)))
    reader = FrameReader(1000, expect_response=False)
    reader.start_segments()
    reader.receive_data(wire[:MAX_SEGMENT_PAYLOAD])  # first segment only partly here
    assert reader.next_frame() is None
    reader.receive_data(wire[MAX_SEGMENT_PAYLOAD:])
    with pytest.raises(FrameTooLarge):
        reader.next_frame()
