"""Telling systemd how the proxy is doing: the ``sd_notify`` protocol, without libsystemd.

Theory of operation: a service of ``Type=notify`` gets ``$NOTIFY_SOCKET``, the address of an
``AF_UNIX`` datagram socket of the service manager's; one datagram of ``KEY=VALUE`` lines is
one notification (sd_notify(3)).  A path that starts with ``@`` is in the abstract namespace
(the ``@`` stands for a leading NUL byte).  The proxy sends:

- ``READY=1`` once it listens (the port accepts connections, every worker serves): only then
  does systemd count the unit started and start what is ordered after it;
- ``RELOADING=1`` with ``MONOTONIC_USEC`` when SIGHUP asks it to re-read its settings, then
  ``READY=1`` when they are applied (what ``Type=notify-reload`` expects; harmless before);
- ``STOPPING=1`` when it starts draining;
- ``STATUS=...``, one line ``systemctl status`` shows.

Without ``$NOTIFY_SOCKET`` (not under systemd) every call does nothing.  A notification that
cannot be sent is logged once and never stops the proxy: systemd would then time the start out
and say so, which the log line explains.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Mapping

log = logging.getLogger("zdm.proxy")

__all__ = ["Notifier", "address"]


def address(value: str | None) -> str | bytes | None:
    """The socket address ``$NOTIFY_SOCKET`` names, or None when it names none we can reach
    (unset, empty, or a kind other than a path, such as ``vsock:``)."""
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + value[1:].encode()  # the abstract namespace
    if value.startswith("/"):
        return value
    return None


class Notifier:
    """Sends notifications to the service manager named by ``$NOTIFY_SOCKET``."""

    def __init__(self, target: str | bytes | None) -> None:
        self.target = target
        self._failed = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> "Notifier":
        value = environ.get("NOTIFY_SOCKET")
        target = address(value)
        if value and target is None:
            log.warning("NOTIFY_SOCKET=%s is no Unix socket path: systemd is not told when the "
                        "proxy is ready", value)
        return cls(target)

    @property
    def enabled(self) -> bool:
        return self.target is not None

    def notify(self, **fields: object) -> bool:
        """Send ``KEY=VALUE`` lines (``READY=1`` as ``READY=1``); True when sent."""
        if self.target is None:
            return False
        message = "\n".join(f"{key}={_one_line(value)}" for key, value in fields.items())
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self.target)
                sock.sendall(message.encode())
        except OSError as exc:
            if not self._failed:
                self._failed = True
                log.warning("cannot notify systemd (NOTIFY_SOCKET): %s", exc.strerror or exc)
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.notify(READY=1, STATUS=status)

    def reloading(self) -> bool:
        return self.notify(RELOADING=1, MONOTONIC_USEC=time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000,
                           STATUS="reloading its settings")

    def stopping(self, status: str) -> bool:
        return self.notify(STOPPING=1, STATUS=status)

    def status(self, status: str) -> bool:
        return self.notify(STATUS=status)


def _one_line(value: object) -> str:
    # a value is one line: a newline would start a field the caller never meant
    return str(value).replace("\n", " ")
