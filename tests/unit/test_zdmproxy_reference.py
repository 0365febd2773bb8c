"""zdm-proxy's reference configuration, whole: every key its documentation lists, at the value it
documents (tests/support/zdm-proxy-reference.yml).  It converts, from the file and from the same
settings as ``ZDM_*`` variables, and each key's meaning lands in zdm's configuration, or the key
is ignored with a note saying why (a setting zdm has no equivalent of; the README's table of
zdm-proxy settings says which).  tests/integration/test_zdm_proxy_reference.py starts a proxy
from it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from zdm.errors import ConfigError
from zdm.phases import MigrationState, Phase
from zdm.phases.model import Cluster, ReadMode, Routing
from zdm.config.zdmproxy_read import read
from zdm.config.zdmproxy_routing import check_routing
from zdm.config.zdmproxy_table import BY_NAME
from zdm.config.zdmproxy_translate import Given

REFERENCE = Path(__file__).parents[1] / "support" / "zdm-proxy-reference.yml"


@dataclasses.dataclass(frozen=True)
class Lands:
    """The key's value, converted, is this zdm setting's."""

    key: str
    value: Any


@dataclasses.dataclass(frozen=True)
class Unset:
    """Documented with no value, which zdm-proxy reads as not set: zdm's setting is what it is
    with the key absent."""

    key: str
    value: Any


IGNORED = "ignored"   # zdm has no equivalent: accepted at this value, with a note saying why
ROUTING = "routing"   # in zdm the migration's phase decides; the value must agree with it

_ALL = ("127.0.1.1:14002", "127.0.1.2:14002", "127.0.1.3:14002")
#: what each key of the reference means in zdm
MEANING: dict[str, Any] = {
    "primary_cluster": ROUTING,
    "read_mode": ROUTING,
    "replace_cql_functions": Lands("proxy.replace_cql_functions", False),
    "async_handshake_timeout_ms": IGNORED,
    "log_level": Lands("proxy.log_level", "info"),
    "proxy_topology_addresses": Lands("proxy.instances", _ALL),
    "proxy_topology_index": Lands("proxy.advertise_host", "127.0.1.1"),
    "proxy_topology_num_tokens": IGNORED,
    "origin_contact_points": Lands("origin.contact_points", ("127.0.0.1",)),
    "origin_port": Lands("origin.port", 9042),
    "origin_secure_connect_bundle_path": Unset("origin.secure_connect_bundle", None),
    "origin_local_datacenter": Unset("origin.local_dc", None),
    "origin_username": Lands("origin.username", "user1"),
    "origin_password": Lands("origin.password", "pass1"),
    "origin_connection_timeout_ms": Lands("origin.connect_timeout_s", 30.0),
    "origin_tls_server_ca_path": Unset("origin.tls", None),
    "origin_tls_client_cert_path": Unset("origin.tls", None),
    "origin_tls_client_key_path": Unset("origin.tls", None),
    "target_contact_points": Lands("target.contact_points", ("127.0.0.2",)),
    "target_secure_connect_bundle_path": Unset("target.secure_connect_bundle", None),
    "target_local_datacenter": Lands("target.local_dc", "DC1"),
    "target_port": Lands("target.port", 9042),
    "target_username": Lands("target.username", "user2"),
    "target_password": Lands("target.password", "pass2"),
    "target_connection_timeout_ms": Lands("target.connect_timeout_s", 30.0),
    "target_tls_server_ca_path": Unset("target.tls", None),
    "target_tls_client_cert_path": Unset("target.tls", None),
    "target_tls_client_key_path": Unset("target.tls", None),
    "proxy_listen_address": Lands("proxy.listen_host", "localhost"),
    "proxy_listen_port": Lands("proxy.listen_port", 14002),
    "proxy_request_timeout_ms": Lands("proxy.request_timeout_s", 10.0),
    "proxy_max_client_connections": Lands("proxy.max_client_connections", 1000),
    "proxy_max_stream_ids": IGNORED,
    "proxy_tls_ca_path": Unset("proxy.tls", None),
    "proxy_tls_cert_path": Unset("proxy.tls", None),
    "proxy_tls_key_path": Unset("proxy.tls", None),
    # zdm-proxy reads it only with the three paths: with none, its listener is plaintext
    "proxy_tls_require_client_auth": IGNORED,
    "metrics_enabled": Lands("proxy.metrics_enabled", True),
    "metrics_address": Lands("proxy.metrics_address", "localhost"),
    "metrics_port": Lands("proxy.metrics_port", 14001),
    "metrics_prefix": Lands("proxy.metrics_prefix", "zdm"),
    "metrics_origin_latency_buckets_ms": IGNORED,
    "metrics_target_latency_buckets_ms": IGNORED,
    "metrics_async_read_latency_buckets_ms": IGNORED,
    "heartbeat_interval_ms": Lands("proxy.heartbeat_interval_s", 30.0),
    "heartbeat_retry_interval_min_ms": IGNORED,
    "heartbeat_retry_interval_max_ms": IGNORED,
    "heartbeat_retry_backoff_factor": IGNORED,
    "heartbeat_failure_threshold": IGNORED,
}


def reference() -> dict[str, Any]:
    return yaml.safe_load(REFERENCE.read_text())


def attr(obj, dotted: str):
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def as_variable(value: Any) -> str:
    """A YAML value as the same setting's ZDM_* variable holds it (empty: set, and empty)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def without(tmp_path: Path, *names: str) -> Path:
    path = tmp_path / "zdm-config.yml"
    path.write_text(yaml.safe_dump({k: v for k, v in reference().items() if k not in names}))
    return path


def test_the_reference_holds_every_key_once_and_each_has_a_meaning():
    keys = [line.split(":")[0] for line in REFERENCE.read_text().splitlines()
            if line and not line.startswith("#")]
    assert len(keys) == len(set(keys)) == 49  # zdm-proxy 2.4's reference documents 49 keys
    assert set(keys) == set(MEANING) and all(k in BY_NAME for k in keys)


@pytest.mark.parametrize("name", list(MEANING))
def test_each_key_means_in_zdm_what_it_means_to_zdm_proxy(name, tmp_path):
    t = read(REFERENCE, {})
    config = t.config()
    meaning = MEANING[name]
    if isinstance(meaning, Lands):
        assert attr(config, meaning.key) == meaning.value
        source = t.sources[meaning.key]
        assert isinstance(source, Given) and source.key == name  # from this key, not a default
    elif isinstance(meaning, Unset):
        assert name not in t.given and reference()[name] is None
        assert attr(config, meaning.key) == meaning.value
    elif meaning == IGNORED:
        assert name in [g.key for g in t.accepted]
        (note,) = [n for n in t.ignored() if n.startswith(f"{name}: ")]
        assert " is ignored: " in note and note.split(" is ignored: ")[1] == BY_NAME[name].reason
        assert read(without(tmp_path, name), {}).config() == config  # it changes nothing
    else:
        assert meaning == ROUTING and name in [g.key for g in t.routing_from]
        assert t.routing == Routing(Cluster.ORIGIN, ReadMode.PRIMARY_ONLY)


def test_empty_values_mean_not_set(tmp_path):
    empty = [k for k, v in reference().items() if v is None]
    assert len(empty) == 12  # the bundles, origin's data center, and every TLS path
    assert read(without(tmp_path, *empty), {}).config() == read(REFERENCE, {}).config()


def test_the_proxy_listens_in_plaintext_with_client_auth_false_and_no_paths():
    """The user's report: proxy_tls_require_client_auth: false, and no TLS path, was taken for
    a TLS listener missing its certificate; zdm-proxy starts with it, in plaintext."""
    t = read(REFERENCE, {})
    assert t.config().proxy.tls is None
    assert "proxy" not in t.raw or "tls" not in t.raw["proxy"]


def test_the_zdm_variables_convert_the_same():
    environ = {BY_NAME[name].env: as_variable(value) for name, value in reference().items()}
    from_file, from_env = read(REFERENCE, {}), read(None, environ)
    assert from_env.config() == from_file.config()
    assert from_env.routing == from_file.routing
    assert [g.setting for g in from_env.accepted] == [g.setting for g in from_file.accepted]
    assert from_env.ignored() == [note.replace(g.key, g.setting.env, 1)
                                  for g, note in zip(from_file.accepted, from_file.ignored())]


@pytest.mark.parametrize("phase", [p for p in Phase if p is not Phase.CUTOVER], ids=lambda p: p.label)
def test_its_routing_is_that_of_phases_0_to_2(phase):
    t = read(REFERENCE, {})
    if phase <= Phase.MIGRATE:
        check_routing(t, MigrationState(phase=phase))
        return
    with pytest.raises(ConfigError, match="primary_cluster=ORIGIN and read_mode=PRIMARY_ONLY: these "
                                          "mean reads from origin, but the migration is in phase"):
        check_routing(t, MigrationState(phase=phase))
