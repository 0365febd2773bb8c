"""zdm-proxy's settings: every mapping and every refusal of the table, from its environment
variables (as zdm-proxy's documentation spells them) and from its YAML file; the routing
check against the stored phase; where the proxy's configuration comes from.
"""

from __future__ import annotations

import dataclasses
import textwrap
import types
import typing
from pathlib import Path

import pytest

from zdm.config import Config, load_config
from zdm.errors import ConfigError
from zdm.phases import MigrationState, Phase
from zdm.config.proxy_config import proxy_config
from zdm.config.zdmproxy_read import read
from zdm.config.zdmproxy_render import zdm_yaml
from zdm.config.zdmproxy_routing import check_routing
from zdm.config.zdmproxy_table import BY_ENV, BY_NAME, SETTINGS

BASE = {"ZDM_ORIGIN_CONTACT_POINTS": "10.0.0.1", "ZDM_TARGET_CONTACT_POINTS": "10.0.1.1"}
HOSTS = {"localhost": "127.0.0.1", "proxy-1.example": "10.9.9.9"}


def from_env(env: dict[str, str], base: dict[str, str] = BASE):
    return read(None, {**base, **env}, resolve=HOSTS.get)


def attr(obj, dotted: str):
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def nested(raw: dict, dotted: str, missing=KeyError):
    node = raw
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return missing
        node = node[part]
    return node


def zdm_has_key(dotted: str) -> bool:
    """Whether zdm's configuration model has this (dotted, possibly nested) key."""
    cls = Config
    for part in dotted.split("."):
        hints = typing.get_type_hints(cls)
        if part not in hints:
            return False
        hint = hints[part]
        if typing.get_origin(hint) in (types.UnionType, typing.Union):
            hint = next(a for a in typing.get_args(hint) if a is not type(None))
        cls = hint
    return True


# -- the table ------------------------------------------------------------------------------

def test_env_names_are_derived_from_yaml_keys():
    assert BY_NAME["origin_contact_points"].env == "ZDM_ORIGIN_CONTACT_POINTS"
    assert BY_ENV["ZDM_PROXY_REQUEST_TIMEOUT_MS"].name == "proxy_request_timeout_ms"
    assert len(BY_ENV) == len(BY_NAME) == len(SETTINGS)  # no setting listed twice


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s.status == "maps"], ids=lambda s: s.name)
def test_every_mapped_setting_names_a_key_zdm_has(setting):
    assert zdm_has_key(setting.key), f"{setting.name} maps to {setting.key}, which zdm.config lacks"
    for key, _ in setting.also:
        assert zdm_has_key(key)


def _as_text(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return str(value)


_OTHER = {"control_conn_max_protocol_version": "4", "system_queries_mode": "TARGET",
          "blocked_protocol_versions": "v4", "heartbeat_retry_backoff_factor": "1.5",
          "metrics_origin_latency_buckets_ms": "1, 2", "metrics_target_latency_buckets_ms": "5",
          "metrics_async_read_latency_buckets_ms": "10, 100", "tracing_request_id_key": "rid"}
DEFAULT_ONLY = [s for s in SETTINGS if s.status == "default only"]


@pytest.mark.parametrize("setting", DEFAULT_ONLY, ids=lambda s: s.name)
def test_default_only_setting_accepts_its_default_and_refuses_another_value(setting):
    if setting.default != ():
        t = from_env({setting.env: _as_text(setting.default)})
        assert [g.setting for g in t.accepted] == [setting]
        assert t.config() == from_env({}).config()  # it changes nothing
    other = _OTHER.get(setting.name) or _as_text(
        (not setting.default) if isinstance(setting.default, bool) else setting.default + 1)
    with pytest.raises(ConfigError) as info:
        from_env({setting.env: other})
    assert str(info.value).startswith(f"{setting.env}: {other!r} is refused: ")
    assert "only zdm-proxy's default" in str(info.value)
    assert setting.env in info.value.hint or "proxy.workers" in info.value.hint


# -- mappings, from the environment ------------------------------------------------------------

MAPPINGS = [
    ("contact-points", {"ZDM_ORIGIN_CONTACT_POINTS": "10.0.0.1, 10.0.0.2,10.0.0.3",
                        "ZDM_TARGET_CONTACT_POINTS": "cass-1.example,cass-2.example"},
     {"origin.contact_points": ("10.0.0.1", "10.0.0.2", "10.0.0.3"),
      "target.contact_points": ("cass-1.example", "cass-2.example")}),
    ("ports", {"ZDM_ORIGIN_PORT": "9142", "ZDM_TARGET_PORT": "9043"},
     {"origin.port": 9142, "target.port": 9043}),
    ("ports-default-to-zdm-proxy-s-9042", {}, {"origin.port": 9042, "target.port": 9042}),
    ("credentials", {"ZDM_ORIGIN_USERNAME": "cassandra", "ZDM_ORIGIN_PASSWORD": "pw1",
                     "ZDM_TARGET_USERNAME": "token", "ZDM_TARGET_PASSWORD": "pw2"},
     {"origin.credentials": ("cassandra", "pw1"), "target.credentials": ("token", "pw2")}),
    ("empty-credentials-mean-no-login", {"ZDM_ORIGIN_USERNAME": "", "ZDM_ORIGIN_PASSWORD": "",
                                         "ZDM_TARGET_USERNAME": "", "ZDM_TARGET_PASSWORD": ""},
     {"origin.credentials": None, "target.credentials": None}),
    ("username-with-empty-password", {"ZDM_TARGET_USERNAME": "u", "ZDM_TARGET_PASSWORD": ""},
     {"target.credentials": ("u", "")}),
    ("local-datacenters", {"ZDM_ORIGIN_LOCAL_DATACENTER": "dc1", "ZDM_TARGET_LOCAL_DATACENTER": "DC2"},
     {"origin.local_dc": "dc1", "target.local_dc": "DC2"}),
    ("connection-timeouts-ms-to-s", {"ZDM_ORIGIN_CONNECTION_TIMEOUT_MS": "5000",
                                     "ZDM_TARGET_CONNECTION_TIMEOUT_MS": "1500"},
     {"origin.connect_timeout_s": 5.0, "target.connect_timeout_s": 1.5}),
    ("connection-timeouts-default-30s", {},
     {"origin.connect_timeout_s": 30.0, "target.connect_timeout_s": 30.0}),
    ("listen-address-and-port", {"ZDM_PROXY_LISTEN_ADDRESS": "0.0.0.0", "ZDM_PROXY_LISTEN_PORT": "9142"},
     {"proxy.listen_host": "0.0.0.0", "proxy.listen_port": 9142, "proxy.advertise_host": None}),
    ("listen-default-localhost-advertised-as-its-ip", {},
     {"proxy.listen_host": "localhost", "proxy.listen_port": 14002, "proxy.advertise_host": "127.0.0.1"}),
    ("listen-hostname-advertised-as-its-ip", {"ZDM_PROXY_LISTEN_ADDRESS": "proxy-1.example"},
     {"proxy.listen_host": "proxy-1.example", "proxy.advertise_host": "10.9.9.9"}),
    ("listen-unresolvable-advertised-as-loopback", {"ZDM_PROXY_LISTEN_ADDRESS": "nowhere.invalid"},
     {"proxy.advertise_host": "127.0.0.1"}),
    ("request-timeout-ms-to-s", {"ZDM_PROXY_REQUEST_TIMEOUT_MS": "2500"}, {"proxy.request_timeout_s": 2.5}),
    ("request-timeout-default", {}, {"proxy.request_timeout_s": 10.0}),
    ("heartbeat-ms-to-s", {"ZDM_HEARTBEAT_INTERVAL_MS": "5000"}, {"proxy.heartbeat_interval_s": 5.0}),
    ("max-client-connections", {"ZDM_PROXY_MAX_CLIENT_CONNECTIONS": "50"},
     {"proxy.max_client_connections": 50}),
    ("topology", {"ZDM_PROXY_TOPOLOGY_ADDRESSES": "10.0.2.1, 10.0.2.2,10.0.2.3",
                  "ZDM_PROXY_TOPOLOGY_INDEX": "1", "ZDM_PROXY_LISTEN_ADDRESS": "0.0.0.0",
                  "ZDM_PROXY_LISTEN_PORT": "9042"},
     {"proxy.instances": ("10.0.2.1:9042", "10.0.2.2:9042", "10.0.2.3:9042"),
      "proxy.advertise_host": "10.0.2.2", "proxy.listen_host": "0.0.0.0"}),
    ("topology-index-defaults-to-0", {"ZDM_PROXY_TOPOLOGY_ADDRESSES": "10.0.2.1,10.0.2.2"},
     {"proxy.instances": ("10.0.2.1:14002", "10.0.2.2:14002"), "proxy.advertise_host": "10.0.2.1"}),
    ("topology-ipv6", {"ZDM_PROXY_TOPOLOGY_ADDRESSES": "::1", "ZDM_PROXY_LISTEN_PORT": "9000"},
     {"proxy.instances": ("::1:9000",), "proxy.advertise_host": "::1"}),
    ("state-dir-in-the-working-directory", {}, {"state_dir": Path(".zdm/state")}),
]


@pytest.mark.parametrize("env, expected", [m[1:] for m in MAPPINGS], ids=[m[0] for m in MAPPINGS])
def test_environment_variable_maps_to_zdm(env, expected):
    config = from_env(env).config()
    for key, value in expected.items():
        assert attr(config, key) == value, key


def test_values_are_read_as_zdm_proxy_reads_them():
    t = from_env({"ZDM_TRACING_ENABLED": "FALSE", "ZDM_ORIGIN_ENABLE_HOST_ASSIGNMENT": "1",
                  "ZDM_TARGET_ENABLE_HOST_ASSIGNMENT": "t", "ZDM_SYSTEM_QUERIES_MODE": "origin",
                  "ZDM_CONTROL_CONN_MAX_PROTOCOL_VERSION": "dsev2", "ZDM_PROXY_MAX_STREAM_IDS": " 2048 ",
                  "ZDM_HEARTBEAT_RETRY_BACKOFF_FACTOR": "2.0",
                  "ZDM_BLOCKED_PROTOCOL_VERSIONS": "v2, DseV1,Dse_V2",  # zdm refuses these anyway
                  "ZDM_METRICS_ORIGIN_LATENCY_BUCKETS_MS": "1,4,7,10,25,40,60,80,100,150,250,500,1000,"
                                                           "2500,5000,10000,15000"})
    assert sorted(g.path for g in t.accepted) == sorted(
        ["ZDM_TRACING_ENABLED", "ZDM_ORIGIN_ENABLE_HOST_ASSIGNMENT", "ZDM_TARGET_ENABLE_HOST_ASSIGNMENT",
         "ZDM_SYSTEM_QUERIES_MODE", "ZDM_CONTROL_CONN_MAX_PROTOCOL_VERSION", "ZDM_PROXY_MAX_STREAM_IDS",
         "ZDM_HEARTBEAT_RETRY_BACKOFF_FACTOR", "ZDM_BLOCKED_PROTOCOL_VERSIONS",
         "ZDM_METRICS_ORIGIN_LATENCY_BUCKETS_MS"])


# -- the other settings that map, from the environment ------------------------------------------

PROXY_TLS = {"ZDM_PROXY_TLS_CA_PATH": "/p-ca.pem", "ZDM_PROXY_TLS_CERT_PATH": "/p.crt",
             "ZDM_PROXY_TLS_KEY_PATH": "/p.key"}
MAPPED = [
    ("origin-tls-ca", {"ZDM_ORIGIN_TLS_SERVER_CA_PATH": "/etc/zdm/origin-ca.pem"},
     {"origin.tls.ca_file": "/etc/zdm/origin-ca.pem", "origin.tls.verify_hostname": False}),
    ("origin-tls-mutual", {"ZDM_ORIGIN_TLS_SERVER_CA_PATH": "/ca.pem",
                           "ZDM_ORIGIN_TLS_CLIENT_CERT_PATH": "/etc/zdm/origin.crt",
                           "ZDM_ORIGIN_TLS_CLIENT_KEY_PATH": "/etc/zdm/origin.key"},
     {"origin.tls.ca_file": "/ca.pem", "origin.tls.cert_file": "/etc/zdm/origin.crt",
      "origin.tls.key_file": "/etc/zdm/origin.key", "origin.tls.verify_hostname": False}),
    ("target-tls-ca", {"ZDM_TARGET_TLS_SERVER_CA_PATH": "/etc/zdm/target-ca.pem"},
     {"target.tls.ca_file": "/etc/zdm/target-ca.pem", "target.tls.verify_hostname": False}),
    ("target-tls-mutual", {"ZDM_TARGET_TLS_SERVER_CA_PATH": "/t-ca.pem", "ZDM_TARGET_TLS_CLIENT_CERT_PATH": "/t.crt",
                           "ZDM_TARGET_TLS_CLIENT_KEY_PATH": "/t.key"},
     {"target.tls.ca_file": "/t-ca.pem", "target.tls.cert_file": "/t.crt", "target.tls.key_file": "/t.key"}),
    ("origin-bundle", {"ZDM_ORIGIN_CONTACT_POINTS": "", "ZDM_ORIGIN_SECURE_CONNECT_BUNDLE_PATH": "/scb-o.zip"},
     {"origin.secure_connect_bundle": "/scb-o.zip"}),
    ("target-bundle", {"ZDM_TARGET_CONTACT_POINTS": "", "ZDM_TARGET_SECURE_CONNECT_BUNDLE_PATH": "/scb-t.zip"},
     {"target.secure_connect_bundle": "/scb-t.zip"}),
    ("proxy-tls", {"ZDM_PROXY_TLS_CA_PATH": "/p-ca.pem", "ZDM_PROXY_TLS_CERT_PATH": "/p.crt",
                   "ZDM_PROXY_TLS_KEY_PATH": "/p.key"},
     {"proxy.tls.ca_file": "/p-ca.pem", "proxy.tls.cert_file": "/p.crt", "proxy.tls.key_file": "/p.key"}),
    ("proxy-tls-client-auth", {**PROXY_TLS, "ZDM_PROXY_TLS_REQUIRE_CLIENT_AUTH": "true"},
     {"proxy.tls.require_client_auth": True}),
    ("metrics-enabled", {"ZDM_METRICS_ENABLED": "true"}, {"proxy.metrics_enabled": True}),
    ("metrics-address", {"ZDM_METRICS_ADDRESS": "0.0.0.0"}, {"proxy.metrics_address": "0.0.0.0"}),
    ("metrics-port", {"ZDM_METRICS_PORT": "9100"}, {"proxy.metrics_port": 9100}),
    ("metrics-prefix", {"ZDM_METRICS_PREFIX": "mig"}, {"proxy.metrics_prefix": "mig"}),
    ("log-level-debug", {"ZDM_LOG_LEVEL": "DEBUG"}, {"proxy.log_level": "debug"}),
    ("log-level-warn", {"ZDM_LOG_LEVEL": "warn"}, {"proxy.log_level": "warning"}),
    ("log-level-trace", {"ZDM_LOG_LEVEL": "TRACE"}, {"proxy.log_level": "debug"}),
    ("replace-cql-functions", {"ZDM_REPLACE_CQL_FUNCTIONS": "true"}, {"proxy.replace_cql_functions": True}),
    ("forward-client-credentials", {"ZDM_FORWARD_CLIENT_CREDENTIALS_TO_ORIGIN": "true"},
     {"proxy.forward_client_credentials_to_origin": True}),
]


DEFAULTS = [
    ("metrics-disabled", {"ZDM_METRICS_ENABLED": "false"}, {"proxy.metrics_enabled": False}),
    ("metrics-default-port", {"ZDM_METRICS_PORT": "14001"}, {"proxy.metrics_port": 14001}),
    ("log-level-info", {"ZDM_LOG_LEVEL": "info"}, {"proxy.log_level": "info"}),
    ("no-function-replacement", {"ZDM_REPLACE_CQL_FUNCTIONS": "false"}, {"proxy.replace_cql_functions": False}),
    ("no-credential-forwarding", {"ZDM_FORWARD_CLIENT_CREDENTIALS_TO_ORIGIN": "false"},
     {"proxy.forward_client_credentials_to_origin": False}),
    ("no-client-auth", {**PROXY_TLS, "ZDM_PROXY_TLS_REQUIRE_CLIENT_AUTH": "false"},
     {"proxy.tls.require_client_auth": False}),
]


@pytest.mark.parametrize("env, expected", [p[1:] for p in MAPPED + DEFAULTS],
                         ids=[p[0] for p in MAPPED + DEFAULTS])
def test_a_setting_maps_to_its_zdm_key(env, expected):
    raw = from_env(env).raw
    for key, value in expected.items():
        assert nested(raw, key) == value, key


def test_the_proxys_tls_settings_make_its_listener_tls(tmp_path):
    cert, key, ca = (tmp_path / n for n in ("p.crt", "p.key", "ca.pem"))
    for f in (cert, key, ca):
        f.write_text("x")
    config = from_env({"ZDM_PROXY_TLS_CERT_PATH": str(cert), "ZDM_PROXY_TLS_KEY_PATH": str(key),
                       "ZDM_PROXY_TLS_CA_PATH": str(ca), "ZDM_PROXY_TLS_REQUIRE_CLIENT_AUTH": "true"}).config()
    assert (config.proxy.tls.cert_file, config.proxy.tls.key_file, config.proxy.tls.ca_file,
            config.proxy.tls.require_client_auth) == (cert, key, ca, True)


# zdm-proxy's TLS rules (config.go): a cluster's TLS is off, one-way (the CA alone) or mutual
# (all three); the listener is TLS with all three paths and plaintext with none, whatever
# proxy_tls_require_client_auth says.  Each mix it refuses to start with, zdm refuses too.
TLS_MIXES = [
    ("client-auth-false-alone", {"ZDM_PROXY_TLS_REQUIRE_CLIENT_AUTH": "false"}, None),
    ("client-auth-true-alone", {"ZDM_PROXY_TLS_REQUIRE_CLIENT_AUTH": "true"}, None),
    ("empty-paths-client-auth", {"ZDM_PROXY_TLS_REQUIRE_CLIENT_AUTH": "true", "ZDM_PROXY_TLS_CA_PATH": "",
                                 "ZDM_PROXY_TLS_CERT_PATH": "", "ZDM_PROXY_TLS_KEY_PATH": " "}, None),
    ("listener-cert-alone", {"ZDM_PROXY_TLS_CERT_PATH": "/p.crt"},
     "ZDM_PROXY_TLS_CA_PATH: not set, while ZDM_PROXY_TLS_CERT_PATH is: zdm-proxy's listener is TLS only"),
    ("listener-without-ca", {"ZDM_PROXY_TLS_CERT_PATH": "/p.crt", "ZDM_PROXY_TLS_KEY_PATH": "/p.key",
                             "ZDM_PROXY_TLS_REQUIRE_CLIENT_AUTH": "false"},
     "ZDM_PROXY_TLS_CA_PATH: not set, while ZDM_PROXY_TLS_CERT_PATH and ZDM_PROXY_TLS_KEY_PATH are"),
    ("listener-ca-alone", {"ZDM_PROXY_TLS_CA_PATH": "/ca.pem"}, "ZDM_PROXY_TLS_CERT_PATH: not set, while "
     "ZDM_PROXY_TLS_CA_PATH is"),
    ("cluster-cert-without-ca", {"ZDM_ORIGIN_TLS_CLIENT_CERT_PATH": "/o.crt", "ZDM_ORIGIN_TLS_CLIENT_KEY_PATH": "/o.key"},
     "ZDM_ORIGIN_TLS_SERVER_CA_PATH: not set, while ZDM_ORIGIN_TLS_CLIENT_CERT_PATH and "
     "ZDM_ORIGIN_TLS_CLIENT_KEY_PATH are: zdm-proxy's TLS to origin is one-way"),
    ("cluster-cert-without-key", {"ZDM_TARGET_TLS_SERVER_CA_PATH": "/ca.pem", "ZDM_TARGET_TLS_CLIENT_CERT_PATH": "/t.crt"},
     "ZDM_TARGET_TLS_CLIENT_KEY_PATH: not set, while ZDM_TARGET_TLS_SERVER_CA_PATH and "
     "ZDM_TARGET_TLS_CLIENT_CERT_PATH are"),
]


@pytest.mark.parametrize("env, refusal", [m[1:] for m in TLS_MIXES], ids=[m[0] for m in TLS_MIXES])
def test_tls_is_on_as_zdm_proxy_turns_it_on(env, refusal):
    if refusal is not None:
        with pytest.raises(ConfigError) as info:
            from_env(env)
        assert str(info.value).startswith(refusal)
        assert "(PEM files)" in info.value.hint
        return
    t = from_env(env)
    config = t.config()
    assert config.proxy.tls is None and config == from_env({}).config()  # plaintext, as zdm-proxy
    assert [g.setting.name for g in t.accepted] == ["proxy_tls_require_client_auth"]
    assert t.ignored() == [f"ZDM_PROXY_TLS_REQUIRE_CLIENT_AUTH: {env['ZDM_PROXY_TLS_REQUIRE_CLIENT_AUTH']} is "
                           "ignored: without proxy_tls_ca_path, proxy_tls_cert_path and proxy_tls_key_path "
                           "zdm-proxy's listener is plaintext, and so is zdm's"]


# -- refusals --------------------------------------------------------------------------------

REFUSALS = [
    ("misspelt-variable", {"ZDM_ORIGIN_CONTACT_POINT": "x"},
     "ZDM_ORIGIN_CONTACT_POINT: is not a zdm-proxy setting", "did you mean ZDM_ORIGIN_CONTACT_POINTS?"),
    ("port-not-a-number", {"ZDM_ORIGIN_PORT": "nine"}, "ZDM_ORIGIN_PORT: must be a whole number, not 'nine'",
     None),
    ("port-out-of-range", {"ZDM_TARGET_PORT": "70000"}, "ZDM_TARGET_PORT: port 70000 is out of range", None),
    ("listen-port-zero", {"ZDM_PROXY_LISTEN_PORT": "0"}, "ZDM_PROXY_LISTEN_PORT: port 0 is out of range", None),
    ("request-timeout-zero", {"ZDM_PROXY_REQUEST_TIMEOUT_MS": "0"},
     "ZDM_PROXY_REQUEST_TIMEOUT_MS: must be a positive number of milliseconds", None),
    ("heartbeat-with-unit", {"ZDM_HEARTBEAT_INTERVAL_MS": "30s"},
     "ZDM_HEARTBEAT_INTERVAL_MS: must be a whole number, not '30s'", None),
    ("connection-timeout-negative", {"ZDM_ORIGIN_CONNECTION_TIMEOUT_MS": "-5"},
     "ZDM_ORIGIN_CONNECTION_TIMEOUT_MS: must be a positive number of milliseconds", None),
    ("max-connections-zero", {"ZDM_PROXY_MAX_CLIENT_CONNECTIONS": "0"},
     "ZDM_PROXY_MAX_CLIENT_CONNECTIONS: must be at least 1", None),
    ("no-origin-contact-points", {"ZDM_ORIGIN_CONTACT_POINTS": ""},
     "ZDM_ORIGIN_CONTACT_POINTS: not set: zdm-proxy needs origin's contact points", "comma-separated"),
    ("no-target-contact-points", {"ZDM_TARGET_CONTACT_POINTS": " "}, "ZDM_TARGET_CONTACT_POINTS: not set",
     None),
    ("empty-contact-point", {"ZDM_TARGET_CONTACT_POINTS": "10.0.0.1,,10.0.0.2"},
     "ZDM_TARGET_CONTACT_POINTS: has an empty entry", None),
    ("password-without-username", {"ZDM_ORIGIN_USERNAME": "", "ZDM_ORIGIN_PASSWORD": "pw"},
     "ZDM_ORIGIN_USERNAME: a password is set but no username", None),
    ("topology-address-not-an-ip", {"ZDM_PROXY_TOPOLOGY_ADDRESSES": "10.0.0.1,proxy-2"},
     "ZDM_PROXY_TOPOLOGY_ADDRESSES: 'proxy-2' is not an IP address", None),
    ("topology-index-past-the-end", {"ZDM_PROXY_TOPOLOGY_ADDRESSES": "10.0.0.1,10.0.0.2",
                                     "ZDM_PROXY_TOPOLOGY_INDEX": "2"},
     "ZDM_PROXY_TOPOLOGY_INDEX: index 2 is out of range for 2 proxy_topology_addresses", "its own index"),
    ("topology-index-negative", {"ZDM_PROXY_TOPOLOGY_ADDRESSES": "10.0.0.1", "ZDM_PROXY_TOPOLOGY_INDEX": "-1"},
     "ZDM_PROXY_TOPOLOGY_INDEX: index -1 is out of range", None),
    ("topology-index-without-addresses", {"ZDM_PROXY_TOPOLOGY_INDEX": "1"},
     "ZDM_PROXY_TOPOLOGY_INDEX: index 1 is out of range: without proxy_topology_addresses", None),
    ("system-queries-from-target", {"ZDM_SYSTEM_QUERIES_MODE": "TARGET"},
     "ZDM_SYSTEM_QUERIES_MODE: 'TARGET' is refused: zdm reads system tables from origin", None),
    ("read-mode-unknown", {"ZDM_READ_MODE": "DUAL_SYNC"},
     "ZDM_READ_MODE: 'DUAL_SYNC' is not one of PRIMARY_ONLY, DUAL_ASYNC_ON_SECONDARY", None),
    ("primary-cluster-unknown", {"ZDM_PRIMARY_CLUSTER": "BOTH"},
     "ZDM_PRIMARY_CLUSTER: 'BOTH' is not one of ORIGIN, TARGET", None),
    ("log-level-unknown", {"ZDM_LOG_LEVEL": "LOUD"}, "ZDM_LOG_LEVEL: 'LOUD' is not one of PANIC", None),
    ("blocking-a-version-zdm-serves", {"ZDM_BLOCKED_PROTOCOL_VERSIONS": "v2,4"},
     "ZDM_BLOCKED_PROTOCOL_VERSIONS: 'v2,4' is refused: zdm serves protocol v3, v4 and v5", None),
    ("unknown-protocol-version", {"ZDM_BLOCKED_PROTOCOL_VERSIONS": "v7"},
     "ZDM_BLOCKED_PROTOCOL_VERSIONS: 'v7' is not a protocol version", None),
    ("stream-ids", {"ZDM_PROXY_MAX_STREAM_IDS": "4096"},
     "ZDM_PROXY_MAX_STREAM_IDS: '4096' is refused: an internal tuning knob of zdm-proxy that zdm does "
     "not have; only zdm-proxy's default, 2048, is accepted", "remove ZDM_PROXY_MAX_STREAM_IDS"),
    ("worker-pool", {"ZDM_READ_MAX_WORKERS": "8"}, "ZDM_READ_MAX_WORKERS: '8' is refused", "proxy.workers"),
    ("tracing", {"ZDM_TRACING_ENABLED": "true"}, "ZDM_TRACING_ENABLED: 'true' is refused: zdm has no "
     "request tracing", None),
    ("bool-zdm-proxy-cannot-read", {"ZDM_TRACING_ENABLED": "yes"},
     "ZDM_TRACING_ENABLED: must be true or false, not 'yes'", None),
    ("num-tokens", {"ZDM_PROXY_TOPOLOGY_NUM_TOKENS": "16"}, "ZDM_PROXY_TOPOLOGY_NUM_TOKENS: '16' is refused",
     None),
]


@pytest.mark.parametrize("env, message, hint", [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_refused_with_the_setting_named(env, message, hint):
    with pytest.raises(ConfigError) as info:
        from_env(env).config()
    assert str(info.value).startswith(message)
    if hint:
        assert hint in info.value.hint


SECRET = "hunter2-do-not-print"


@pytest.mark.parametrize("env", [
    {"ZDM_ORIGIN_USERNAME": "", "ZDM_ORIGIN_PASSWORD": SECRET},
    {"ZDM_ORIGIN_USERNAME": "app", "ZDM_ORIGIN_PASSWORD": SECRET, "ZDM_ORIGIN_PORT": "x"},
    {"ZDM_ORIGIN_PASSWORD": SECRET, "ZDM_ORIGIN_PASWORD": SECRET},
], ids=["no-username", "other-error", "misspelt-twin"])
def test_a_password_is_never_part_of_a_message(env):
    with pytest.raises(ConfigError) as info:
        from_env(env).config()
    assert SECRET not in str(info.value) and SECRET not in (info.value.hint or "")


# -- primary_cluster / read_mode against the stored phase ---------------------------------------

ROUTINGS = [
    ("unset-any-phase", {}, Phase.TARGET_READS, None, None),
    ("origin-primary-only-phase-0", {"ZDM_PRIMARY_CLUSTER": "ORIGIN", "ZDM_READ_MODE": "PRIMARY_ONLY"},
     Phase.PLAN, None, None),
    ("origin-primary-only-phase-2", {"ZDM_PRIMARY_CLUSTER": "origin", "ZDM_READ_MODE": "primary_only"},
     Phase.MIGRATE, None, None),
    ("origin-primary-only-phase-3", {"ZDM_PRIMARY_CLUSTER": "ORIGIN", "ZDM_READ_MODE": "PRIMARY_ONLY"},
     Phase.ASYNC_READS,
     "ZDM_PRIMARY_CLUSTER=ORIGIN and ZDM_READ_MODE=PRIMARY_ONLY: these mean reads from origin, but the "
     "migration is in phase 3 ASYNC_READS, which reads from origin, also sent to target in the background",
     "zdm rollback --to 2"),
    ("async-reads-phase-3", {"ZDM_READ_MODE": "DUAL_ASYNC_ON_SECONDARY"}, Phase.ASYNC_READS, None, None),
    ("async-reads-phase-2", {"ZDM_READ_MODE": "DUAL_ASYNC_ON_SECONDARY"}, Phase.MIGRATE,
     "ZDM_READ_MODE=DUAL_ASYNC_ON_SECONDARY: this means reads from origin, also sent to target in the background, "
     "but the migration is in phase 2 MIGRATE", "`zdm phase advance` to phase 3 ASYNC_READS"),
    ("target-phase-4", {"ZDM_PRIMARY_CLUSTER": "TARGET"}, Phase.TARGET_READS, None, None),
    ("target-phase-1", {"ZDM_PRIMARY_CLUSTER": "TARGET", "ZDM_READ_MODE": "PRIMARY_ONLY"}, Phase.PROXY,
     "ZDM_PRIMARY_CLUSTER=TARGET and ZDM_READ_MODE=PRIMARY_ONLY: these mean reads from target, but the migration "
     "is in phase 1 PROXY, which reads from origin", "`zdm phase advance` to phase 4 TARGET_READS"),
    ("target-with-async-reads-no-phase", {"ZDM_PRIMARY_CLUSTER": "TARGET",
                                          "ZDM_READ_MODE": "DUAL_ASYNC_ON_SECONDARY"}, Phase.TARGET_READS,
     "ZDM_PRIMARY_CLUSTER=TARGET and ZDM_READ_MODE=DUAL_ASYNC_ON_SECONDARY: these mean reads from target, "
     "also sent to origin in the background", "no zdm phase routes like that"),
]


@pytest.mark.parametrize("env, phase, message, hint", [r[1:] for r in ROUTINGS], ids=[r[0] for r in ROUTINGS])
def test_routing_settings_must_match_the_stored_phase(env, phase, message, hint):
    t = from_env(env)
    if message is None:
        check_routing(t, MigrationState(phase=phase))
        return
    with pytest.raises(ConfigError) as info:
        check_routing(t, MigrationState(phase=phase))
    assert str(info.value).startswith(message)
    assert "the migration's phase decides the routing" in str(info.value)
    assert hint in info.value.hint
    assert "remove ZDM_" in info.value.hint


# -- zdm-proxy's YAML file ---------------------------------------------------------------------

#: the settings zdm-proxy's docs/assets/zdm-config-reference.yml sets (the rest is commented out there)
REFERENCE = """\
primary_cluster: ORIGIN
read_mode: PRIMARY_ONLY
origin_contact_points: 127.0.0.1
origin_port: 9042
origin_username: user1
origin_password: pass1
target_contact_points: 127.0.0.2
target_port: 9042
target_username: user2
target_password: pass2
proxy_listen_address: localhost
proxy_listen_port: 14002
# metrics_enabled: true
# origin_secure_connect_bundle_path:
"""


def write(tmp_path: Path, text: str, name: str = "zdm-config.yml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_zdm_proxy_reference_file(tmp_path):
    t = read(write(tmp_path, REFERENCE), {}, resolve=HOSTS.get)
    config = t.config()
    assert config.origin.endpoints() == [("127.0.0.1", 9042)]
    assert config.target.endpoints() == [("127.0.0.2", 9042)]
    assert config.origin.credentials == ("user1", "pass1")
    assert config.target.credentials == ("user2", "pass2")
    assert (config.proxy.listen_host, config.proxy.listen_port) == ("localhost", 14002)
    assert config.proxy.advertise_host == "127.0.0.1"
    check_routing(t, MigrationState(phase=Phase.PROXY))
    with pytest.raises(ConfigError, match="^zdm-proxy config .*: primary_cluster=ORIGIN and "
                       "read_mode=PRIMARY_ONLY: these mean reads from origin, but .* phase 4"):
        check_routing(t, MigrationState(phase=Phase.TARGET_READS))


def test_file_takes_yaml_types_and_lists(tmp_path):
    t = read(write(tmp_path, """
        origin_contact_points: [10.0.0.1, 10.0.0.2]
        target_contact_points: "10.0.1.1,10.0.1.2"
        origin_port: 9142
        origin_username: 1234
        proxy_request_timeout_ms: 2500
        metrics_enabled: false
        proxy_max_stream_ids: 2048
        origin_secure_connect_bundle_path:
    """), {})
    config = t.config()
    assert config.origin.contact_points == ("10.0.0.1", "10.0.0.2")
    assert config.target.contact_points == ("10.0.1.1", "10.0.1.2")
    assert config.origin.port == 9142 and config.origin.username == "1234"
    assert config.proxy.request_timeout_s == 2.5
    assert {g.key for g in t.accepted} >= {"proxy_max_stream_ids"}


def test_environment_overrides_the_file(tmp_path):
    path = write(tmp_path, REFERENCE)
    t = read(path, {"ZDM_ORIGIN_PORT": "9142", "ZDM_TARGET_PASSWORD": "from-env"})
    config = t.config()
    assert config.origin.port == 9142 and config.target.credentials == ("user2", "from-env")
    assert config.target.port == 9042  # the file's, not overridden
    assert t.describe() == f"zdm-proxy config {path}; from the environment: ZDM_ORIGIN_PORT, ZDM_TARGET_PASSWORD"
    with pytest.raises(ConfigError, match="^ZDM_ORIGIN_PORT: port 0 is out of range"):
        read(path, {"ZDM_ORIGIN_PORT": "0"}).config()


FILE_ERRORS = [
    ("unknown-key", "origin_contact_point: 10.0.0.1\n", "origin_contact_point: is not a zdm-proxy setting",
     "did you mean `origin_contact_points`?"),
    ("wrong-type", REFERENCE + "origin_port: abc\n", "origin_port: must be a whole number, not 'abc'", None),
    ("out-of-range", REFERENCE.replace("origin_port: 9042", "origin_port: 70000"),
     "origin_port: port 70000 is out of range", None),
    ("refused-knob", REFERENCE + "request_write_buffer_size_bytes: 65536\n",
     "request_write_buffer_size_bytes: 65536 is refused: an internal tuning knob", None),
    ("proxy-tls-half", REFERENCE + "proxy_tls_cert_path: /etc/proxy.crt\n",
     "proxy_tls_ca_path: not set, while proxy_tls_cert_path is: zdm-proxy's listener is TLS only with",
     "set proxy_tls_ca_path and proxy_tls_key_path (PEM files); or remove the ones given"),
    ("missing-contact-points", "origin_contact_points: 10.0.0.1\n", "target_contact_points: not set", None),
    ("list-of-mappings", "origin_contact_points: [{a: 1}]\ntarget_contact_points: x\n",
     "origin_contact_points: must be a string, not a mapping", None),
    ("bad-yaml", "origin_port: [9042\n", "not valid YAML at line", None),
    ("top-level-list", "- origin_port\n", "the top level must be a mapping, not a list", None),
]


@pytest.mark.parametrize("text, message, hint", [e[1:] for e in FILE_ERRORS], ids=[e[0] for e in FILE_ERRORS])
def test_file_errors_name_the_file_and_the_setting(tmp_path, text, message, hint):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        read(path, {}).config()
    assert str(info.value).startswith(f"zdm-proxy config {path}: {message}")
    if hint:
        assert hint in info.value.hint


def test_file_password_of_the_wrong_type_is_not_shown(tmp_path):
    path = write(tmp_path, REFERENCE.replace("origin_password: pass1", "origin_password: {" + SECRET + ": 1}"))
    with pytest.raises(ConfigError) as info:
        read(path, {}).config()
    assert "origin_password: must be a string, not a mapping" in str(info.value)
    assert SECRET not in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="zdm-proxy config .*nope.yml: file not found"):
        read(tmp_path / "nope.yml", {})


# -- where the proxy's configuration comes from -----------------------------------------------

ENV = {**BASE, "ZDM_ORIGIN_PORT": "9142"}


def test_without_zdm_yaml_the_environment_configures_the_proxy(tmp_path):
    config, t = proxy_config(None, None, {**ENV, "PATH": "/bin", "ZDM_DEBUG": "1"},
                             default=tmp_path / "zdm.yaml")
    assert t is not None and config.origin.port == 9142
    assert t.describe() == "zdm-proxy's environment variables (3 set)"


def test_without_zdm_yaml_or_variables_the_file_is_missing(tmp_path):
    with pytest.raises(ConfigError) as info:
        proxy_config(None, None, {"PATH": "/bin", "ZDM_DEBUG": "1"}, default=tmp_path / "zdm.yaml")
    assert "zdm.yaml: file not found" in str(info.value)
    assert "zdm init" in info.value.hint and "ZDM_*" in info.value.hint


def test_a_misspelt_variable_alone_still_gets_did_you_mean(tmp_path):
    with pytest.raises(ConfigError) as info:
        proxy_config(None, None, {"ZDM_ORGIN_CONTACT_POINTS": "x"}, default=tmp_path / "zdm.yaml")
    assert "did you mean ZDM_ORIGIN_CONTACT_POINTS?" in info.value.hint


def test_zdm_yaml_wins_and_refuses_zdm_proxy_variables_beside_it(tmp_path):
    zdm_yaml_path = write(tmp_path, "origin: {username: app, password_env: ZDM_ORIGIN_PASSWORD}\n", "zdm.yaml")
    environ = {"ZDM_ORIGIN_PASSWORD": SECRET, "ZDM_CONFIG": "x", "ZDM_TEST_ORIGIN_PORT": "1"}
    config, t = proxy_config(None, None, environ, default=zdm_yaml_path)  # the password it reads: fine
    assert t is None and config.origin.credentials == ("app", SECRET) and config.target.port == 9043
    with pytest.raises(ConfigError) as info:
        proxy_config(None, None, {**environ, **ENV, "ZDM_TARGET_USERNAME": ""}, default=zdm_yaml_path)
    assert str(info.value).startswith(
        f"{zdm_yaml_path}: zdm-proxy's settings are set in the environment too (ZDM_ORIGIN_CONTACT_POINTS, "
        "ZDM_ORIGIN_PORT, ZDM_TARGET_CONTACT_POINTS)")
    assert SECRET not in str(info.value)


def test_an_explicit_zdm_yaml_must_exist(tmp_path):
    with pytest.raises(ConfigError, match="other.yaml: file not found"):
        proxy_config(tmp_path / "other.yaml", None, ENV, default=tmp_path / "zdm.yaml")


def test_zdm_proxy_file_is_refused_beside_a_zdm_yaml(tmp_path):
    theirs = write(tmp_path, REFERENCE)
    for config, default in ((tmp_path / "given.yaml", tmp_path / "none.yaml"),
                            (None, write(tmp_path, "{}\n", "zdm.yaml"))):
        with pytest.raises(ConfigError) as info:
            proxy_config(config, theirs, {}, default=default)
        assert str(info.value).startswith("--zdm-proxy-config: a zdm.yaml is given too")
    config, t = proxy_config(None, theirs, {"ZDM_PROXY_LISTEN_PORT": "14009"}, default=tmp_path / "none.yaml")
    assert config.proxy.listen_port == 14009 and t.overridden == ("ZDM_PROXY_LISTEN_PORT",)


# -- zdm init --from-zdm-proxy -----------------------------------------------------------------

def test_written_zdm_yaml_is_equivalent_and_names_each_source(tmp_path):
    path = write(tmp_path, REFERENCE + textwrap.dedent("""\
        proxy_topology_addresses: 10.0.2.1,10.0.2.2
        proxy_topology_index: 1
        proxy_listen_address: 0.0.0.0
        proxy_request_timeout_ms: 2500
        origin_local_datacenter: dc1
        proxy_max_stream_ids: 2048
    """).replace("proxy_listen_address: localhost\n", ""))
    t = read(path, {})
    text = zdm_yaml(t)
    out = write(tmp_path, text, "zdm.yaml")
    loaded = load_config(out, environ={"ZDM_ORIGIN_PASSWORD": "pass1", "ZDM_TARGET_PASSWORD": "pass2"})
    expected = t.config()
    for name in ("origin", "target"):
        assert dataclasses.replace(attr(loaded, name), password_env=None) == attr(expected, name)
    assert loaded.proxy == expected.proxy
    assert loaded.proxy.instances == ("10.0.2.1:14002", "10.0.2.2:14002")
    assert "pass1" not in text and "pass2" not in text
    lines = {line.split(":")[0].strip(): line for line in text.splitlines() if line.startswith("  ")}
    assert lines["request_timeout_s"].endswith("# proxy_request_timeout_ms")
    assert lines["heartbeat_interval_s"].endswith("# heartbeat_interval_ms (default)")
    assert lines["password_env"].endswith("export ZDM_TARGET_PASSWORD")
    assert lines["advertise_host"].split("#")[1].startswith(" proxy_topology_index")
    assert "#   proxy_max_stream_ids: 2048" in text
    assert "primary_cluster: ORIGIN, read_mode: PRIMARY_ONLY: in zdm the migration's phase decides" in text
