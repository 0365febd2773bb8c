"""Loading ``zdm.yaml``: read once, validated, into the dataclasses of :mod:`zdm.config.model`.

Theory of operation: :func:`load_config` reads YAML, then walks it section by
section with a small schema (each dataclass field's type), rejecting unknown keys,
missing required fields, wrong types and out-of-range ports with a
:class:`~zdm.errors.ConfigError` naming the file and the dotted key.  Secrets may
be given indirectly (``password_env: NAME``) so that they stay out of the file.
:func:`parse_config` is the same validation for a mapping already read (zdm-proxy's
settings, translated, go through it too).  Nothing else in zdm reads YAML or the
environment for settings.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from zdm.config.model import ClusterConfig, Config, ProxyConfig, ProxyTlsConfig, ScopeConfig, TlsConfig
from zdm.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("zdm.yaml")

_SECTIONS: dict[str, type] = {
    "origin": ClusterConfig,
    "target": ClusterConfig,
    "proxy": ProxyConfig,
    "scope": ScopeConfig,
}

_PORT_FIELDS = {"port", "listen_port", "metrics_port"}


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
    known = set(_SECTIONS) | {"state_dir", "state_store", "state_keyspace"}
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
    if "state_store" in raw:
        if raw["state_store"] not in ("file", "cassandra"):
            raise ConfigError(f"must be file or cassandra, not {raw['state_store']!r}", path=where,
                              key="state_store",
                              hint="file keeps the state in state_dir on this host; cassandra in a "
                                   "keyspace on target, shared by proxies on several hosts")
        values["state_store"] = raw["state_store"]
    if "state_keyspace" in raw:
        keyspace = raw["state_keyspace"]
        if not isinstance(keyspace, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,47}", keyspace):
            raise ConfigError(f"{keyspace!r} is not a keyspace name", path=where, key="state_keyspace",
                              hint="letters, digits and _, starting with a letter, at most 48")
        values["state_keyspace"] = keyspace
    config = Config(**values, source=path)
    config = _resolve_secrets(config, env, where)
    if path is not None and not config.state_dir.is_absolute():
        config = dataclasses.replace(config, state_dir=path.parent / config.state_dir)
    return _resolve_files(config, path.parent if path is not None else None, where)


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
    if cls is ClusterConfig and kwargs.get("secure_connect_bundle") is not None:
        clashing = sorted(set(raw) & {"contact_points", "port", "tls"})
        if clashing:
            raise ConfigError(f"secure_connect_bundle names the nodes and their TLS; "
                              f"{', '.join(clashing)} cannot be given with it", path=where,
                              key=f"{prefix}.{clashing[0]}", hint=f"remove {prefix}.{clashing[0]}")
    if cls in (TlsConfig, ProxyTlsConfig) and (kwargs.get("cert_file") is None) != \
            (kwargs.get("key_file") is None):
        missing = "key_file" if kwargs.get("key_file") is None else "cert_file"
        raise ConfigError("a certificate needs its key, and a key its certificate", path=where,
                          key=f"{prefix}.{missing}", hint=f"set {prefix}.{missing} (PEM)")
    if cls is ProxyTlsConfig:
        for name in ("cert_file", "key_file"):
            if kwargs.get(name) is None:
                raise ConfigError("is required for the proxy's TLS listener", path=where,
                                  key=f"{prefix}.{name}", hint="the proxy's certificate and key, PEM")
        if kwargs.get("require_client_auth") and kwargs.get("ca_file") is None:
            raise ConfigError("require_client_auth needs the CA that signs client certificates",
                              path=where, key=f"{prefix}.ca_file", hint=f"set {prefix}.ca_file (PEM)")
    if cls is ProxyConfig:
        for i, inst in enumerate(kwargs.get("instances", ())):
            _parse_host_port(inst, where, f"{prefix}.instances[{i}]")
        if kwargs.get("max_frame_bytes", 1024) < 1024:
            raise ConfigError("must be at least 1024", path=where, key=f"{prefix}.max_frame_bytes")
        for name in ("workers", "max_client_connections"):
            if kwargs.get(name) is not None and kwargs[name] < 1:
                raise ConfigError("must be at least 1", path=where, key=f"{prefix}.{name}")
        for name, allowed in (("log_level", ("debug", "info", "warning", "error")),
                              ("log_format", ("text", "json"))):
            if name in kwargs and kwargs[name] not in allowed:
                raise ConfigError(f"must be one of {', '.join(allowed)}, not {kwargs[name]!r}",
                                  path=where, key=f"{prefix}.{name}")
        if kwargs.get("metrics_prefix") is not None and \
                not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", kwargs["metrics_prefix"]):
            raise ConfigError(f"{kwargs['metrics_prefix']!r} is not a valid Prometheus name prefix",
                              path=where, key=f"{prefix}.metrics_prefix", hint="letters, digits, _")
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
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where, key)
    if hint is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError("must be a file path", path=where, key=key)
        return Path(value)
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


def _resolve_files(config: Config, base: Path | None, where: str) -> Config:
    """Certificate, key and bundle paths made absolute (relative to the config file) and
    checked: a file that is not there is an error naming its key, not a TLS failure later."""
    def resolve(obj, prefix: str):
        if obj is None:
            return None
        changes = {}
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            key = f"{prefix}.{f.name}"
            if isinstance(value, Path):
                path = value if value.is_absolute() or base is None else base / value
                if not path.is_file():
                    raise ConfigError(f"no such file: {path}", path=where, key=key,
                                      hint="give the path of an existing file (relative paths are "
                                           "relative to this config file)")
                changes[f.name] = path
            elif dataclasses.is_dataclass(value):
                changes[f.name] = resolve(value, key)
        return dataclasses.replace(obj, **changes) if changes else obj

    return dataclasses.replace(config, origin=resolve(config.origin, "origin"),
                               target=resolve(config.target, "target"), proxy=resolve(config.proxy, "proxy"))


def _reject_unknown(raw: dict, known: set[str], where: str, prefix: str) -> None:
    for key in raw:
        if key not in known:
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
