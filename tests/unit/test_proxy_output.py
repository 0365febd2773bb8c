"""The proxy's outgoing frames, seen on the wire: a burst of frames written in one event-loop
pass leaves as one TLS record over TLS, and whole and in order over plaintext.

The client here speaks TLS by hand (a memory BIO over a raw socket), so it can count the
records the proxy's side really sent."""

from __future__ import annotations

import asyncio
import ssl
import struct

import pytest

from zdm.proxy.connection import _Output
from zdm.sandbox import certs

FRAMES = [(struct.pack(">BBhBi", 0x84, 0, n, 0x08, 3), b"ab" + bytes([n])) for n in range(5)]
EXPECTED = b"".join(h + b for h, b in FRAMES)


class _Burst(asyncio.Protocol):
    """On connect, writes FRAMES through one ``_Output`` in one loop pass."""

    def connection_made(self, transport) -> None:
        out = _Output()
        out.attach(transport)
        for header, body in FRAMES:
            out.write(header, body)


def _records(raw: bytes) -> list[tuple[int, int]]:
    """(content type, length) of each whole TLS record in ``raw``."""
    found, at = [], 0
    while at + 5 <= len(raw):
        kind, _version, length = struct.unpack_from(">BHH", raw, at)
        if at + 5 + length > len(raw):
            break
        found.append((kind, length))
        at += 5 + length
    return found


@pytest.fixture(scope="module")
def server_context(tmp_path_factory):
    ca = certs.new_ca("output test CA")
    node = certs.issue(ca, "node", ips=("127.0.0.1",))
    where = tmp_path_factory.mktemp("output")
    cert = certs.write(where / "cert.pem", node.cert_pem)
    key = certs.write(where / "key.pem", node.key_pem, private=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.maximum_version = ssl.TLSVersion.TLSv1_2  # application data is the only type-23 record
    context.load_cert_chain(cert, key)
    return context


async def _read_tls_by_hand(port: int) -> tuple[bytes, list[tuple[int, int]]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client.wrap_bio(incoming, outgoing)
    raw = b""  # every byte the server sent, handshake included

    async def receive() -> None:
        nonlocal raw
        chunk = await asyncio.wait_for(reader.read(65536), 10)
        assert chunk, "the server closed before sending every frame"
        raw += chunk
        incoming.write(chunk)

    while True:  # the handshake
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            writer.write(outgoing.read())
            await receive()
    writer.write(outgoing.read())
    plain = b""
    while True:
        try:
            while len(plain) < len(EXPECTED):
                plain += tls.read(65536)
            break
        except ssl.SSLWantReadError:
            await receive()
    writer.close()
    return plain, [r for r in _records(raw) if r[0] == 23]


def test_a_burst_of_frames_leaves_as_one_tls_record(server_context):
    async def main():
        server = await asyncio.get_running_loop().create_server(
            _Burst, "127.0.0.1", 0, ssl=server_context)
        try:
            return await _read_tls_by_hand(server.sockets[0].getsockname()[1])
        finally:
            server.close()

    plain, records = asyncio.run(main())
    assert plain == EXPECTED
    assert len(records) == 1, records


def test_a_burst_of_frames_arrives_whole_and_in_order_over_plaintext():
    async def main():
        server = await asyncio.get_running_loop().create_server(_Burst, "127.0.0.1", 0)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
            got = await asyncio.wait_for(reader.readexactly(len(EXPECTED)), 10)
            writer.close()
            return got
        finally:
            server.close()

    assert asyncio.run(main()) == EXPECTED
