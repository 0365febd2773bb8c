"""TLS from zdm to the clusters: SSL contexts built from the configuration, and TLS failures
explained with the setting that fixes them.

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
* :func:`classify` reads a failure's text (the driver rewraps ``ssl`` errors as plain
  ``OSError`` text, so the text is all there is) into a :class:`Failure`; :func:`explain`
  adds what a second look at the port shows (the certificate it presents, whether it speaks
  TLS or plaintext CQL) and returns the message and the fix.  Explaining is the failure
  path only: a working connection never pays for it.
"""

from __future__ import annotations

import datetime as dt
import enum
import ipaddress
import socket
import ssl
from dataclasses import dataclass
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


# -- failures ------------------------------------------------------------------------------

class Failure(enum.Enum):
    UNTRUSTED = "the certificate is not signed by a trusted CA"
    EXPIRED = "a certificate has expired"
    NOT_YET_VALID = "a certificate is not valid yet"
    NAME_MISMATCH = "the certificate is for another host"
    NOT_TLS = "the port does not speak TLS"
    CLIENT_CERT_REQUIRED = "a client certificate is required"
    CLIENT_CERT_REJECTED = "the client certificate was refused"
    TLS = "TLS failed"
    CLOSED = "the connection was closed"


_PATTERNS = (
    (Failure.EXPIRED, ("certificate has expired",)),
    (Failure.NOT_YET_VALID, ("certificate is not yet valid",)),
    (Failure.NAME_MISMATCH, ("hostname mismatch", "ip address mismatch")),
    (Failure.UNTRUSTED, ("unable to get local issuer certificate", "self-signed certificate",
                         "self signed certificate", "unable to get issuer certificate",
                         "unable to verify the first certificate", "certificate signature failure")),
    (Failure.CLIENT_CERT_REQUIRED, ("certificate required", "peer did not return a certificate")),
    (Failure.CLIENT_CERT_REJECTED, ("alert unknown ca", "alert bad certificate", "certificate unknown",
                                    "unsupported certificate", "alert certificate expired",
                                    "alert certificate revoked")),
    (Failure.NOT_TLS, ("wrong version number", "record layer failure", "packet length too long",
                       "unknown protocol", "http request", "wrong_version_number")),
    (Failure.TLS, ("[ssl", "ssl:", "sslerror", "eof occurred in violation of protocol",
                   "unexpected eof")),
    (Failure.CLOSED, ("connection reset", "was closed", "connection closed", "broken pipe",
                      "connectionshutdown", "connection aborted")),
)


def classify(error: BaseException | str) -> Failure | None:
    """What kind of TLS failure ``error`` is (None: not one, e.g. a refused connection)."""
    text = (error if isinstance(error, str) else f"{type(error).__name__}: {error}").lower()
    for failure, needles in _PATTERNS:
        if any(n in text for n in needles):
            return failure
    return None


@dataclass(frozen=True)
class Explanation:
    failure: Failure
    message: str
    hint: str


def explain(error: BaseException | str, *, name: str, tls: TlsConfig | None, host: str, port: int,
            server_hostname: str | None = None, timeout: float = 5.0) -> Explanation | None:
    """Why connecting to ``host:port`` of cluster ``name`` failed with ``error``, and the
    setting that fixes it; None when it is not about TLS (the caller says what it knows).
    May open one more connection to look at the port."""
    failure = classify(error)
    if failure is None:
        return None
    where = f"{host}:{port}"
    key = f"{name}.tls"
    sni = server_hostname or host
    if tls is None:
        if failure in (Failure.CLOSED, Failure.TLS, Failure.NOT_TLS) and speaks_tls(host, port, sni, timeout):
            return Explanation(Failure.NOT_TLS, f"{where} accepts only TLS connections, and {name} has "
                               "no TLS settings",
                               f"set {key}.ca_file to the CA (PEM) that signed the nodes' certificates "
                               f"(in zdm.yaml: `{name}: {{tls: {{ca_file: ca.pem}}}}`)")
        return None
    if failure in (Failure.TLS, Failure.CLOSED) and speaks_tls(host, port, sni, timeout):
        # an EOF or a reset can hide an alert the node sent (TLS 1.3 refuses a client
        # certificate after the handshake): ask again, and read the alert this time
        alert = tls_alert(host, port, sni, tls, timeout)
        kind = classify(alert) if alert is not None else None
        if kind in (Failure.CLIENT_CERT_REQUIRED, Failure.CLIENT_CERT_REJECTED):
            failure, error = kind, alert
        elif alert is not None and tls.cert_file is not None and \
                classify(tls_alert(host, port, sni, None, timeout) or "") == Failure.CLIENT_CERT_REQUIRED:
            # it wants a certificate, and alerts on ours (a Java node says "internal error")
            failure, error = Failure.CLIENT_CERT_REJECTED, alert
    if failure == Failure.NOT_TLS or (failure == Failure.CLOSED and not speaks_tls(host, port, sni, timeout)):
        if speaks_plaintext_cql(host, port, timeout):
            return Explanation(Failure.NOT_TLS, f"{where} speaks plaintext CQL, not TLS",
                               f"remove {key} if {name} does not use TLS, or enable "
                               "client_encryption_options on its nodes (optional: false)")
        return Explanation(Failure.NOT_TLS, f"{where} does not answer TLS ({short_error(error)})",
                           f"check {name}.contact_points and {name}.port: they must be the nodes' "
                           "CQL port with client encryption on")
    cert = peer_certificate(host, port, sni, timeout) if failure in (
        Failure.UNTRUSTED, Failure.EXPIRED, Failure.NOT_YET_VALID, Failure.NAME_MISMATCH) else None
    shown = f"'s certificate ({describe(cert)})" if cert is not None else "'s certificate"
    ca = f"{key}.ca_file ({tls.ca_file})" if tls.ca_file else "this machine's trusted CAs"
    if failure == Failure.UNTRUSTED:
        return Explanation(failure, f"{where}{shown} is not signed by a CA in {ca}",
                           f"set {key}.ca_file to the CA certificate (PEM) that signed the nodes' "
                           "certificates")
    if failure in (Failure.EXPIRED, Failure.NOT_YET_VALID):
        now = dt.datetime.now(dt.timezone.utc)
        if cert is not None and failure == Failure.EXPIRED and cert.not_valid_after_utc < now:
            what = f"{where}{shown} expired on {_when(cert.not_valid_after_utc)}"
        elif cert is not None and failure == Failure.NOT_YET_VALID and cert.not_valid_before_utc > now:
            what = f"{where}{shown} is not valid before {_when(cert.not_valid_before_utc)}"
        else:
            what = (f"{where}: a certificate of its chain (the CA in {ca}?) "
                    f"{'has expired' if failure == Failure.EXPIRED else 'is not valid yet'}")
        return Explanation(failure, f"{what} (this machine's clock: {_when(now)})",
                           "renew the node's certificate (or the CA in "
                           f"{key}.ca_file) and reload the node; if the dates are right, set this "
                           "machine's clock")
    if failure == Failure.NAME_MISMATCH:
        names = ", ".join(certificate_names(cert)) if cert is not None else "other names"
        return Explanation(failure, f"{where}{shown} is valid for {names}, not for {sni}",
                           f"connect by a name the certificate has ({name}.contact_points), or "
                           f"reissue it for {sni}; {key}.verify_hostname: false turns the check off, "
                           "which lets anyone in the middle read and change every row (insecure)")
    if failure == Failure.CLIENT_CERT_REQUIRED and tls.cert_file is None:
        return Explanation(failure, f"{where} requires a client certificate, and {name} has none",
                           f"set {key}.cert_file and {key}.key_file (PEM) to a certificate the "
                           "nodes trust")
    if failure in (Failure.CLIENT_CERT_REQUIRED, Failure.CLIENT_CERT_REJECTED):
        return Explanation(Failure.CLIENT_CERT_REJECTED,
                           f"{where} refused zdm's client certificate ({key}.cert_file: "
                           f"{tls.cert_file}): {short_error(error)}",
                           f"set {key}.cert_file / key_file to a certificate signed by a CA in the "
                           "nodes' truststore (client_encryption_options.truststore)")
    return Explanation(failure, f"{where}: TLS failed: {short_error(error)}",
                       f"check {key} in zdm.yaml against the nodes' client_encryption_options")


def short_error(error: BaseException | str) -> str:
    text = str(error)
    marker = "Last error: "
    if marker in text:
        text = text.split(marker, 1)[1]
    return text.replace(" (_ssl.c:", " (").strip()[:300]


def _when(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


# -- looking at a port (failure path only) -------------------------------------------------

def _probe_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # to look at what it presents, not to trust it
    return ctx


def peer_certificate(host: str, port: int, server_hostname: str | None = None,
                     timeout: float = 5.0):
    """The certificate ``host:port`` presents (a cryptography x509.Certificate), unverified;
    None when no TLS handshake completes."""
    from cryptography import x509

    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            with _probe_context().wrap_socket(raw, server_hostname=server_hostname or host) as tls:
                der = tls.getpeercert(binary_form=True)
    except (OSError, ValueError):
        return None
    return x509.load_der_x509_certificate(der) if der else None


def tls_alert(host: str, port: int, server_hostname: str | None, tls: TlsConfig | None,
              timeout: float = 5.0) -> str | None:
    """The TLS alert ``host:port`` sends a client with ``tls``'s client certificate (none when
    None) after the handshake, such as "certificate required" (TLS 1.3 judges a client
    certificate then); None when none comes."""
    ctx = _probe_context()
    if tls is not None and tls.cert_file is not None and tls.key_file is not None:
        try:
            ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file), password=lambda: b"")
        except (ssl.SSLError, OSError, ValueError):
            return None
    for _ in range(3):  # the alert may be lost to a reset: an EOF says nothing, try again
        try:
            with socket.create_connection((host, port), timeout=timeout) as raw:
                with ctx.wrap_socket(raw, server_hostname=server_hostname or host) as sock:
                    # send nothing: a write racing the node's close turns its alert into a reset
                    sock.settimeout(min(timeout, 2.0))
                    sock.recv(9)
            return None
        except ssl.SSLError as exc:
            if exc.reason is not None:
                return str(exc)
        except OSError:
            return None
    return None


def speaks_tls(host: str, port: int, server_hostname: str | None = None, timeout: float = 5.0) -> bool:
    return peer_certificate(host, port, server_hostname, timeout) is not None


def speaks_plaintext_cql(host: str, port: int, timeout: float = 5.0) -> bool:
    """Whether ``host:port`` answers a plaintext CQL OPTIONS with a CQL response frame."""
    from zdm.cql.constants import Opcode
    from zdm.cql.frame import encode_frame

    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(encode_frame(4, Opcode.OPTIONS, b"", stream=0))
            head = sock.recv(9)
    except OSError:
        return False
    # a response frame: the version byte with its response bit (0x80), then an opcode
    return len(head) >= 5 and head[0] & 0x80 != 0 and (head[0] & 0x7F) in (3, 4, 5) and \
        head[4] in (Opcode.SUPPORTED, Opcode.ERROR)


def describe(cert) -> str:
    """A certificate in a few words: its subject, issuer and names."""
    from cryptography.x509.oid import NameOID

    def cn(name) -> str:
        values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
        return f"CN={values[0].value}" if values else name.rfc4514_string() or "-"

    return f"{cn(cert.subject)}, issued by {cn(cert.issuer)}"


def certificate_names(cert) -> list[str]:
    """The DNS names and IP addresses a certificate is valid for."""
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        from cryptography.x509.oid import NameOID

        return [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return [*san.get_values_for_type(x509.DNSName),
            *(str(ip) for ip in san.get_values_for_type(x509.IPAddress))]


def insecure_settings(config) -> list[dict[str, str]]:
    """Settings that weaken TLS, for `zdm status` and `zdm preflight` to warn about."""
    out = []
    for name in ("origin", "target"):
        tls = getattr(config, name).tls
        if tls is not None and not tls.verify_hostname:
            out.append({"key": f"{name}.tls.verify_hostname",
                        "what": f"{name}.tls.verify_hostname is false: zdm does not check that "
                                f"{name}'s nodes are the hosts it connects to, so anyone in the "
                                "middle with any certificate of that CA can read and change every row",
                        "todo": f"reissue the nodes' certificates for the addresses in "
                                f"{name}.contact_points and remove {name}.tls.verify_hostname"})
    return out
