"""zdm.clusters.bundle against the Astra stand-in's metadata service (no Cassandra needed): what a bundle
and the service yield, and every way a bundle or the service can be wrong, each a BundleError
naming the setting, saying what to do, and quoting nothing of the bundle."""

from __future__ import annotations

import json
import socket
import ssl
import zipfile

import pytest

from tests.support.astra import HOST, AstraStandIn, make_bundle
from zdm.clusters import bundle
from zdm.sandbox import certs

KEY = "target.secure_connect_bundle"
HOST_IDS = ["3a6a2a4c-0000-4000-8000-000000000001", "3a6a2a4c-0000-4000-8000-000000000002",
            "3a6a2a4c-0000-4000-8000-000000000003"]


@pytest.fixture(scope="module")
def stand_in():
    # three "nodes", none reachable: only the metadata service is asked here
    s = AstraStandIn({h: ("127.0.0.1", 1) for h in HOST_IDS}, local_dc="dc-east")
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def healthy(stand_in):
    stand_in.metadata_status, stand_in.metadata_body = 200, None
    yield


def _secrets(path) -> list[str]:
    """What must never be quoted: the key's lines, config.json's passwords."""
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        key = zf.read("key").decode().splitlines()[1:-1] if "key" in names else []
        try:
            config = json.loads(zf.read("config.json")) if "config.json" in names else {}
        except ValueError:
            config = {}
    return key + [v for k, v in config.items() if "Password" in k]


def test_a_bundle_leads_to_the_sni_proxy_and_every_node(stand_in, tmp_path):
    path = stand_in.bundle(tmp_path / "scb.zip", keyspace="shop")
    astra = bundle.resolve(path, key=KEY)
    assert (astra.sni_host, astra.sni_port) == (HOST, stand_in.sni_port)
    assert astra.host_ids == tuple(HOST_IDS) and astra.local_dc == "dc-east"
    assert astra.bundle.keyspace == "shop" and astra.bundle.host == HOST
    assert astra.bundle.port == stand_in.metadata_port
    assert isinstance(astra.ssl_context, ssl.SSLContext) and astra.ssl_context.expected_name == HOST
    for text in (repr(astra), repr(astra.bundle)):
        assert all(s not in text for s in _secrets(path))


def test_the_sni_address_without_a_port_means_9042(stand_in, tmp_path):
    doc = stand_in.document()
    doc["contact_info"]["sni_proxy_address"] = "sni.example"
    stand_in.metadata_body = json.dumps(doc).encode()
    astra = bundle.resolve(stand_in.bundle(tmp_path / "scb.zip"), key=KEY)
    assert (astra.sni_host, astra.sni_port) == ("sni.example", 9042)
    assert astra.ssl_context.expected_name == "sni.example"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _corrupt(path):
    path.write_bytes(b"PK\x03\x04 this is no zip at all")


def _truncated(path):
    path.write_bytes(path.read_bytes()[:200])


BROKEN = [
    # id, how to make the bundle, what the error says
    ("missing", lambda s, p: p.parent / "nowhere.zip", "no such file"),
    ("corrupt", lambda s, p: (_corrupt(s.bundle(p)), p)[1], "is not a readable zip file"),
    ("truncated", lambda s, p: (_truncated(s.bundle(p)), p)[1], "is not a readable zip file"),
    ("no-config", lambda s, p: s.bundle(p, omit=("config.json",)), "it has no config.json"),
    ("no-ca-nor-key", lambda s, p: s.bundle(p, omit=("ca.crt", "key")), "it has no ca.crt, key"),
    ("config-not-json", lambda s, p: _replace(s.bundle(p), "config.json", b"{not json"),
     "config.json in"),
    ("config-without-host", lambda s, p: s.bundle(p, config={"port": 29080}),
     "names no metadata service"),
    ("ca-not-pem", lambda s, p: s.bundle(p, ca_pem=b"nonsense"), "its CA certificate (ca.crt) is not PEM"),
    ("key-of-another-cert", lambda s, p: s.bundle(p, key_pem=certs.issue(s.ca, "x", client=True).key_pem),
     "its key (key) does not belong to its client certificate (cert)"),
    ("metadata-unreachable", lambda s, p: s.bundle(p, port=_free_port()),
     "is unreachable"),
    ("metadata-of-another-ca", lambda s, p: s.bundle(p, ca_pem=certs.new_ca("elsewhere").cert_pem),
     "failed TLS (the certificate is not signed by a trusted CA"),
    ("client-cert-of-another-ca", lambda s, p: _foreign_client(s, p),
     "closed the connection without answering"),
]


def _replace(path, name, data):
    with zipfile.ZipFile(path) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    files[name] = data
    with zipfile.ZipFile(path, "w") as zf:
        for n, d in files.items():
            zf.writestr(n, d)
    return path


def _foreign_client(stand_in, path):
    other = certs.new_ca("someone else")
    client = certs.issue(other, "intruder", server=False, client=True)
    return stand_in.bundle(path, cert_pem=client.cert_pem, key_pem=client.key_pem)


@pytest.mark.parametrize("make, message", [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_a_broken_bundle_is_named_with_what_to_do(stand_in, tmp_path, make, message):
    path = make(stand_in, tmp_path / "scb.zip")
    with pytest.raises(bundle.BundleError) as info:
        bundle.resolve(path, key=KEY, timeout=3)
    err = info.value
    assert str(err).startswith(f"{KEY}: ") and message in str(err), str(err)
    assert err.hint and ("download" in err.hint or "check" in err.hint or KEY in err.hint), err.hint
    if path.exists() and zipfile.is_zipfile(path):
        assert all(s not in str(err) + err.hint for s in _secrets(path))


SERVICE = [
    ("http-503", 503, None, "answered HTTP 503"),
    ("not-json", 200, b"<html>maintenance</html>", "answered something that is not JSON"),
    ("no-contact-info", 200, b'{"version": 1}', "did not name the SNI proxy"),
    ("no-nodes", 200, json.dumps({"contact_info": {"sni_proxy_address": "h:1", "contact_points": [],
                                                   "local_dc": "dc"}}).encode(), "did not name"),
]


@pytest.mark.parametrize("status, body, message", [s[1:] for s in SERVICE], ids=[s[0] for s in SERVICE])
def test_a_metadata_service_answering_wrong_is_named(stand_in, tmp_path, status, body, message):
    stand_in.metadata_status, stand_in.metadata_body = status, body
    with pytest.raises(bundle.BundleError) as info:
        bundle.resolve(stand_in.bundle(tmp_path / "scb.zip"), key=KEY, timeout=3)
    assert message in str(info.value) and "Astra console" in info.value.hint


def test_make_bundle_writes_what_the_drivers_read(stand_in, tmp_path):
    path = make_bundle(tmp_path / "b.zip", host="h", port=1, ca_pem=b"ca", cert_pem=b"c", key_pem=b"k",
                       keyspace="ks", local_dc="dc")
    with zipfile.ZipFile(path) as zf:
        assert {"config.json", "ca.crt", "cert", "key"} <= set(zf.namelist())
        config = json.loads(zf.read("config.json"))
    assert (config["host"], config["port"], config["keyspace"], config["localDC"]) == ("h", 1, "ks", "dc")


def test_every_driver_session_reads_its_bundle_first(stand_in, tmp_path):
    """zdm.clusters.connect.session (preflight, migrate, validate, the demo) meets a bad bundle before
    any node: the same BundleError, naming its cluster's key."""
    from zdm.config import ClusterConfig
    from zdm.clusters.connect import session

    path = stand_in.bundle(tmp_path / "scb.zip", port=_free_port())
    with pytest.raises(bundle.BundleError) as info:
        with session(ClusterConfig(secure_connect_bundle=path, connect_timeout_s=3), name="origin"):
            pass
    assert str(info.value).startswith("origin.secure_connect_bundle: the metadata service")
    assert "is unreachable" in str(info.value)


@pytest.mark.parametrize("key, expected", [
    ("127.0.0.1:9042", ("127.0.0.1", 9042, None)),
    ("127.0.0.1:29042:3a6a2a4c-0000-4000-8000-000000000001",
     ("127.0.0.1", 29042, "3a6a2a4c-0000-4000-8000-000000000001")),
    ("::1:9042", ("::1", 9042, None)),
    ("node-a.example:9142", ("node-a.example", 9142, None)),
], ids=["ipv4", "sni", "ipv6", "dns"])
def test_the_drivers_error_keys_are_read_as_endpoints(key, expected):
    from zdm.clusters.connect import _endpoint

    assert _endpoint(key) == expected
