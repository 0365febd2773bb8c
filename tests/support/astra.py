"""A local stand-in for Astra DB's front door, and the secure connect bundles that lead to it.

Astra DB is reached the way the DataStax drivers reach it: the bundle's ``config.json`` names
a metadata service (HTTPS, client certificate required) whose ``/metadata`` names an SNI
proxy and the nodes' host ids; every node connection goes to that proxy with TLS, the SNI
name being the node's host id.  :class:`AstraStandIn` plays both parts on loopback, in
front of real (TLS-enabled) sandbox nodes:

* the **metadata service** answers ``GET /metadata`` with Astra's document
  (``contact_info: {type, local_dc, contact_points, sni_proxy_address}``); any other path
  is a 404; ``metadata_status`` / ``metadata_body`` make it misbehave on demand;
* the **SNI proxy** terminates TLS with a certificate for its own address (signed by the
  stand-in's CA, the bundle's ``ca.crt``), requires the bundle's client certificate, reads
  the SNI name (``sni_callback``), refuses a name that is no node's host id
  (``unrecognized_name``), and relays the connection to that node over the node's own TLS.
  ``connections`` counts the connections per host id, to see requests spread over nodes.

:func:`make_bundle` writes a bundle as Astra's are laid out (``config.json``, ``ca.crt``,
``cert``, ``key``, with config.json's keystore passwords as in a real bundle), or a damaged
one for the error tests.
"""

from __future__ import annotations

import asyncio
import io
import json
import secrets
import ssl
import zipfile
from collections import Counter
from pathlib import Path

from tests.support.harness import LoopThread
from zdm.sandbox import certs

HOST = "127.0.0.1"


def make_bundle(path: Path, *, host: str, port: int, ca_pem: bytes, cert_pem: bytes, key_pem: bytes,
                keyspace: str | None = None, local_dc: str | None = None, omit: tuple[str, ...] = (),
                config: dict | None = None) -> Path:
    """Write a secure connect bundle; ``omit`` leaves files out, ``config`` replaces config.json."""
    document = {"host": host, "port": port, "keyspace": keyspace, "localDC": local_dc,
                "caCertLocation": "./ca.crt", "keyLocation": "./key", "certLocation": "./cert",
                "keyStoreLocation": "./identity.jks", "keyStorePassword": secrets.token_urlsafe(12),
                "trustStoreLocation": "./trustStore.jks", "trustStorePassword": secrets.token_urlsafe(12),
                "csvLocation": "./data", "pfxCertPassword": secrets.token_urlsafe(12)}
    document = {k: v for k, v in document.items() if v is not None}
    files = {"config.json": json.dumps(config if config is not None else document, indent=2).encode(),
             "ca.crt": ca_pem, "cert": cert_pem, "key": key_pem}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            if name not in omit:
                zf.writestr(name, data)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    return path


class AstraStandIn:
    """The metadata service and the SNI proxy, on loopback, in front of ``nodes``
    ({host id: (host, port)}), reached with ``node_context`` (the nodes' own TLS)."""

    def __init__(self, nodes: dict[str, tuple[str, int]], *, local_dc: str,
                 node_context: ssl.SSLContext | None = None) -> None:
        self.nodes = dict(nodes)
        self.local_dc = local_dc
        self.node_context = node_context
        self.ca = certs.new_ca("Astra stand-in CA")
        self.server = certs.issue(self.ca, "astra stand-in", dns=("localhost",), ips=(HOST,))
        self.client = certs.issue(self.ca, "astra client", server=False, client=True)
        self.metadata_status = 200
        self.metadata_body: bytes | None = None
        self.metadata_requests = 0
        self.connections: Counter[str] = Counter()
        self.refused_names: list[str | None] = []
        self._relays: set[asyncio.Task] = set()
        self.thread = LoopThread()
        self._metadata = self.thread.call(asyncio.start_server(
            self._serve_metadata, HOST, 0, ssl=self._server_context()))
        self._sni = self.thread.call(asyncio.start_server(
            self._serve_node, HOST, 0, ssl=self._server_context(sni=True)))
        self.metadata_port = self._metadata.sockets[0].getsockname()[1]
        self.sni_port = self._sni.sockets[0].getsockname()[1]

    @property
    def host_ids(self) -> list[str]:
        return list(self.nodes)

    def bundle(self, path: Path, **kw) -> Path:
        """A bundle for this stand-in (``make_bundle``'s keywords override)."""
        args = dict(host=HOST, port=self.metadata_port, ca_pem=self.ca.cert_pem,
                    cert_pem=self.client.cert_pem, key_pem=self.client.key_pem, local_dc=self.local_dc)
        args.update(kw)
        return make_bundle(path, **args)

    def document(self) -> dict:
        return {"version": 1, "region": "local",
                "contact_info": {"type": "sni_proxy", "local_dc": self.local_dc,
                                 "contact_points": self.host_ids,
                                 "sni_proxy_address": f"{HOST}:{self.sni_port}"}}

    # -- TLS --------------------------------------------------------------------------------

    def _server_context(self, *, sni: bool = False) -> ssl.SSLContext:
        import tempfile

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.verify_mode = ssl.CERT_REQUIRED  # Astra takes only the bundle's client certificate
        ctx.load_verify_locations(cadata=self.ca.cert_pem.decode())
        with tempfile.TemporaryDirectory() as tmp:
            chain = Path(tmp) / "server.pem"
            certs.write(chain, self.server.keystore_pem, private=True)
            ctx.load_cert_chain(str(chain))
        if sni:
            ctx.sni_callback = self._pick_node
        return ctx

    def _pick_node(self, sslobj, server_name, ctx):
        if server_name not in self.nodes:
            self.refused_names.append(server_name)
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        sslobj.zdm_host_id = server_name
        return None

    # -- the metadata service ---------------------------------------------------------------

    async def _serve_metadata(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            self.metadata_requests += 1
            if method != "GET" or target.split("?")[0] != "/metadata":
                status, body = 404, b'{"message": "not found"}'
            else:
                status = self.metadata_status
                body = self.metadata_body if self.metadata_body is not None else \
                    json.dumps(self.document()).encode()
            reason = {200: "OK", 404: "Not Found"}.get(status, "Error")
            writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError, ValueError,
                ssl.SSLError):
            pass
        finally:
            writer.close()

    # -- the SNI proxy ----------------------------------------------------------------------

    async def _serve_node(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host_id = getattr(writer.get_extra_info("ssl_object"), "zdm_host_id", None)
        if host_id is None:
            writer.close()
            return
        self.connections[host_id] += 1
        host, port = self.nodes[host_id]
        task = asyncio.current_task()
        self._relays.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection(
                host, port, ssl=self.node_context,
                server_hostname=host if self.node_context is not None else None)
        except (OSError, asyncio.CancelledError):
            self._relays.discard(task)
            writer.close()
            return

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, ssl.SSLError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        try:
            await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        except asyncio.CancelledError:
            pass
        finally:
            self._relays.discard(task)

    def stop(self) -> None:
        async def close():
            for server in (self._metadata, self._sni):
                server.close()
            for task in list(self._relays):
                task.cancel()
        self.thread.call(close())
        self.thread.stop()
