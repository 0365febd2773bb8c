"""zdm-proxy's settings, one table: each of them, its kind of value, and what zdm does with it.

Theory of operation: :data:`SETTINGS` is the one table of every setting zdm-proxy (2.x) has,
by its YAML key; its environment variable is ``ZDM_`` + the key in upper case.  Each entry
says what zdm does with it:

* **maps**: to a zdm key, with a conversion (milliseconds to seconds, a comma list to a
  list).  An unset setting takes zdm-proxy's default, so the result behaves as zdm-proxy
  would: zdm-proxy's target port is 9042 (zdm's 9043), its connection timeout 30 s (zdm's
  10 s), it listens on ``localhost``.  An empty value is unset, as in zdm-proxy; empty
  credentials mean "no login".
* **default only**: a zdm-proxy knob zdm has no equivalent for (buffer and queue sizes,
  worker pools, stream ids, tracing, ...): its default is accepted and ignored (with a note
  saying why, logged when the proxy starts and written into ``zdm init``'s zdm.yaml), any
  other value is refused, naming the setting and why.
* **routing** (``primary_cluster``, ``read_mode``): in zdm the migration's phase decides
  where reads go, not a setting.  When either is given,
  :func:`zdm.config.zdmproxy_routing.check_routing` compares the routing they mean with the
  stored phase's when the proxy starts, and refuses a mismatch.
* **topology** (``proxy_topology_addresses``, ``proxy_topology_index``): every instance's
  ``IP:listen port`` becomes ``proxy.instances``, the indexed one ``proxy.advertise_host``.

TLS follows zdm-proxy's rules (its ``config.go``), not each path on its own: a cluster's TLS
is off, one-way (its CA alone) or mutual (CA, certificate and key); the proxy's listener is
plaintext or TLS with CA, certificate and key all set.  Any other mix zdm-proxy refuses to
start with, and so does zdm.  ``proxy_tls_require_client_auth`` without the listener's paths
does nothing in zdm-proxy (it starts, plaintext): zdm ignores it too, with a note
(:attr:`Setting.needs`).

A :class:`Kind` parses a value as zdm-proxy would, from an environment string or a YAML
scalar alike, and its error never quotes a secret.  The table is data: reading
(:mod:`zdm.config.zdmproxy_read`), translating (:mod:`zdm.config.zdmproxy_translate`) and
rendering (:mod:`zdm.config.zdmproxy_render`) all follow it, and add no setting of their own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

ENV_PREFIX = "ZDM_"


# -- value kinds: each parses an environment string or a YAML scalar ------------------------

@dataclass(frozen=True)
class Kind:
    parse: Callable[[Any], Any]  # raises ValueError(what is wrong), never quoting a secret


def _text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"must be a string, not {type_name(value)}")
    return str(value)


def _whole(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+\s*", value):
        return int(value)
    raise ValueError(f"must be a whole number, not {value!r}")


def _number(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*", value):
        return float(value)
    raise ValueError(f"must be a number, not {value!r}")


_TRUE = {"1", "t", "true"}  # Go's strconv.ParseBool, as zdm-proxy reads them
_FALSE = {"0", "f", "false"}


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"must be true or false, not {value!r}")


def _millis(value: Any) -> int:
    ms = _whole(value)
    if ms <= 0:
        raise ValueError(f"must be a positive number of milliseconds, not {ms}")
    return ms


def _names(value: Any) -> tuple[str, ...]:
    """A comma-separated list (zdm-proxy drops every space), or a YAML list."""
    items = value if isinstance(value, list) else _text(value).split(",")
    names = tuple(_text(item).replace(" ", "") for item in items)
    if not all(names):
        raise ValueError(f"has an empty entry: {value!r}")
    return names


def _buckets(value: Any) -> tuple[float, ...]:
    items = value if isinstance(value, list) else _text(value).split(",")
    try:
        return tuple(_number(item) for item in items)
    except ValueError:
        raise ValueError(f"must be a comma-separated list of numbers, not {value!r}") from None


def _choice(*names: str) -> Kind:
    canonical = {n.lower(): n for n in names}

    def parse(value: Any) -> str:
        text = _text(value).strip()
        if text.lower() not in canonical:
            raise ValueError(f"{text!r} is not one of {', '.join(names)}")
        return canonical[text.lower()]
    return Kind(parse)


TEXT, WHOLE, NUMBER, FLAG, MILLIS, NAMES, BUCKETS = (
    Kind(_text), Kind(_whole), Kind(_number), Kind(_flag), Kind(_millis), Kind(_names), Kind(_buckets))

_LOG_LEVELS = {"PANIC": "error", "FATAL": "error", "ERROR": "error", "WARN": "warning",
               "WARNING": "warning", "INFO": "info", "DEBUG": "debug", "TRACE": "debug"}
#: protocol versions zdm refuses anyway (it serves v3, v4 and v5), as zdm-proxy spells them
_VERSIONS_ZDM_REFUSES = {"2", "v2", "dsev1", "dse_v1", "dsev2", "dse_v2"}
_VERSIONS = _VERSIONS_ZDM_REFUSES | {"3", "v3", "4", "v4", "5", "v5"}


def _versions(value: Any) -> tuple[str, ...]:
    names = tuple(n for n in _text(value).replace(" ", "").split(",") if n)
    for name in names:
        if name.lower() not in _VERSIONS:
            raise ValueError(f"{name!r} is not a protocol version zdm-proxy knows (2, 3, 4, 5, "
                             "DseV1, DseV2)")
    return names



# -- the table ------------------------------------------------------------------------------

ROUTING, TOPOLOGY = "routing", "topology"
TUNING = "an internal tuning knob of zdm-proxy that zdm does not have"
_NO_TRACING = "zdm has no request tracing"
_NO_HISTOGRAMS = "zdm's latency histograms have zdm-proxy's default buckets, and only those"
_RETRIES = "zdm retries a lost control connection once a second, with no back-off to tune"


@dataclass(frozen=True)
class Setting:
    """One zdm-proxy setting and what zdm does with it (see the module's docstring)."""

    name: str                      # zdm-proxy's YAML key
    kind: Kind
    default: Any                   # zdm-proxy's default, parsed; None: it has none
    key: str | None = None         # the zdm key it maps to
    convert: Callable[[Any], Any] = lambda value: value
    #: further zdm keys (and values) a given value implies
    also: tuple[tuple[str, Any], ...] = ()
    #: unset, it is written with zdm-proxy's default (False: left to zdm's)
    write_default: bool = True
    #: default-only: which values are fine (None: zdm-proxy's default alone)
    accepts: Callable[[Any], bool] | None = None
    reason: str = ""               # default-only: why other values are refused
    hint: str | None = None        # what to do instead of a refused value
    role: str | None = None        # ROUTING or TOPOLOGY: handled by its own rule
    secret: bool = False
    #: mapped only when these settings are given too; without them zdm-proxy ignores it, and
    #: so does zdm (``reason`` says why)
    needs: tuple[str, ...] = ()

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def status(self) -> str:
        if self.role:
            return self.role
        if self.key is None:
            return "default only"
        return "maps"


def _maps(name: str, kind: Kind, default: Any, key: str, convert=None, **kw: Any) -> Setting:
    return Setting(name, kind, default, key, **({"convert": convert} if convert else {}), **kw)


def _fixed(name: str, kind: Kind, default: Any, reason: str = TUNING, **kw: Any) -> Setting:
    return Setting(name, kind, default, reason=reason, **kw)


def _seconds(ms: int) -> float:
    return ms / 1000


def _cluster(c: str) -> tuple[Setting, ...]:
    no_hostname = ((f"{c}.tls.verify_hostname", False),)  # zdm-proxy verifies no host names
    return (
        _maps(f"{c}_contact_points", NAMES, None, f"{c}.contact_points", list),
        _maps(f"{c}_port", WHOLE, 9042, f"{c}.port"),
        _maps(f"{c}_secure_connect_bundle_path", TEXT, None, f"{c}.secure_connect_bundle"),
        _maps(f"{c}_local_datacenter", TEXT, None, f"{c}.local_dc"),
        _maps(f"{c}_username", TEXT, None, f"{c}.username"),
        _maps(f"{c}_password", TEXT, None, f"{c}.password", secret=True),
        _maps(f"{c}_connection_timeout_ms", MILLIS, 30000, f"{c}.connect_timeout_s", _seconds),
        _maps(f"{c}_tls_server_ca_path", TEXT, None, f"{c}.tls.ca_file", also=no_hostname),
        _maps(f"{c}_tls_client_cert_path", TEXT, None, f"{c}.tls.cert_file", also=no_hostname),
        _maps(f"{c}_tls_client_key_path", TEXT, None, f"{c}.tls.key_file", also=no_hostname),
        _fixed(f"{c}_enable_host_assignment", FLAG, True),
    )


#: zdm-proxy's listener is TLS only with all three (config.go's ParseProxyTlsConfig)
PROXY_TLS = ("proxy_tls_ca_path", "proxy_tls_cert_path", "proxy_tls_key_path")
_DEFAULT_BUCKETS = (1.0, 4.0, 7.0, 10.0, 25.0, 40.0, 60.0, 80.0, 100.0, 150.0, 250.0, 500.0,
                    1000.0, 2500.0, 5000.0, 10000.0, 15000.0)
_WORKERS_HINT = "remove it; zdm's `proxy.workers` (or `zdm proxy start --workers N`) sets its processes"

SETTINGS: tuple[Setting, ...] = (
    # global
    Setting("primary_cluster", _choice("ORIGIN", "TARGET"), "ORIGIN", role=ROUTING),
    Setting("read_mode", _choice("PRIMARY_ONLY", "DUAL_ASYNC_ON_SECONDARY"), "PRIMARY_ONLY", role=ROUTING),
    _maps("replace_cql_functions", FLAG, False, "proxy.replace_cql_functions"),
    _fixed("async_handshake_timeout_ms", WHOLE, 4000),
    _maps("log_level", _choice(*_LOG_LEVELS), "INFO", "proxy.log_level", _LOG_LEVELS.get),
    _fixed("control_conn_max_protocol_version", _choice("2", "3", "4", "5", "DseV1", "DseV2"), "DseV2",
           "zdm negotiates each connection's protocol version; origin.protocol_version pins one"),
    _fixed("blocked_protocol_versions", Kind(_versions), (),
           "zdm serves protocol v3, v4 and v5 and tells older and DSE clients to downgrade; it cannot "
           "block v3, v4 or v5", accepts=lambda names: all(n.lower() in _VERSIONS_ZDM_REFUSES for n in names)),
    # tracing
    _fixed("tracing_enabled", FLAG, False, _NO_TRACING),
    _fixed("tracing_rate_limit", WHOLE, 0, _NO_TRACING),
    _fixed("tracing_request_id_key", TEXT, "request-id", _NO_TRACING),
    # topology (system.peers virtualisation)
    Setting("proxy_topology_index", WHOLE, 0, role=TOPOLOGY),
    Setting("proxy_topology_addresses", NAMES, None, role=TOPOLOGY),
    _fixed("proxy_topology_num_tokens", WHOLE, 8, "zdm gives each proxy instance one token of an evenly "
           "split ring"),
    # origin, target
    *_cluster("origin"),
    *_cluster("target"),
    # proxy
    _maps("proxy_listen_address", TEXT, "localhost", "proxy.listen_host"),
    _maps("proxy_listen_port", WHOLE, 14002, "proxy.listen_port"),
    _maps("proxy_request_timeout_ms", MILLIS, 10000, "proxy.request_timeout_s", _seconds),
    _maps("proxy_max_client_connections", WHOLE, 1000, "proxy.max_client_connections"),
    _fixed("proxy_max_stream_ids", WHOLE, 2048),
    _maps("proxy_tls_ca_path", TEXT, None, "proxy.tls.ca_file"),
    _maps("proxy_tls_cert_path", TEXT, None, "proxy.tls.cert_file"),
    _maps("proxy_tls_key_path", TEXT, None, "proxy.tls.key_file"),
    _maps("proxy_tls_require_client_auth", FLAG, False, "proxy.tls.require_client_auth",
          write_default=False, needs=PROXY_TLS,
          reason="without proxy_tls_ca_path, proxy_tls_cert_path and proxy_tls_key_path zdm-proxy's "
                 "listener is plaintext, and so is zdm's"),
    # metrics
    _maps("metrics_enabled", FLAG, True, "proxy.metrics_enabled"),
    _maps("metrics_address", TEXT, "localhost", "proxy.metrics_address"),
    _maps("metrics_port", WHOLE, 14001, "proxy.metrics_port"),
    _maps("metrics_prefix", TEXT, "zdm", "proxy.metrics_prefix"),
    _fixed("metrics_origin_latency_buckets_ms", BUCKETS, _DEFAULT_BUCKETS, _NO_HISTOGRAMS),
    _fixed("metrics_target_latency_buckets_ms", BUCKETS, _DEFAULT_BUCKETS, _NO_HISTOGRAMS),
    _fixed("metrics_async_read_latency_buckets_ms", BUCKETS, _DEFAULT_BUCKETS, _NO_HISTOGRAMS),
    # heartbeats
    _maps("heartbeat_interval_ms", MILLIS, 30000, "proxy.heartbeat_interval_s", _seconds),
    _fixed("heartbeat_retry_interval_min_ms", WHOLE, 250, _RETRIES),
    _fixed("heartbeat_retry_interval_max_ms", WHOLE, 30000, _RETRIES),
    _fixed("heartbeat_retry_backoff_factor", NUMBER, 2.0, _RETRIES),
    _fixed("heartbeat_failure_threshold", WHOLE, 1),
    # zdm-proxy's own "unsupported" settings
    _fixed("system_queries_mode", _choice("ORIGIN", "TARGET"), "ORIGIN",
           "zdm reads system tables from origin and answers system.local/peers itself"),
    _maps("forward_client_credentials_to_origin", FLAG, False, "proxy.forward_client_credentials_to_origin"),
    # zdm-proxy's performance tuning
    _fixed("request_write_queue_size_frames", WHOLE, 128),
    _fixed("request_write_buffer_size_bytes", WHOLE, 4096),
    _fixed("request_read_buffer_size_bytes", WHOLE, 32768),
    _fixed("response_write_queue_size_frames", WHOLE, 128),
    _fixed("response_write_buffer_size_bytes", WHOLE, 8192),
    _fixed("response_read_buffer_size_bytes", WHOLE, 32768),
    _fixed("request_response_max_workers", WHOLE, -1, hint=_WORKERS_HINT),
    _fixed("write_max_workers", WHOLE, -1, hint=_WORKERS_HINT),
    _fixed("read_max_workers", WHOLE, -1, hint=_WORKERS_HINT),
    _fixed("listener_max_workers", WHOLE, -1, hint=_WORKERS_HINT),
    _fixed("event_queue_size_frames", WHOLE, 12),
    _fixed("async_connector_write_queue_size_frames", WHOLE, 2048),
    _fixed("async_connector_write_buffer_size_bytes", WHOLE, 4096),
)
BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
BY_ENV: dict[str, Setting] = {s.env: s for s in SETTINGS}
BY_KEY: dict[str, Setting] = {s.key: s for s in SETTINGS if s.key}


# -- values as zdm-proxy's documentation writes them ------------------------------------------

def show(value: Any) -> str:
    """A setting's value in a message or a comment: ``true``, ``1, 4, 7``, ``30000``."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ", ".join(show(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def type_name(value: Any) -> str:
    """What a YAML value is, in a message saying it is the wrong thing."""
    return {dict: "a mapping", list: "a list", type(None): "empty"}.get(type(value), type(value).__name__)
