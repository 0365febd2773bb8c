"""TLS from zdm to the clusters and from clients to the proxy: SSL contexts built from the
configuration (a TLS failure is explained by :mod:`zdm.clusters.tls_diagnosis`).

Theory of operation:

* :func:`client_context` turns ``origin.tls`` / ``target.tls`` into an ``ssl.SSLContext``:
  the CA of ``ca_file`` (else the system's), the client certificate when given, TLS 1.2+,
  every peer certificate verified, its host name too unless ``verify_hostname: false``.
  A file that is not what its key says (not PEM, a key that is not the certificate's, a key
  with a passphrase) is a :class:`~zdm.errors.ConfigError` naming the key; no message ever
  holds a key's bytes.
* :class:`PinnedNameContext` verifies the peer's certificate against one fixed name whatever
  SNI name the connection sends: Astra DB's SNI proxy is reached with each node's host id as
  the SNI name, and its certificate names the proxy's host (what zdm-proxy checks too).
"""

from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path

from zdm.config import ProxyTlsConfig, TlsConfig
from zdm.errors import ConfigError

#: the lowest TLS version zdm offers (TLS 1.0 and 1.1 are broken)
MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2


# -- contexts -------------------------------------------------------------------------------

def client_context(tls: TlsConfig, *, name: str) -> ssl.SSLContext:
    """An SSL context for connections to cluster ``name`` (``origin``/``target``) from its
    ``tls`` settings.  Raises ConfigError naming ``name.tls.<key>`` when a file is unusable."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = MINIMUM_VERSION
    ctx.check_hostname = tls.verify_hostname
    ctx.verify_mode = ssl.CERT_REQUIRED
    if tls.ca_file is not None:
        load_ca(ctx, ca_file=tls.ca_file, key=f"{name}.tls.ca_file")
    else:
        ctx.load_default_certs()
    if tls.cert_file is not None and tls.key_file is not None:
        load_cert_chain(ctx, tls.cert_file, tls.key_file, key=f"{name}.tls")
    return ctx


def server_context(tls: ProxyTlsConfig) -> ssl.SSLContext:
    """The SSL context of the proxy's listener (``proxy.tls``): its certificate, and with
    ``require_client_auth`` a client certificate signed by ``ca_file`` required of every client."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = MINIMUM_VERSION
    load_cert_chain(ctx, tls.cert_file, tls.key_file, key="proxy.tls", role="proxy's certificate")
    if tls.ca_file is not None:
        load_ca(ctx, ca_file=tls.ca_file, key="proxy.tls.ca_file", signed="the clients' certificates")
    ctx.verify_mode = ssl.CERT_REQUIRED if tls.require_client_auth else \
        (ssl.CERT_OPTIONAL if tls.ca_file is not None else ssl.CERT_NONE)
    return ctx


def load_ca(ctx: ssl.SSLContext, *, ca_file: Path | None = None, cadata: bytes | None = None,
            key: str, path: str | None = None, signed: str = "the nodes' certificates") -> None:
    try:
        if ca_file is not None:
            ctx.load_verify_locations(cafile=str(ca_file))
        else:
            ctx.load_verify_locations(cadata=(cadata or b"").decode("ascii", "replace"))
    except (ssl.SSLError, ValueError, OSError) as exc:
        raise ConfigError(f"not a PEM CA certificate ({_reason(exc)})", path=path, key=key,
                          hint=f"give the CA certificate that signed {signed}, "
                               "PEM (-----BEGIN CERTIFICATE-----)") from None


def load_cert_chain(ctx: ssl.SSLContext, cert_file: Path, key_file: Path, *, key: str,
                    path: str | None = None, role: str = "client certificate") -> None:
    """Load a client certificate and its key; ``key`` is the settings' prefix
    (``origin.tls``), whose ``cert_file`` / ``key_file`` the errors name."""
    asked = []

    def no_passphrase() -> bytes:
        asked.append(True)
        return b""  # never prompt on the terminal

    try:
        ctx.load_cert_chain(str(cert_file), str(key_file), password=no_passphrase)
    except (ssl.SSLError, ValueError, OSError) as exc:
        reason = _reason(exc)
        if asked:
            raise ConfigError("the key is encrypted with a passphrase, which zdm cannot use",
                              path=path, key=f"{key}.key_file",
                              hint="write it unencrypted (`openssl pkey -in KEY -out PLAIN.key`) and "
                                   "keep the file readable by zdm's user only") from None
        if "KEY_VALUES_MISMATCH" in reason or "key values mismatch" in reason:
            raise ConfigError(f"is not the key of {key}.cert_file", path=path, key=f"{key}.key_file",
                              hint=f"give the private key that belongs to {key}.cert_file") from None
        raise ConfigError(f"{key}.cert_file and {key}.key_file are not a PEM certificate and "
                          f"its key ({reason})", path=path, key=f"{key}.cert_file",
                          hint=f"give the {role} (-----BEGIN CERTIFICATE-----) and its "
                               "unencrypted private key (-----BEGIN PRIVATE KEY-----), PEM") from None


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    text = getattr(exc, "strerror", None) or str(exc)
    return f"{reason}: {text}" if reason and reason not in text else text


class _PinnedSocket(ssl.SSLSocket):
    def do_handshake(self, block=False):
        super().do_handshake(block)
        check_name(self.getpeercert(), self.context.expected_name)


class _PinnedObject(ssl.SSLObject):
    def do_handshake(self):
        super().do_handshake()
        check_name(self.getpeercert(), self.context.expected_name)


class PinnedNameContext(ssl.SSLContext):
    """A client context that checks the peer's certificate against ``expected_name`` (set
    after construction), not against the SNI name the connection sends.  Works for blocking
    sockets (``wrap_socket``, the driver) and asyncio (``wrap_bio``)."""

    sslsocket_class = _PinnedSocket
    sslobject_class = _PinnedObject
    expected_name: str = ""


def pinned_context(expected_name: str) -> PinnedNameContext:
    ctx = PinnedNameContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = MINIMUM_VERSION
    ctx.check_hostname = False  # checked by name in do_handshake instead
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.expected_name = expected_name
    return ctx


#: OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_IP_ADDRESS_MISMATCH
_HOSTNAME_MISMATCH, _IP_MISMATCH = 62, 64


def check_name(cert: dict, name: str) -> None:
    """Raise ``ssl.SSLCertVerificationError`` (worded as OpenSSL's) unless ``cert`` (from
    ``getpeercert()``) is valid for ``name``."""
    if certificate_matches(cert, name):
        return
    is_ip = _ip(name) is not None
    message = (f"[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
               f"{'IP address' if is_ip else 'Hostname'} mismatch, certificate is not valid "
               f"for '{name}'.")
    err = ssl.SSLCertVerificationError(1, message)
    err.verify_code = _IP_MISMATCH if is_ip else _HOSTNAME_MISMATCH
    err.verify_message = message.split(": ", 1)[1]
    err.reason = "CERTIFICATE_VERIFY_FAILED"
    raise err


def certificate_matches(cert: dict, name: str) -> bool:
    """Whether a ``getpeercert()`` dict is valid for host ``name``: an IP address against the
    IP subjectAltNames, a DNS name against the DNS ones (a leading ``*.`` matches exactly one
    label), the common name only when there are no DNS names (RFC 6125)."""
    sans = cert.get("subjectAltName", ())
    ip = _ip(name)
    if ip is not None:
        return any(kind == "IP Address" and _ip(value.strip()) == ip for kind, value in sans)
    dns = [value for kind, value in sans if kind == "DNS"]
    if not dns:
        dns = [value for rdn in cert.get("subject", ()) for key, value in rdn if key == "commonName"]
    return any(_dns_matches(pattern, name) for pattern in dns)


def _ip(text: str):
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _dns_matches(pattern: str, name: str) -> bool:
    pattern, name = pattern.lower().rstrip("."), name.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, rest = name.partition(".")
        return bool(head) and rest == pattern[2:] and "*" not in rest
    return "*" not in pattern and pattern == name
