"""`zdm proxy start`: run the embedded dual-writing CQL proxy in the foreground;
`zdm proxy health`: ask a running one (the container image's health check)."""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from zdm.cli.common import DEFAULT_CONFIG, ConfigPath, command, config_from, console
from zdm import logs
from zdm.config import Config
from zdm.config.proxy_config import proxy_config
from zdm.config.zdmproxy_translate import Translation
from zdm.config.zdmproxy_routing import check_routing
from zdm.errors import ConfigError
from zdm.state import open_store
from zdm.proxy import server

app = typer.Typer(help="The dual-writing CQL proxy applications connect to.", no_args_is_help=True)


ProxyConfigPath = Annotated[Path | None, typer.Option(
    "--config", "-c", envvar="ZDM_CONFIG", dir_okay=False,
    help="The migration's zdm.yaml \\[default: ./zdm.yaml; without one, zdm-proxy's ZDM_* "
         "environment variables].")]
ZdmProxyConfigPath = Annotated[Path | None, typer.Option(
    "--zdm-proxy-config", metavar="FILE", dir_okay=False,
    help="Take the settings from zdm-proxy's YAML file instead of a zdm.yaml; ZDM_* "
         "variables override its keys.")]


@app.command()
@command
def start(
    config: ProxyConfigPath = None,
    zdm_proxy_config: ZdmProxyConfigPath = None,
    listen_host: Annotated[str | None, typer.Option(help="Override proxy.listen_host.")] = None,
    listen_port: Annotated[int | None, typer.Option(help="Override proxy.listen_port.")] = None,
    name: Annotated[str | None, typer.Option(help="This instance's name in the state directory "
                                             "\\[default: host:port].")] = None,
    log_level: Annotated[str | None, typer.Option(help="Override proxy.log_level: debug, info, "
                                                  "warning or error.")] = None,
    log_format: Annotated[str | None, typer.Option(help="Override proxy.log_format: text or json.")] = None,
    workers: Annotated[int | None, typer.Option(help="Override proxy.workers (processes serving "
                                                "clients) \\[default: one per core].")] = None,
) -> None:
    """Listen for applications; writes go to both clusters, reads to the primary.

    Runs until SIGTERM or Ctrl-C, then drains in-flight requests and stops.  SIGHUP reads the
    configuration again and applies its live settings (log level and format,
    max_client_connections); the log names any other change, kept until a restart.
    """
    if listen_port is not None and not 1 <= listen_port <= 65535:
        raise ConfigError(f"port {listen_port} is out of range (1-65535)", path="--listen-port")
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers {workers}: must be at least 1", path="--workers")
    for option, value, allowed in (("--log-level", log_level, logs.LEVELS),
                                   ("--log-format", log_format, logs.FORMATS)):
        if value is not None and value.lower() not in allowed:
            raise ConfigError(f"unknown value {value!r}", path=option, hint=f"use {', '.join(allowed)}")

    def read() -> tuple[Config, Translation | None]:
        """The settings, the command line's overrides over the file's (or the variables')."""
        cfg, from_zdm_proxy = proxy_config(config, zdm_proxy_config, os.environ)
        proxy = cfg.proxy
        proxy = dataclasses.replace(proxy, listen_host=listen_host or proxy.listen_host,
                                    listen_port=listen_port or proxy.listen_port,
                                    workers=workers or proxy.workers,
                                    log_level=(log_level or proxy.log_level).lower(),
                                    log_format=(log_format or proxy.log_format).lower())
        return dataclasses.replace(cfg, proxy=proxy), from_zdm_proxy

    cfg, from_zdm_proxy = read()
    proxy = cfg.proxy
    logs.configure(proxy.log_level, proxy.log_format)
    store = open_store(cfg)
    if from_zdm_proxy is not None:
        check_routing(from_zdm_proxy, store.load())
        for note in from_zdm_proxy.ignored():  # known, and said: never silently dropped
            logging.getLogger("zdm.config").info("zdm-proxy setting %s", note)
    source = f" Configured from {escape(from_zdm_proxy.describe())}." if from_zdm_proxy else ""

    def ready(srv) -> None:
        auth = ", ".join(f"{c.value} {'requires' if need else 'needs no'} login"
                         for c, need in srv.requires_auth.items())
        console.print(f"[green]zdm proxy {srv.name}[/] listening on {proxy.listen_host}:{srv.port} "
                      f"({srv.describe_workers()}); reads from {srv.routing.primary.value} ({auth})."
                      f"{source} Ctrl-C to stop.")

    count = proxy.worker_processes()
    server.run(cfg, store=store, name=name, ready=ready, workers=count if count > 1 else None,
               reread=lambda: read()[0])


@app.command()
@command
def deregister(
    name: Annotated[str, typer.Argument(help="The proxy's name, as `zdm status` shows it.")],
    config: ConfigPath = DEFAULT_CONFIG,
) -> None:
    """Forget a proxy that is gone for good, so it no longer holds up routing changes."""
    with open_store(config_from(config)) as store:
        known = store.routing_acks()
        if name not in known:
            raise ConfigError(f"no proxy named {name!r} is registered",
                              path="NAME", hint="registered: " + (", ".join(sorted(known)) or "none"))
        store.deregister_proxy(name)
    console.print(f"Deregistered proxy {name}. A running proxy of that name registers itself again.")


@app.command()
@command
def health(
    config: ProxyConfigPath = None,
    zdm_proxy_config: ZdmProxyConfigPath = None,
    liveness: Annotated[bool, typer.Option(
        "--liveness", help="Ask only whether the proxy runs, not whether it serves.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the answer.")] = 3.0,
) -> None:
    """Ask the proxy configured here whether it is ready to serve (its /health/readiness).

    Exit code 0 when it is, 1 when it answers that it is not (its reason is printed) or does
    not answer.  The container image's health check; usable by any supervisor.
    """
    import json
    import urllib.error
    import urllib.request

    cfg, _ = proxy_config(config, zdm_proxy_config, os.environ)
    proxy = cfg.proxy
    if not proxy.metrics_enabled:
        raise ConfigError("the proxy serves no health endpoint (proxy.metrics_enabled is false)",
                          path="proxy.metrics_enabled", hint="enable it to use `zdm proxy health`")
    # a wildcard address is served on loopback too
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(proxy.metrics_address, proxy.metrics_address)
    url = f"http://{f'[{host}]' if ':' in host else host}:{proxy.metrics_port}/health/" + \
        ("liveness" if liveness else "readiness")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            body = answer.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        body = exc.read().decode("utf-8", "replace")
        try:
            reason = json.loads(body).get("Reason") or body
        except ValueError:
            reason = body
        console.print(f"[red]not ready[/] ({url}: {exc.code}): {escape(str(reason).strip())}")
        raise typer.Exit(1)
    except (OSError, urllib.error.URLError) as exc:
        console.print(f"[red]no answer[/] from {url}: {escape(str(getattr(exc, 'reason', exc)))}")
        raise typer.Exit(1)
    console.print(f"[green]{'alive' if liveness else 'ready'}[/] ({url}) {escape(body.strip())}")
