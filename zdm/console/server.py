"""Serving the console: where it listens, the token that guards it, and uvicorn.

Theory of operation: :func:`serve` checks the address first (:func:`plan_serving`): a
loopback address needs nothing more, any other one needs a bearer token (``--token-file``)
so that nobody else on the network can read the migration or move its phase.  A token file
that does not exist yet is created with a fresh token (readable by its owner only) and the
token is printed once; an existing one is read.  TLS is used when a certificate and key are
given (and the cookie that carries the token is then marked Secure).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from zdm.config import Config
from zdm.errors import ConfigError
from zdm.phases.live import LiveSchema
from zdm.state import StateStore

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765

#: The names a loopback console answers under (its ``Host`` header): any other is a page of
#: another site whose DNS name was rebound to this host.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


@dataclass(frozen=True)
class Serving:
    host: str
    port: int
    token: str | None
    #: a token file written now: its token is shown once
    token_created: bool
    tls: tuple[Path, Path] | None
    allowed_hosts: tuple[str, ...]

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}/"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def read_or_create_token(path: Path) -> tuple[str, bool]:
    """The token in ``path`` (first line), or a new one written there; (token, created)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        token = secrets.token_urlsafe(32)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(token + "\n")
        return token, True
    except OSError as exc:
        raise ConfigError(f"cannot read the token file: {exc.strerror}", path=str(path),
                          hint="give a readable file, or a path where a new token can be written") from None
    token = text.strip().splitlines()[0].strip() if text.strip() else ""
    if len(token) < 16:
        raise ConfigError("the token file holds no token of at least 16 characters", path=str(path),
                          hint="delete it to have a new token generated, or write one into it")
    return token, False


def plan_serving(host: str, port: int, token_file: Path | None, tls_cert: Path | None,
                 tls_key: Path | None) -> Serving:
    """Check the options and settle how the console is served; refuses what is unsafe."""
    if not 1 <= port <= 65535:
        raise ConfigError(f"port {port} is out of range (1-65535)", path="--port")
    if (tls_cert is None) != (tls_key is None):
        raise ConfigError("--tls-cert and --tls-key go together", path="--tls-cert",
                          hint="give both (the certificate and its private key), or neither")
    for option, path in (("--tls-cert", tls_cert), ("--tls-key", tls_key)):
        if path is not None and not path.is_file():
            raise ConfigError(f"{path} is not a file", path=option,
                              hint="give the PEM file of the console's certificate and key")
    loopback = is_loopback(host)
    if not loopback and token_file is None:
        raise ConfigError(
            f"the console would listen on {host}, reachable from other hosts, without a token",
            path="--host",
            hint="add --token-file FILE (a token is generated there if the file does not exist; "
                 "give it to the people allowed in), and --tls-cert/--tls-key off a trusted "
                 "network; or keep the default --host 127.0.0.1 and reach it through an SSH tunnel")
    token, created = read_or_create_token(token_file) if token_file is not None else (None, False)
    if loopback:
        allowed: tuple[str, ...] = LOOPBACK_HOSTS
    elif _is_unspecified(host):
        allowed = ("*",)  # every address of this host, under any name: the token keeps others out
    else:
        allowed = (host.strip("[]"), f"[{host.strip('[]')}]", *LOOPBACK_HOSTS)
    return Serving(host, port, token, created,
                   (tls_cert, tls_key) if tls_cert is not None and tls_key is not None else None,
                   allowed)


def _is_unspecified(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def _server(config: Config, store: StateStore, serving: Serving, live_schema: LiveSchema | None):
    import uvicorn

    from zdm.console.app import create_app

    app = create_app(config, store, live_schema=live_schema, bearer_token=serving.token,
                     allowed_hosts=serving.allowed_hosts, secure_cookie=serving.tls is not None)
    tls = {"ssl_certfile": str(serving.tls[0]), "ssl_keyfile": str(serving.tls[1])} if serving.tls else {}
    return uvicorn.Server(uvicorn.Config(app, host=serving.host.strip("[]"), port=serving.port,
                                         log_level="warning", access_log=False, **tls))


def serve(config: Config, store: StateStore, serving: Serving, *, live_schema: LiveSchema | None,
          announce: Callable[[str], None]) -> None:
    """Run the console until interrupted (uvicorn handles Ctrl-C and SIGTERM)."""
    server = _server(config, store, serving, live_schema)
    announce(f"zdm console on {serving.url}")
    server.run()


class BackgroundConsole:
    """The console served from a thread of this process (`zdm demo --console`), until
    :meth:`stop`; uvicorn leaves the process's signals alone off the main thread."""

    def __init__(self, config: Config, store: StateStore, serving: Serving, *,
                 live_schema: LiveSchema | None, timeout: float = 15.0) -> None:
        import threading
        import time

        self.url = serving.url
        self._server = _server(config, store, serving, live_schema)
        self._thread = threading.Thread(target=self._server.run, name="zdm-console", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise ConfigError(f"the console could not listen on {serving.host}:{serving.port}",
                                  path="--console-port",
                                  hint="is the port in use? give another one with --console-port")
            time.sleep(0.05)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)

    def __enter__(self) -> "BackgroundConsole":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
