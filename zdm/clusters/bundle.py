"""Astra DB secure connect bundles: what the DataStax drivers do with one, for zdm's driver
sessions and its proxy alike.

Theory of operation: a bundle is a zip holding ``config.json`` (the metadata service's
``host`` and ``port``, and optionally ``keyspace`` and ``localDC``), the CA that signs
Astra's certificates (``ca.crt``) and a client certificate with its key (``cert``,
``key``), all PEM.  :func:`read_bundle` reads them (nothing is extracted to disk but a
private temporary copy of the client key, loaded and deleted at once).  :func:`resolve`
then asks the metadata service, over HTTPS with the bundle's client certificate and its
host name verified, for ``https://host:port/metadata``::

    {"contact_info": {"sni_proxy_address": "HOST:PORT", "contact_points": [HOST_ID, ...],
                      "local_dc": "dc1", ...}, ...}

and returns an :class:`Astra`: the SNI proxy's address, the nodes' host ids and an SSL
context.  Every node is reached at the same SNI proxy address, with TLS whose SNI name is
the node's host id; the proxy's certificate is verified against the SNI proxy's host name
(not the host id), as zdm-proxy does.

Every failure is a :class:`BundleError` naming the setting (``target.secure_connect_bundle``)
and what to do; none quotes the bundle's contents.
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from zdm.errors import ZdmError
from zdm.clusters.tls import PinnedNameContext, load_ca, load_cert_chain, pinned_context
from zdm.clusters.tls_diagnosis import Failure, classify

#: the files a bundle must hold (the drivers read these names)
CONFIG, CA, CERT, KEY = "config.json", "ca.crt", "cert", "key"
_DOWNLOAD = "download the database's secure connect bundle again (Astra console: Connect)"


class BundleError(ZdmError):
    """A secure connect bundle is missing, damaged, or its metadata service is unusable."""

    def __init__(self, message: str, *, key: str, hint: str | None = None) -> None:
        super().__init__(f"{key}: {message}", hint=hint)
        self.key = key


@dataclass(frozen=True)
class Bundle:
    """What a bundle holds."""

    path: Path
    #: the metadata service (config.json ``host`` and ``port``)
    host: str
    port: int
    keyspace: str | None
    local_dc: str | None
    ca_pem: bytes = field(repr=False)
    cert_pem: bytes = field(repr=False)
    key_pem: bytes = field(repr=False)
    #: the setting it came from, for errors (``target.secure_connect_bundle``)
    key: str = "secure_connect_bundle"

    @property
    def metadata_url(self) -> str:
        return f"https://{_host_port(self.host, self.port)}/metadata"

    def ssl_context(self, verify_name: str) -> PinnedNameContext:
        """A client context with the bundle's CA and client certificate, accepting only a
        peer certificate valid for ``verify_name``, whatever SNI name is sent."""
        ctx = pinned_context(verify_name)
        try:
            load_ca(ctx, cadata=self.ca_pem, key=self.key)
        except ZdmError:
            raise BundleError(f"its CA certificate ({CA}) is not PEM", key=self.key,
                              hint=_DOWNLOAD) from None
        with tempfile.TemporaryDirectory(prefix="zdm-bundle-") as tmp:  # mode 0700
            cert, key = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
            cert.write_bytes(self.cert_pem)
            fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(self.key_pem)
            try:
                load_cert_chain(ctx, cert, key, key="bundle")
            except ZdmError as exc:
                what = (f"its key ({KEY}) does not belong to its client certificate ({CERT})"
                        if "is not the key" in exc.message else
                        f"its key ({KEY}) is encrypted with a passphrase" if "passphrase" in exc.message
                        else f"its client certificate ({CERT}) and key ({KEY}) are not PEM")
                raise BundleError(what, key=self.key, hint=_DOWNLOAD) from None
        return ctx


@dataclass(frozen=True)
class Astra:
    """Where an Astra DB database's nodes are, from its metadata service."""

    bundle: Bundle
    #: every node is reached here (TLS; the SNI name picks the node)
    sni_host: str
    sni_port: int
    #: one per node: the SNI name that reaches it (its host id)
    host_ids: tuple[str, ...]
    local_dc: str
    #: for every connection to the SNI proxy: pass ``server_hostname=<a host id>``
    ssl_context: ssl.SSLContext = field(repr=False)


def read_bundle(path: Path | str, *, key: str = "secure_connect_bundle") -> Bundle:
    """Read a bundle (raises BundleError naming ``key``)."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            missing = [n for n in (CONFIG, CA, CERT, KEY) if n not in names]
            if missing:
                raise BundleError(f"{path} is not a secure connect bundle: it has no "
                                  f"{', '.join(missing)}", key=key, hint=_DOWNLOAD)
            files = {n: zf.read(n) for n in (CONFIG, CA, CERT, KEY)}
    except FileNotFoundError:
        raise BundleError(f"no such file: {path}", key=key, hint=f"set {key} to the bundle's path, or "
                          f"{_DOWNLOAD}") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
        raise BundleError(f"{path} is not a readable zip file ({type(exc).__name__})", key=key,
                          hint=f"the bundle is damaged or truncated: {_DOWNLOAD}") from None
    try:
        config = json.loads(files[CONFIG].decode("utf-8"))
        if not isinstance(config, dict):
            raise ValueError("not a JSON object")
    except (UnicodeDecodeError, ValueError) as exc:
        raise BundleError(f"{CONFIG} in {path} is not valid JSON ({type(exc).__name__})", key=key,
                          hint=_DOWNLOAD) from None
    host = config.get("host")
    port = config.get("port")
    try:
        port = int(port)
    except (TypeError, ValueError):
        port = None
    if not isinstance(host, str) or not host or port is None or not 0 < port < 65536:
        raise BundleError(f"{CONFIG} in {path} names no metadata service (its host and port)",
                          key=key, hint=_DOWNLOAD)
    return Bundle(path=path, host=host, port=port, keyspace=_text(config.get("keyspace")),
                  local_dc=_text(config.get("localDC")), ca_pem=files[CA], cert_pem=files[CERT],
                  key_pem=files[KEY], key=key)


def _text(value) -> str | None:
    return value if isinstance(value, str) and value else None


def fetch_metadata(bundle: Bundle, *, timeout: float = 10.0) -> dict:
    """The metadata service's JSON document (raises BundleError)."""
    ctx = bundle.ssl_context(bundle.host)
    url = bundle.metadata_url
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=timeout) as response:
            body = response.read(1 << 20)
    except http.client.RemoteDisconnected:
        raise BundleError(f"the metadata service {url} closed the connection without answering "
                          "(as it does when the bundle's client certificate is not this "
                          "database's)", key=bundle.key, hint=_DOWNLOAD) from None
    except urllib.error.HTTPError as exc:
        raise BundleError(f"the metadata service {url} answered HTTP {exc.code}", key=bundle.key,
                          hint="check that the database is active in the Astra console (a "
                               f"parked or terminated database has no nodes); else {_DOWNLOAD}") from None
    except (urllib.error.URLError, OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "reason", exc)
        failure = classify(reason if isinstance(reason, BaseException) else str(reason))
        if failure in (Failure.UNTRUSTED, Failure.NAME_MISMATCH, Failure.EXPIRED,
                       Failure.NOT_YET_VALID, Failure.CLIENT_CERT_REJECTED):
            raise BundleError(f"the metadata service {url} failed TLS ({failure.value}: "
                              f"{_reason(reason)})", key=bundle.key,
                              hint=f"the bundle does not match the database any more: {_DOWNLOAD}") from None
        raise BundleError(f"the metadata service {url} is unreachable ({_reason(reason)})",
                          key=bundle.key,
                          hint=f"check this machine reaches {_host_port(bundle.host, bundle.port)} "
                               "(firewall, proxy, DNS) and that the database is active in the "
                               "Astra console") from None
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BundleError(f"the metadata service {url} answered something that is not JSON",
                          key=bundle.key, hint=f"check the database's status in the Astra console; "
                                               f"else {_DOWNLOAD}") from None


def _reason(reason) -> str:
    text = getattr(reason, "strerror", None) or str(reason)
    return text.replace(" (_ssl.c:", " (")[:200]


def parse_metadata(bundle: Bundle, document: dict) -> tuple[str, int, tuple[str, ...], str]:
    """(SNI proxy host, port, host ids, local DC) from the metadata document, as the drivers
    read it (an SNI address without a port means 9042)."""
    try:
        info = document["contact_info"]
        address = info["sni_proxy_address"]
        host_ids = tuple(str(h) for h in info["contact_points"])
        local_dc = info.get("local_dc") or bundle.local_dc
        if not isinstance(address, str) or not address or not host_ids or not local_dc:
            raise ValueError
    except (KeyError, TypeError, ValueError):
        raise BundleError(f"the metadata service {bundle.metadata_url} did not name the SNI proxy, "
                          "the nodes and their datacenter (contact_info.sni_proxy_address, "
                          "contact_points, local_dc)", key=bundle.key,
                          hint=f"check the database's status in the Astra console; else {_DOWNLOAD}") from None
    host, sep, port = address.rpartition(":")
    if not sep:
        host, port = address, "9042"
    try:
        sni_port = int(port)
    except ValueError:
        raise BundleError(f"the metadata service named an SNI proxy without a usable port "
                          f"({address!r})", key=bundle.key, hint=_DOWNLOAD) from None
    return host.strip("[]"), sni_port, host_ids, str(local_dc)


def resolve(path: Path | str, *, key: str = "secure_connect_bundle", timeout: float = 10.0) -> Astra:
    """Read the bundle at ``path`` and ask its metadata service where the nodes are."""
    bundle = read_bundle(path, key=key)
    sni_host, sni_port, host_ids, local_dc = parse_metadata(bundle, fetch_metadata(bundle, timeout=timeout))
    return Astra(bundle=bundle, sni_host=sni_host, sni_port=sni_port, host_ids=host_ids,
                 local_dc=local_dc, ssl_context=bundle.ssl_context(sni_host))


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
