"""Translating zdm-proxy's settings into zdm's configuration, each zdm key with its source.

Theory of operation: :func:`translate` takes the settings as given (:class:`Given`, from
:mod:`zdm.config.zdmproxy_read`), parses each by its :class:`~zdm.config.zdmproxy_table.Kind`,
and follows :data:`~zdm.config.zdmproxy_table.SETTINGS` into a :class:`Translation`: its ``raw``
mapping is exactly what :func:`zdm.config.parse_config` takes, so zdm's validation stays there,
and ``sources`` remembers, for each zdm key, the setting it came from (or whose default it is).
:meth:`Translation.config` validates, and restates a validation error under the zdm-proxy
setting's name (``ZDM_ORIGIN_PORT: ...`` or ``zdm-proxy config FILE: origin_port: ...``).  A
password is never part of a message.

Beyond the table, three rules need more than one setting at a time: TLS (:func:`_tls_complete`,
zdm-proxy's all-or-nothing mixes), topology (the instances and this one's advertised address)
and routing (``primary_cluster``/``read_mode`` as a :class:`~zdm.phases.model.Routing`, checked
against the phase by :mod:`zdm.config.zdmproxy_routing`).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from zdm.config.load import parse_config
from zdm.config.model import Config
from zdm.config.zdmproxy_table import BY_KEY, BY_NAME, PROXY_TLS, SETTINGS, Setting, show
from zdm.errors import ConfigError
from zdm.phases.model import Cluster, ReadMode, Routing


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
        return [f"{g.label}: {show(g.value)} is ignored: {g.setting.reason}" for g in self.accepted]

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
                default = f", {show(s.default)}," if s.default not in (None, ()) else ""
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
    if any(n in given for n in PROXY_TLS):
        _all_or_refuse(t, given, PROXY_TLS, "zdm-proxy's listener is TLS only with proxy_tls_ca_path, "
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
