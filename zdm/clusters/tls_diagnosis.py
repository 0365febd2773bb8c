"""Why a TLS connection failed, and the setting that fixes it.

Theory of operation: :func:`classify` reads a failure's text (the driver rewraps ``ssl``
errors as plain ``OSError`` text, so the text is all there is) into a :class:`Failure`;
:func:`explain` adds what a second look at the port shows (the certificate it presents,
whether it speaks TLS or plaintext CQL) and returns the message and the fix.  Explaining is
the failure path only: a working connection never pays for it.
"""

from __future__ import annotations

import datetime as dt
import enum
import socket
import ssl
from dataclasses import dataclass


from zdm.config import TlsConfig
from zdm.cql.constants import Opcode
from zdm.cql.frame import encode_frame


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
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            with _probe_context().wrap_socket(raw, server_hostname=server_hostname or host) as tls:
                der = tls.getpeercert(binary_form=True)
    except (OSError, ValueError):
        return None
    from cryptography import x509  # only when diagnosing: a proxy's workers import this module

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
    from cryptography.x509.oid import NameOID

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
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
