"""zdm-proxy's configuration, read by zdm: its ``ZDM_*`` environment variables and its YAML file.

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
  where reads go, not a setting.  When either is given, :func:`check_routing` compares the
  routing they mean with the stored phase's when the proxy starts, and refuses a mismatch.
* **topology** (``proxy_topology_addresses``, ``proxy_topology_index``): every instance's
  ``IP:listen port`` becomes ``proxy.instances``, the indexed one ``proxy.advertise_host``.

TLS follows zdm-proxy's rules (its ``config.go``), not each path on its own: a cluster's TLS
is off, one-way (its CA alone) or mutual (CA, certificate and key); the proxy's listener is
plaintext or TLS with CA, certificate and key all set.  Any other mix zdm-proxy refuses to
start with, and so does zdm.  ``proxy_tls_require_client_auth`` without the listener's paths
does nothing in zdm-proxy (it starts, plaintext): zdm ignores it too, with a note
(:attr:`Setting.needs`).

The environment and the file go through the same table (:func:`read`; a variable wins over
the file's key) into :class:`Translation`, whose ``raw`` mapping is exactly what
:func:`zdm.config.parse_config` takes: zdm's validation stays there, and its errors are
restated under the zdm-proxy setting's name (``ZDM_ORIGIN_PORT: ...`` or
``zdm-proxy config FILE: origin_port: ...``).  A password is never part of a message.

Where the proxy's configuration comes from (:func:`proxy_config`):

1. ``--zdm-proxy-config FILE``: that file, each key overridden by its ``ZDM_*`` variable;
   refused next to a zdm.yaml (``--config`` or ``./zdm.yaml``).
2. else a zdm.yaml (``--config``/``ZDM_CONFIG``, or ``./zdm.yaml``) alone: zdm-proxy
   variables set beside it are refused by name (except the ``password_env`` ones it reads).
3. else zdm-proxy's ``ZDM_*`` variables alone.

In 1 and 3, a ``ZDM_*`` variable that is neither zdm-proxy's nor zdm's own is refused
("did you mean").  ``state_dir`` is zdm's default, ``.zdm/state`` in the working directory.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from zdm.config import DEFAULT_CONFIG_PATH, Config, load_config, parse_config
from zdm.errors import ConfigError
from zdm.phases.model import Cluster, Phase, ReadMode, Routing, routing_for

ENV_PREFIX = "ZDM_"
#: zdm's own variables: never taken for a misspelt zdm-proxy setting
ZDM_OWN_VARIABLES = frozenset({"ZDM_CONFIG", "ZDM_DEBUG", "ZDM_CACHE_DIR", "ZDM_JAVA",
                               "ZDM_KEEP_SANDBOX"})
_ZDM_OWN_PREFIXES = ("ZDM_TEST_",)


# -- value kinds: each parses an environment string or a YAML scalar ------------------------

@dataclass(frozen=True)
class Kind:
    parse: Callable[[Any], Any]  # raises ValueError(what is wrong), never quoting a secret


def _text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"must be a string, not {_type_name(value)}")
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
_PROXY_TLS = ("proxy_tls_ca_path", "proxy_tls_cert_path", "proxy_tls_key_path")
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
          write_default=False, needs=_PROXY_TLS,
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


# -- reading: the environment and the file ----------------------------------------------------

@dataclass(frozen=True)
class Given:
    """A setting's value as given, and where: a variable (``path`` is its name) or a file's key."""

    setting: Setting
    value: Any
    path: str
    key: str | None = None

    @property
    def label(self) -> str:
        return self.key or self.path

    @property
    def shown(self) -> str:
        return "(hidden)" if self.setting.secret else repr(self.value)

    def error(self, message: str, hint: str | None = None) -> ConfigError:
        return ConfigError(message, path=self.path, key=self.key, hint=hint)


def _unset(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def is_zdm_proxy_variable(name: str) -> bool:
    """``ZDM_*`` and not one of zdm's own: a zdm-proxy setting, or meant to be one."""
    return (name.startswith(ENV_PREFIX) and name not in ZDM_OWN_VARIABLES
            and not name.startswith(_ZDM_OWN_PREFIXES))


def from_environ(environ: Mapping[str, str]) -> dict[str, Given]:
    given = {}
    for name in sorted(environ):
        if not is_zdm_proxy_variable(name):
            continue
        setting = BY_ENV.get(name)
        if setting is None:
            close = difflib.get_close_matches(name, sorted(BY_ENV), n=1)
            raise ConfigError("is not a zdm-proxy setting zdm knows", path=name,
                              hint=f"did you mean {close[0]}?" if close else
                              "unset it; zdm-proxy's settings are listed in zdm/zdmproxy_settings.py")
        if not _unset(environ[name]):
            given[setting.name] = Given(setting, environ[name], name)
    return given


def from_file(path: Path) -> dict[str, Given]:
    where = f"zdm-proxy config {path}"
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("file not found", path=where, hint="pass the path of zdm-proxy's YAML file") \
            from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"not valid YAML{at}: {getattr(exc, 'problem', None) or exc}", path=where) \
            from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", path=where) from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError(f"the top level must be a mapping, not {_type_name(doc)}", path=where)
    given = {}
    for key, value in doc.items():
        setting = BY_NAME.get(str(key))
        if setting is None:
            close = difflib.get_close_matches(str(key), sorted(BY_NAME), n=1)
            raise ConfigError("is not a zdm-proxy setting zdm knows", path=where, key=str(key),
                              hint=f"did you mean `{close[0]}`?" if close else "remove it")
        if not _unset(value):
            given[setting.name] = Given(setting, value, where, str(key))
    return given


# -- translating ---------------------------------------------------------------------------

@dataclass
class Translation:
    """zdm-proxy's settings as zdm's ``raw`` configuration, with where each zdm key came from."""

    raw: dict[str, Any]
    #: zdm key -> the given setting it came from, or the Setting whose default it is
    sources: dict[str, Given | Setting]
    file: Path | None = None
    given: dict[str, Given] = field(default_factory=dict)
    #: given settings that need no zdm key (each Setting's ``reason`` says why): zdm-proxy's
    #: default of a knob zdm does not have, or a setting zdm-proxy itself ignores there
    accepted: list[Given] = field(default_factory=list)
    #: the routing ``primary_cluster`` / ``read_mode`` ask for, and those given
    routing: Routing | None = None
    routing_from: tuple[Given, ...] = ()
    notes: dict[str, str] = field(default_factory=dict)
    #: variables that overrode the file's keys
    overridden: tuple[str, ...] = ()

    def config(self) -> Config:
        """The validated zdm configuration; a problem is named by its zdm-proxy setting."""
        try:
            return parse_config(self.raw, path=None, environ={})
        except ConfigError as exc:
            raise self._restate(exc) from None

    def locate(self, setting: Setting) -> tuple[str, str | None]:
        """(path, key) naming a setting that was not given."""
        if self.file is not None:
            return f"zdm-proxy config {self.file}", setting.name
        return setting.env, None

    def label(self, setting: Setting) -> str:
        """A setting's name where it was given, or would be: its file key or its variable."""
        g = self.given.get(setting.name)
        return g.label if g is not None else (self.locate(setting)[1] or setting.env)

    def ignored(self) -> list[str]:
        """One note per given setting zdm has no equivalent of, saying why that is fine."""
        return [f"{g.label}: {_show(g.value)} is ignored: {g.setting.reason}" for g in self.accepted]

    def _restate(self, exc: ConfigError) -> ConfigError:
        key = re.sub(r"\[\d+\]$", "", exc.key or "")
        while key and key not in self.sources and key not in BY_KEY:
            key = key.rpartition(".")[0]
        if not key:
            return exc
        source = self.sources.get(key)
        if source is None:  # about a setting that was not given
            path, name = self.locate(BY_KEY[key])
            return ConfigError(exc.reason, path=path, key=name, hint=exc.hint)
        if isinstance(source, Given):
            return source.error(exc.reason, exc.hint)
        path, name = self.locate(source)
        return ConfigError(f"{exc.reason} (zdm-proxy's default)", path=path, key=name, hint=exc.hint)

    def describe(self) -> str:
        if self.file is None:
            return f"zdm-proxy's environment variables ({len(self.given)} set)"
        over = f"; from the environment: {', '.join(self.overridden)}" if self.overridden else ""
        return f"zdm-proxy config {self.file}{over}"


def read(file: Path | None, environ: Mapping[str, str], *,
         resolve: Callable[[str], str | None] | None = None) -> Translation:
    """zdm-proxy's settings from ``file`` (if any) and ``environ`` (which wins), translated."""
    from_env = from_environ(environ)
    given = {**(from_file(file) if file is not None else {}), **from_env}
    overridden = tuple(g.path for g in from_env.values()) if file is not None else ()
    t = translate(given, file=file, resolve=resolve)
    t.overridden = overridden
    return t


def translate(given: Mapping[str, Given], *, file: Path | None = None,
              resolve: Callable[[str], str | None] | None = None) -> Translation:
    t = Translation(raw={}, sources={}, file=file, given=dict(given))
    values = {}
    for name, g in given.items():
        try:
            values[name] = g.setting.kind.parse(g.value)
        except ValueError as exc:
            raise g.error(str(exc)) from None

    def put(key: str, value: Any, source: Given | Setting) -> None:
        *parents, leaf = key.split(".")
        node = t.raw
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
        t.sources[key] = source

    for s in SETTINGS:
        g = given.get(s.name)
        if s.role:
            continue
        if g is None:
            bundled = s.name in ("origin_port", "target_port") and \
                f"{s.name[:-len('_port')]}_secure_connect_bundle_path" in given  # the bundle names it
            if s.key and s.default is not None and s.write_default and not bundled:
                put(s.key, s.convert(s.default), s)
            continue
        value = values[s.name]
        if s.needs and not all(n in given for n in s.needs):
            t.accepted.append(g)  # as zdm-proxy, which ignores it without them
            continue
        if s.key is None:
            if not (s.accepts(value) if s.accepts else value == s.default):
                default = f", {_show(s.default)}," if s.default not in (None, ()) else ""
                raise g.error(f"{g.shown} is refused: {s.reason}; only zdm-proxy's default{default} "
                              "is accepted",
                              hint=s.hint or f"remove {g.label}")
            t.accepted.append(g)
        else:
            put(s.key, s.convert(value), g)
            for key, implied in s.also:
                put(key, implied, g)
    _tls_complete(t, given)
    for cluster in ("origin", "target"):
        if f"{cluster}_contact_points" not in given and f"{cluster}_secure_connect_bundle_path" not in given:
            path, key = t.locate(BY_NAME[f"{cluster}_contact_points"])
            raise ConfigError(f"not set: zdm-proxy needs {cluster}'s contact points (or a secure "
                              "connect bundle)", path=path, key=key,
                              hint=f"set it to {cluster}'s hosts, comma-separated, e.g. 10.0.0.1,10.0.0.2")
    _topology(t, given, values, resolve or first_ipv4)
    _routing(t, given, values)
    return t


def _tls_complete(t: Translation, given: Mapping[str, Given]) -> None:
    """Refuse the TLS paths zdm-proxy refuses: a client certificate or key without the CA
    and its pair (a cluster's TLS is the CA alone, or all three), and some of the listener's
    three without the others."""
    for side in ("origin", "target"):
        paths = (f"{side}_tls_server_ca_path", f"{side}_tls_client_cert_path", f"{side}_tls_client_key_path")
        if paths[1] in given or paths[2] in given:
            _all_or_refuse(t, given, paths, f"zdm-proxy's TLS to {side} is one-way ({paths[0]} alone) "
                           f"or mutual ({paths[0]}, {paths[1]} and {paths[2]}); it refuses other mixes",
                           "" if paths[0] in given else f"{paths[0]} is the CA that signed {side}'s "
                           "node certificates")
    if any(n in given for n in _PROXY_TLS):
        _all_or_refuse(t, given, _PROXY_TLS, "zdm-proxy's listener is TLS only with proxy_tls_ca_path, "
                       "proxy_tls_cert_path and proxy_tls_key_path all set; it refuses some without "
                       "the others", "or remove the ones given for a plaintext listener")


def _all_or_refuse(t: Translation, given: Mapping[str, Given], names: tuple[str, ...], rule: str,
                   advice: str) -> None:
    missing = [n for n in names if n not in given]
    if not missing:
        return
    present = [given[n].label for n in names if n in given]
    path, key = t.locate(BY_NAME[missing[0]])
    raise ConfigError(f"not set, while {' and '.join(present)} {'is' if len(present) == 1 else 'are'}: "
                      f"{rule}", path=path, key=key,
                      hint=f"set {' and '.join(t.label(BY_NAME[n]) for n in missing)} "
                           f"(PEM files){'; ' + advice if advice else ''}")


def _topology(t: Translation, given: Mapping[str, Given], values: dict, resolve) -> None:
    port = values.get("proxy_listen_port", 14002)
    index_given = given.get("proxy_topology_index")
    index = values.get("proxy_topology_index", 0)
    addresses_given = given.get("proxy_topology_addresses")
    if addresses_given is not None:
        addresses = values["proxy_topology_addresses"]
        for address in addresses:
            if not _is_ip(address):
                raise addresses_given.error(f"{address!r} is not an IP address (zdm-proxy takes the "
                                            "proxy instances' IP addresses, comma-separated)")
        if not 0 <= index < len(addresses):
            raise (index_given or addresses_given).error(
                f"index {index} is out of range for {len(addresses)} proxy_topology_addresses "
                f"(0 to {len(addresses) - 1})",
                hint="give each proxy instance its own index in proxy_topology_addresses, from 0")
        t.raw.setdefault("proxy", {})["instances"] = [f"{a}:{port}" for a in addresses]
        t.sources["proxy.instances"] = addresses_given
        t.raw["proxy"]["advertise_host"] = addresses[index]
        t.sources["proxy.advertise_host"] = index_given or addresses_given
        t.notes["proxy.advertise_host"] = "proxy_topology_addresses[proxy_topology_index]"
        return
    if index != 0:
        raise index_given.error(f"index {index} is out of range: without proxy_topology_addresses "
                                "there is one proxy instance, index 0")
    listen = values.get("proxy_listen_address", "localhost")
    if not _is_ip(listen):
        # zdm-proxy tells drivers the listen address's first IPv4 address (or 127.0.0.1)
        t.raw.setdefault("proxy", {})["advertise_host"] = resolve(listen) or "127.0.0.1"
        t.sources["proxy.advertise_host"] = given.get("proxy_listen_address") or BY_NAME["proxy_listen_address"]
        t.notes["proxy.advertise_host"] = f"{listen} resolved to IPv4, as zdm-proxy does"


def _routing(t: Translation, given: Mapping[str, Given], values: dict) -> None:
    t.routing_from = tuple(given[n] for n in ("primary_cluster", "read_mode") if n in given)
    if not t.routing_from:
        return
    primary = Cluster.TARGET if values.get("primary_cluster") == "TARGET" else Cluster.ORIGIN
    mode = ReadMode.DUAL_ASYNC if values.get("read_mode") == "DUAL_ASYNC_ON_SECONDARY" else \
        ReadMode.PRIMARY_ONLY
    t.routing = Routing(primary, mode)


def first_ipv4(host: str) -> str | None:
    try:
        infos = socket.getaddrinfo(host, None, socket.AF_INET)
    except OSError:
        return None
    return infos[0][4][0] if infos else None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# -- routing: the phase decides --------------------------------------------------------------

def describe_routing(routing: Routing) -> str:
    text = f"reads from {routing.primary.value}"
    if routing.read_mode is ReadMode.DUAL_ASYNC:
        other = Cluster.TARGET if routing.primary is Cluster.ORIGIN else Cluster.ORIGIN
        text += f", also sent to {other.value} in the background"
    return text


def phases_with(routing: Routing) -> list[Phase]:
    """The phases a proxy serves (not 5, where it is retired) that route like ``routing``."""
    return [p for p in Phase if p is not Phase.CUTOVER and routing_for(p) == routing]


def check_routing(t: Translation, state) -> None:
    """Refuse ``primary_cluster`` / ``read_mode`` that disagree with the stored phase's routing."""
    if t.routing is None or t.routing == state.routing:
        return
    asked = " and ".join(f"{g.label}={str(g.value).strip().upper()}" for g in t.routing_from)
    phases = phases_with(t.routing)
    settings = " and ".join(g.label for g in t.routing_from)
    if not phases:
        fix = f"remove {settings}: no zdm phase routes like that; zdm's phases decide"
    else:
        later = [p for p in phases if p > state.phase]
        move = (f"`zdm phase advance` to phase {later[0].label} (when its conditions hold)" if later
                else f"`zdm rollback --to {int(phases[-1])}`")
        fix = f"remove {settings} (zdm's phases decide the routing), or move the migration with {move}"
    first = t.routing_from[0]
    these = "these mean" if len(t.routing_from) > 1 else "this means"
    where = (first.path, asked) if first.key else (asked, None)
    raise ConfigError(f"{these} {describe_routing(t.routing)}, but the migration is in phase "
                      f"{state.phase.label}, which {describe_routing(state.routing)}; in zdm the "
                      "migration's phase decides the routing, not a setting",
                      path=where[0], key=where[1], hint=fix)


# -- where the proxy's configuration comes from ------------------------------------------------

def proxy_config(config: Path | None, zdm_proxy_file: Path | None, environ: Mapping[str, str], *,
                 default: Path = DEFAULT_CONFIG_PATH) -> tuple[Config, Translation | None]:
    """The proxy's configuration by the precedence in the module's docstring; the Translation
    when it came from zdm-proxy's settings (for :func:`check_routing`)."""
    if zdm_proxy_file is not None:
        if config is not None or default.exists():
            theirs = str(config if config is not None else default)
            raise ConfigError(f"a zdm.yaml is given too ({theirs}); the proxy takes its settings "
                              "from one of them", path="--zdm-proxy-config",
                              hint=f"drop --zdm-proxy-config to use {theirs}, or move {theirs} away; "
                                   "`zdm init --from-zdm-proxy FILE` writes the equivalent zdm.yaml")
        t = read(zdm_proxy_file, environ)
        return t.config(), t
    if config is not None or default.exists():
        path = config if config is not None else default
        cfg = load_config(path, environ=dict(environ))
        read_by_it = {c.password_env for c in (cfg.origin, cfg.target) if c.password_env}
        beside = sorted(n for n in environ if n in BY_ENV and n not in read_by_it
                        and not _unset(environ[n]))
        if beside:
            raise ConfigError(f"zdm-proxy's settings are set in the environment too ({', '.join(beside)}); "
                              "with a zdm.yaml they would be ignored", path=str(path),
                              hint="unset them and put what they say in zdm.yaml, or move zdm.yaml away to "
                                   "configure the proxy from them alone")
        return cfg, None
    if any(is_zdm_proxy_variable(n) for n in environ):
        t = read(None, environ)
        return t.config(), t
    raise ConfigError("file not found", path=str(default),
                      hint="run `zdm init` to write one, or pass --config PATH; or configure the proxy "
                           "as zdm-proxy: its ZDM_* environment variables, or --zdm-proxy-config FILE")


# -- zdm init --from-zdm-proxy -----------------------------------------------------------------

_COMMENT_COLUMN = 40


def zdm_yaml(t: Translation) -> str:
    """The commented zdm.yaml equivalent to ``t``; each key names the setting it came from.
    Passwords are not copied: the file reads them from the environment (``password_env``)."""
    source = str(t.file) if t.file else "zdm-proxy's environment variables"
    lines = [f"# zdm.yaml written by `zdm init --from-zdm-proxy` from {source}.",
             "# Each key names the zdm-proxy setting it came from; \"default\" marks zdm-proxy's default,",
             "# written out because zdm's own may differ.", ""]
    for section in ("origin", "target", "proxy"):
        lines.append(f"{section}:")
        lines += _render(t, t.raw.get(section, {}), section, "  ")
        lines.append("")
    if t.routing is not None:
        asked = ", ".join(f"{g.label}: {str(g.value).strip().upper()}" for g in t.routing_from)
        phases = ", ".join(p.label for p in phases_with(t.routing)) or "none"
        lines += [f"# {asked}: in zdm the migration's phase decides the routing, not a setting.",
                  f"# This routing ({describe_routing(t.routing)}) is that of phase(s): {phases}.", ""]
    if t.accepted:
        lines.append("# Given, and ignored: zdm has no equivalent, and needs none (zdm-proxy's default, or")
        lines.append("# a setting zdm-proxy ignores there too):")
        lines += [f"#   {g.label}: {_show(g.value)}  # {g.setting.reason}" for g in t.accepted]
        lines.append("")
    lines += ["scope:                       # what to migrate and validate; empty = every non-system keyspace",
              "  keyspaces: []", "",
              "state_dir: .zdm/state        # the migration's persisted state (relative to this file)", ""]
    return "\n".join(lines)


def secret_variables(t: Translation) -> list[str]:
    """The variables the written zdm.yaml reads passwords from."""
    return [s.setting.env if isinstance(s, Given) else s.env
            for key, s in t.sources.items() if _setting_of(s).secret]


def _render(t: Translation, node: dict, prefix: str, indent: str) -> list[str]:
    out = []
    for name, value in node.items():
        key = f"{prefix}.{name}"
        if isinstance(value, dict):
            out.append(f"{indent}{name}:")
            out += _render(t, value, key, indent + "  ")
            continue
        source = t.sources[key]
        setting = _setting_of(source)
        comment = setting.name + ("" if isinstance(source, Given) else " (default)")
        if key in t.notes:
            comment += f": {t.notes[key]}"
        if setting.secret:
            name, value = "password_env", setting.env
            comment = f"{setting.name} is not copied here: export {setting.env}"
        line = f"{indent}{name}: {_yaml_scalar(value)}"
        out.append(f"{line.ljust(_COMMENT_COLUMN - 1)} # {comment}")
    return out


def _setting_of(source: Given | Setting) -> Setting:
    return source.setting if isinstance(source, Given) else source


def _yaml_scalar(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 20).strip()
    return text[:-3].strip() if text.endswith("\n...") or text.endswith("...") else text


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ", ".join(_show(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _type_name(value: Any) -> str:
    return {dict: "a mapping", list: "a list", type(None): "empty"}.get(type(value), type(value).__name__)


__all__ = ["BY_ENV", "BY_NAME", "Given", "SETTINGS", "Setting", "Translation", "check_routing",
           "from_environ", "from_file", "proxy_config", "read", "translate", "zdm_yaml"]
