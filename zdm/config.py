"""The configuration model: one ``zdm.yaml``, loaded once into frozen dataclasses.

Theory of operation: :func:`load_config` reads YAML, then walks it section by
section with a small schema (each dataclass field's type), rejecting unknown keys,
missing required fields, wrong types and out-of-range ports with a
:class:`~zdm.errors.ConfigError` naming the file and the dotted key.  Secrets may
be given indirectly (``password_env: NAME``) so that they stay out of the file.
Nothing else in zdm reads YAML or the environment for settings.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from zdm.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("zdm.yaml")


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """How to reach one cluster (origin or target)."""

    contact_points: tuple[str, ...] = ("127.0.0.1",)
    port: int = 9042
    username: str | None = None
    password: str | None = None
    #: name of an environment variable holding the password (wins over ``password``)
    password_env: str | None = None
    local_dc: str | None = None
    #: pin a protocol version (3, 4 or 5); None negotiates the highest common one
    protocol_version: int | None = None
    connect_timeout_s: float = 10.0

    @property
    def credentials(self) -> tuple[str, str] | None:
        if self.username is None:
            return None
        return self.username, self.password or ""

    def endpoints(self) -> list[tuple[str, int]]:
        return [(host, self.port) for host in self.contact_points]


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    listen_host: str = "127.0.0.1"
    listen_port: int = 14002
    #: the address drivers are told this instance has (system.local), when it is not
    #: listen_host (which may be 0.0.0.0); with listen_port it must be among ``instances``
    advertise_host: str | None = None
    #: every proxy instance of this deployment ("host:port"); the driver sees exactly these
    #: as the cluster's nodes.  Empty means just this one.
    instances: tuple[str, ...] = ()
    max_frame_bytes: int = 256 * 1024 * 1024
    request_timeout_s: float = 10.0
    heartbeat_interval_s: float = 30.0
    #: stable name of this instance in the state directory (default host:port)
    name: str | None = None
    #: processes serving clients, each with its own event loop (default: one per core)
    workers: int | None = None
    #: client connections one instance serves at most; past it a client is told and closed
    max_client_connections: int = 1000
    #: a write the primary took and the secondary did not (an error meaning an outage, or no
    #: answer): "fail" fails it for the client (zdm-proxy's behaviour); "record" keeps a durable
    #: record of its key and writetime, acknowledges it, and `zdm repair` copies it later
    secondary_write_failure: str = "fail"
    #: in "record" mode, how long a write waits for the secondary once the primary took it
    secondary_write_timeout_s: float = 2.0
    #: when both clusters require a login: the client's credentials go to origin (and the proxy
    #: logs into target with target.username/password) instead of to target (zdm-proxy's option)
    forward_client_credentials_to_origin: bool = False

    def worker_processes(self) -> int:
        return self.workers or os.cpu_count() or 1


@dataclass(frozen=True, slots=True)
class ScopeConfig:
    """Which keyspaces and tables the migration covers."""

    keyspaces: tuple[str, ...] = ()
    exclude_tables: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Config:
    origin: ClusterConfig = field(default_factory=ClusterConfig)
    target: ClusterConfig = field(default_factory=lambda: ClusterConfig(port=9043))
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    scope: ScopeConfig = field(default_factory=ScopeConfig)
    state_dir: Path = Path(".zdm/state")
    #: where the file was read from (None for defaults); relative paths resolve against it
    source: Path | None = field(default=None, compare=False)


_SECTIONS: dict[str, type] = {
    "origin": ClusterConfig,
    "target": ClusterConfig,
    "proxy": ProxyConfig,
    "scope": ScopeConfig,
}

_PORT_FIELDS = {"port", "listen_port"}


def load_config(path: Path | str = DEFAULT_CONFIG_PATH, *, environ: dict[str, str] | None = None,
                missing_ok: bool = False) -> Config:
    """Read and validate ``path``.  With ``missing_ok``, a missing file yields the defaults."""
    path = Path(path)
    env = os.environ if environ is None else environ
    if not path.exists():
        if missing_ok:
            return Config()
        raise ConfigError("file not found", path=str(path),
                          hint="run `zdm init` to write a commented template, or pass --config PATH")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"not valid YAML{where}: {problem}", path=str(path),
                          hint="fix the YAML syntax (indentation, colons, quotes)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", path=str(path)) from None
    return parse_config(raw, path=path, environ=env)


def parse_config(raw: Any, *, path: Path | None = None,
                 environ: dict[str, str] | typing.Mapping[str, str] | None = None) -> Config:
    where = str(path) if path else "<config>"
    env = os.environ if environ is None else environ
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"the top level must be a mapping, not {_type_name(raw)}", path=where)
    known = set(_SECTIONS) | {"state_dir"}
    _reject_unknown(raw, known, where, prefix="")
    values: dict[str, Any] = {}
    for name, cls in _SECTIONS.items():
        if name in raw:
            values[name] = _build(cls, raw[name], where, name)
        elif name == "target":
            values[name] = ClusterConfig(port=9043)
    if "state_dir" in raw:
        state_dir = raw["state_dir"]
        if not isinstance(state_dir, str) or not state_dir:
            raise ConfigError("must be a non-empty path string", path=where, key="state_dir")
        values["state_dir"] = Path(state_dir)
    config = Config(**values, source=path)
    config = _resolve_secrets(config, env, where)
    if path is not None and not config.state_dir.is_absolute():
        config = dataclasses.replace(config, state_dir=path.parent / config.state_dir)
    return config


def _build(cls: type, raw: Any, where: str, prefix: str) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"must be a mapping, not {_type_name(raw)}", path=where, key=prefix)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    _reject_unknown(raw, set(fields), where, prefix=prefix + ".")
    kwargs: dict[str, Any] = {}
    for name, value in raw.items():
        key = f"{prefix}.{name}"
        kwargs[name] = _coerce(value, hints[name], where, key)
        if name in _PORT_FIELDS and not 1 <= kwargs[name] <= 65535:
            raise ConfigError(f"port {value} is out of range (1-65535)", path=where, key=key)
    if cls is ClusterConfig:
        if "contact_points" in kwargs and not kwargs["contact_points"]:
            raise ConfigError("needs at least one host", path=where, key=f"{prefix}.contact_points")
        pv = kwargs.get("protocol_version")
        if pv is not None and pv not in (3, 4, 5):
            raise ConfigError(f"protocol version {pv} is not supported (use 3, 4 or 5, or leave it out)",
                              path=where, key=f"{prefix}.protocol_version")
    if cls is ProxyConfig:
        for i, inst in enumerate(kwargs.get("instances", ())):
            _parse_host_port(inst, where, f"{prefix}.instances[{i}]")
        if kwargs.get("max_frame_bytes", 1024) < 1024:
            raise ConfigError("must be at least 1024", path=where, key=f"{prefix}.max_frame_bytes")
        for name in ("workers", "max_client_connections"):
            if kwargs.get(name) is not None and kwargs[name] < 1:
                raise ConfigError("must be at least 1", path=where, key=f"{prefix}.{name}")
        mode = kwargs.get("secondary_write_failure", "fail")
        if mode not in ("fail", "record"):
            raise ConfigError(f"must be fail or record, not {mode!r}", path=where,
                              key=f"{prefix}.secondary_write_failure",
                              hint="fail: the client sees the error (the default); record: the "
                                   "write is recorded for `zdm repair` and acknowledged")
    for name in ("connect_timeout_s", "request_timeout_s", "heartbeat_interval_s",
                 "secondary_write_timeout_s"):
        if name in kwargs and kwargs[name] <= 0:
            raise ConfigError("must be a positive number of seconds", path=where, key=f"{prefix}.{name}")
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, where: str, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(value, inner, where, key)
    if origin is tuple:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise ConfigError(f"must be a list, not {_type_name(value)}", path=where, key=key)
        return tuple(_coerce(v, args[0], where, f"{key}[{i}]") for i, v in enumerate(value))
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"must be true or false, not {value!r}", path=where, key=key)
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"must be a whole number, not {value!r}", path=where, key=key)
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"must be a number, not {value!r}", path=where, key=key)
        return float(value)
    if hint is str:
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise ConfigError(f"must be a string, not {_type_name(value)}", path=where, key=key)
        return str(value)
    raise AssertionError(f"unhandled config type {hint!r}")  # pragma: no cover


def _resolve_secrets(config: Config, env: typing.Mapping[str, str], where: str) -> Config:
    updates = {}
    for name in ("origin", "target"):
        cluster: ClusterConfig = getattr(config, name)
        if cluster.password_env:
            if cluster.password_env not in env:
                raise ConfigError(f"environment variable {cluster.password_env} is not set",
                                  path=where, key=f"{name}.password_env",
                                  hint=f"export {cluster.password_env}=... before running zdm")
            cluster = dataclasses.replace(cluster, password=env[cluster.password_env])
        if cluster.password is not None and cluster.username is None:
            raise ConfigError("a password is set but no username", path=where, key=f"{name}.username")
        updates[name] = cluster
    return dataclasses.replace(config, **updates)


def _reject_unknown(raw: dict, known: set[str], where: str, prefix: str) -> None:
    for key in raw:
        if key not in known:
            import difflib

            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = f"did you mean `{prefix}{close[0]}`?" if close else \
                f"known keys here: {', '.join(sorted(known))}"
            raise ConfigError("unknown key", path=where, key=f"{prefix}{key}", hint=hint)


def _parse_host_port(text: str, where: str, key: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ConfigError(f"{text!r} is not host:port", path=where, key=key,
                          hint="write each instance as HOST:PORT, e.g. 127.0.0.1:14002")
    return host, int(port)


def parse_host_port(text: str) -> tuple[str, int]:
    return _parse_host_port(text, "<config>", "proxy.instances")


def _type_name(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", int: "a number",
            float: "a number", bool: "a boolean", type(None): "empty"}.get(type(value),
                                                                           type(value).__name__)


TEMPLATE = """\
# zdm.yaml: the migration's configuration. Every command reads it (--config PATH to use another).
# The defaults point at the local sandbox (`zdm sandbox up`): origin 127.0.0.1:9042,
# target 127.0.0.1:9043, so the sandbox works with no edits.

origin:                      # the cluster the applications use today
  contact_points: [127.0.0.1]
  port: 9042
  # username: cassandra
  # password_env: ZDM_ORIGIN_PASSWORD   # read the password from this environment variable
  # local_dc: dc1
  # protocol_version: 4                 # pin 3, 4 or 5; default: highest both sides support

target:                      # the cluster the applications move to
  contact_points: [127.0.0.1]
  port: 9043
  # username: cassandra
  # password_env: ZDM_TARGET_PASSWORD

proxy:                       # the dual-writing CQL proxy (`zdm proxy start`)
  listen_host: 127.0.0.1
  listen_port: 14002
  # advertise_host: 10.0.0.5  # the address drivers see for this instance (default: listen_host)
  # instances: [127.0.0.1:14002, 127.0.0.1:14003]   # every proxy instance; drivers see these as nodes
  # max_frame_bytes: 268435456
  # request_timeout_s: 10
  # heartbeat_interval_s: 30
  # workers: 4                 # processes serving clients; default: one per core
  # max_client_connections: 1000
  # secondary_write_failure: fail   # or record: a target outage costs no client errors
  # secondary_write_timeout_s: 2    #   (record) how long a write waits for the secondary
  # forward_client_credentials_to_origin: false   # both need a login: client's go to origin

scope:                       # what to migrate and validate; empty = every non-system keyspace
  keyspaces: []
  # exclude_tables: [ks.audit_log]

state_dir: .zdm/state        # the migration's persisted state and journal (relative to this file)
"""
