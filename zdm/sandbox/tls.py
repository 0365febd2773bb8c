"""The sandbox's TLS material (``zdm sandbox up --tls``), under ``<sandbox dir>/tls``.

One CA signs everything; each file is made once and kept, so a restarted sandbox (and the
zdm.yaml that `zdm init` wrote for it) keeps working:

==================  ===================================================================
``ca.pem``          the CA certificate: what zdm and applications trust (``tls.ca_file``)
``ca.key``          its key (0600), kept to sign later certificates
``<node>.pem``      a node's key and certificate in one file (Cassandra's PEM keystore, 0600)
``client.pem/.key`` zdm's client certificate, for nodes that require one
``proxy.pem/.key``  the certificate of zdm's proxy listener (``proxy.tls``)
==================  ===================================================================

Every server certificate names ``localhost`` and ``127.0.0.1``, where the sandbox listens, so
hostname verification stays on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from zdm.sandbox import certs

#: the names every sandbox server certificate is valid for
SERVER_NAMES = {"dns": ("localhost",), "ips": ("127.0.0.1",)}


@dataclass(frozen=True)
class SandboxTls:
    directory: Path

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def ca_key_file(self) -> Path:
        return self.directory / "ca.key"

    def keystore(self, node: str) -> Path:
        return self.directory / f"{node}.pem"

    @property
    def client_cert_file(self) -> Path:
        return self.directory / "client.pem"

    @property
    def client_key_file(self) -> Path:
        return self.directory / "client.key"

    @property
    def proxy_cert_file(self) -> Path:
        return self.directory / "proxy.pem"

    @property
    def proxy_key_file(self) -> Path:
        return self.directory / "proxy.key"

    def ca(self) -> certs.Issued:
        return certs.Issued(self.ca_file.read_bytes(), self.ca_key_file.read_bytes())

    def ensure(self, nodes: tuple[str, ...]) -> None:
        """Create whatever is missing (the CA first); existing files are kept."""
        if not (self.ca_file.exists() and self.ca_key_file.exists()):
            ca = certs.new_ca("zdm sandbox CA")
            certs.write(self.ca_key_file, ca.key_pem, private=True)
            certs.write(self.ca_file, ca.cert_pem)
        ca = self.ca()
        for node in nodes:
            if not self.keystore(node).exists():
                issued = certs.issue(ca, f"zdm sandbox {node}", **SERVER_NAMES, client=True)
                certs.write(self.keystore(node), issued.keystore_pem, private=True)
        for cert_file, key_file, issued in (
                (self.client_cert_file, self.client_key_file, lambda: certs.issue(
                    ca, "zdm", server=False, client=True)),
                (self.proxy_cert_file, self.proxy_key_file, lambda: certs.issue(
                    ca, "zdm proxy", **SERVER_NAMES))):
            if not (cert_file.exists() and key_file.exists()):
                made = issued()
                certs.write(key_file, made.key_pem, private=True)
                certs.write(cert_file, made.cert_pem)


def yaml_block(tls: SandboxTls, node: str, *, client_auth: bool) -> str:
    """``client_encryption_options`` (TLS only, no plaintext: ``optional: false``) and
    ``server_encryption_options`` (internode TLS) with PEM keystores (Cassandra 4.1+)."""
    factory = "    class_name: org.apache.cassandra.security.PEMBasedSslContextFactory\n"
    keystore = tls.keystore(node).resolve()
    ca = tls.ca_file.resolve()
    return (
        "client_encryption_options:\n"
        "  enabled: true\n"
        "  optional: false\n"
        "  ssl_context_factory:\n" + factory +
        f"  keystore: {keystore}\n"
        f"  truststore: {ca}\n"
        f"  require_client_auth: {'true' if client_auth else 'false'}\n"
        "  accepted_protocols: [TLSv1.2, TLSv1.3]\n"
        "server_encryption_options:\n"
        "  internode_encryption: all\n"
        "  optional: false\n"
        "  ssl_context_factory:\n" + factory +
        f"  keystore: {keystore}\n"
        f"  truststore: {ca}\n"
        "  require_client_auth: true\n"
        "  accepted_protocols: [TLSv1.2, TLSv1.3]\n"
    )


def client_context(tls: SandboxTls, *, client_cert: bool):
    """What zdm's own readiness login uses: the sandbox CA, hostnames verified."""
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cafile=str(tls.ca_file))
    if client_cert:
        ctx.load_cert_chain(str(tls.client_cert_file), str(tls.client_key_file))
    return ctx
