"""Which settings a running proxy takes when it reloads (SIGHUP), and which need a restart.

Theory of operation: on SIGHUP the proxy reads its configuration again, as ``zdm proxy start``
did (the same file or ``ZDM_*`` variables, the same command-line overrides), and
:func:`compare` sets it beside the running one, setting by setting (``proxy.log_level``,
``origin.port``...).  The settings in :data:`LIVE` take effect at once: the log's level and
format (the instance and every worker process), and the number of client connections the
instance accepts.  Any other change is named in the log and left as it was until a restart:
addresses, ports, TLS, credentials, timeouts and the workers are fixed for the life of the
process and its connections.  The routing is no setting: it follows the state store without
any reload.

Pure: no I/O; the server applies the result.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from zdm.config import Config

#: the settings a reload applies
LIVE = ("proxy.log_level", "proxy.log_format", "proxy.max_client_connections")


@dataclass(frozen=True)
class Reload:
    #: what the proxy runs by from now on: the running settings with the live changes in
    config: Config
    #: live settings that changed: (name, old value, new value)
    applied: tuple[tuple[str, object, object], ...]
    #: settings that changed and keep their running value until a restart (names only: one
    #: may be a password)
    need_restart: tuple[str, ...]

    def describe(self) -> str:
        """What the reload applied, in one line."""
        if not self.applied:
            return "settings reloaded: " + ("no live setting changed" if self.need_restart else "nothing changed")
        return "settings reloaded: " + ", ".join(f"{name} {old} -> {new}" for name, old, new in self.applied)


def compare(running: Config, read: Config) -> Reload:
    """The reload of ``running`` by ``read`` (the configuration just read)."""
    changed = list(differences(running, read))
    applied = tuple(change for change in changed if change[0] in LIVE)
    proxy = dataclasses.replace(running.proxy, **{name.split(".", 1)[1]: new for name, _, new in applied})
    return Reload(dataclasses.replace(running, proxy=proxy), applied,
                  tuple(name for name, _, _ in changed if name not in LIVE))


def differences(old, new, prefix: str = ""):
    """(dotted name as zdm.yaml spells it, old value, new value) for each setting that differs;
    a section present on one side only (``proxy.tls``) is one setting."""
    for f in dataclasses.fields(old):
        if not f.compare:  # where the file was read from: no setting
            continue
        a, b = getattr(old, f.name), getattr(new, f.name)
        name = prefix + f.name
        if dataclasses.is_dataclass(a) and type(a) is type(b):
            yield from differences(a, b, name + ".")
        elif a != b:
            yield name, a, b
