"""The `zdm` command: a thin layer over zdm's plain functions."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Annotated

import typer

from zdm.cli import console as console_cli, data, phases, proxy, sandbox
from zdm.cli.common import DEFAULT_CONFIG, ConfigPath, command, config_from, console, flags
from zdm.config import TEMPLATE, load_config
from zdm.config import zdmproxy_read, zdmproxy_render
from zdm.errors import ConfigError, ZdmError
from zdm import demo as demo_mod
from zdm.sandbox import local, node

app = typer.Typer(
    name="zdm",
    help="Zero-downtime migration between CQL clusters (Cassandra, DSE, Astra DB).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    add_completion=False,
)
app.add_typer(sandbox.app, name="sandbox")
app.add_typer(proxy.app, name="proxy")
phases.register(app)  # preflight, status, phase advance, rollback
data.register(app)  # migrate, validate
console_cli.register(app)  # console


def _print_version(asked: bool) -> None:
    if asked:
        from importlib.metadata import version

        console.print(f"zdm {version('zdm')}")
        raise typer.Exit()


@app.callback()
def _main(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
          version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                                help="Print zdm's version and exit.")] = False) -> None:
    flags.debug = debug


@app.command()
@command
def init(
    config: Annotated[Path, typer.Option("--config", "-c", envvar="ZDM_CONFIG",
                                         help="Where to write the template.")] = DEFAULT_CONFIG,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    from_zdm_proxy: Annotated[Path | None, typer.Option(
        "--from-zdm-proxy", metavar="FILE", dir_okay=False,
        help="Write the zdm.yaml equivalent to this zdm-proxy YAML configuration.")] = None,
    sandbox_dir: Annotated[Path, typer.Option(
        "--sandbox", metavar="DIR", file_okay=False,
        help="Point zdm.yaml at the sandbox in DIR, when there is one: its ports, TLS "
             "certificates and login.")] = Path(".zdm/sandbox"),
) -> None:
    """Write a commented zdm.yaml whose defaults point at the local sandbox (or, with
    --from-zdm-proxy, the equivalent of a zdm-proxy configuration file)."""
    if config.exists() and not force:
        raise ConfigError("already exists; not overwritten", path=str(config),
                          hint="edit it, or pass --force to replace it")
    sandbox = None
    if from_zdm_proxy is None:
        sandbox = local.saved_settings(sandbox_dir)
        text, secrets = TEMPLATE, []
        if sandbox is not None:
            text = local.zdm_yaml(sandbox, config.parent)
            secrets = ["ZDM_ORIGIN_PASSWORD", "ZDM_TARGET_PASSWORD"] if sandbox.auth else []
    else:
        translation = zdmproxy_read.read(from_zdm_proxy, environ={})
        translation.config()  # refuse what zdm cannot do before writing anything
        text, secrets = zdmproxy_render.zdm_yaml(translation), zdmproxy_render.secret_variables(translation)
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(text)
    load_config(config, environ={**os.environ, **{name: "" for name in secrets}})  # it must be valid
    if from_zdm_proxy is None:
        if sandbox is None:
            console.print(f"Wrote {config}. Edit it to point at your clusters; the defaults use the sandbox.")
            return
        extras = []
        if sandbox.tls:
            extras.append(f"TLS with the sandbox's CA ({sandbox.tls_dir / 'ca.pem'}) to the nodes and "
                          "to the proxy")
        if sandbox.auth:
            extras.append("its login (export ZDM_ORIGIN_PASSWORD and ZDM_TARGET_PASSWORD: the sandbox's "
                          "default superuser is cassandra/cassandra)")
        console.print(f"Wrote {config} for the sandbox in {sandbox_dir}"
                      + (": " + "; ".join(extras) if extras else "") + ". Edit it to point at your clusters.")
        return
    console.print(f"Wrote {config}, the equivalent of {from_zdm_proxy}; each key names the zdm-proxy "
                  "setting it came from.")
    if translation.accepted:
        console.print(f"{len(translation.accepted)} of its settings have no zdm equivalent and are "
                      "ignored, each at zdm-proxy's default or without effect there too; zdm.yaml "
                      "lists them at its end, with the reason.")
    if secrets:
        console.print(f"Passwords are not copied into it: export {' and '.join(secrets)} (the "
                      "passwords of that file) before running zdm.")
    if translation.routing is not None:
        console.print("primary_cluster / read_mode are not settings in zdm: the migration's phase "
                      "decides where reads go (`zdm phase advance`, `zdm rollback`).")


@app.command()
@command
def demo(
    config: ConfigPath = DEFAULT_CONFIG,
    rows: Annotated[int, typer.Option(min=1, help="Pre-existing orders to migrate.")] = 5000,
    rate: Annotated[float, typer.Option(min=1, help="The application's requests per second.")] = 100.0,
    origin_version: Annotated[str | None, typer.Option(
        help="Migrate from an origin of this Apache Cassandra release (3.11 to 5.0, e.g. "
             "4.1.10): a sandbox node of it is started beside the configured target, unless "
             "the configured origin runs it.")] = None,
    origin_port: Annotated[int, typer.Option(
        help="CQL port of that origin node.")] = 9144,
    keep_origin: Annotated[bool, typer.Option(
        "--keep-origin", help="Leave that origin node running afterwards.")] = False,
    with_console: Annotated[bool, typer.Option(
        "--console", help="Serve the migration console (`zdm console`) on 127.0.0.1 while the "
                          "demo runs, pausing at each phase, and keep it up afterwards until Ctrl-C.",
    )] = False,
    console_port: Annotated[int, typer.Option(help="The console's port, with --console.")] = 8765,
    pause: Annotated[float | None, typer.Option(
        min=0, help="Seconds to wait at each phase \\[default: 4 with --console, else 0].")] = None,
) -> None:
    """A whole zero-downtime migration on the configured clusters (the sandbox, by default),
    with an application writing and reading through it all."""
    cfg = config_from(config)
    if with_console:  # checked before anything starts: a bad port fails at once
        from zdm.console.server import plan_serving
        serving = plan_serving("127.0.0.1", console_port, None, None, None)
    started = None
    if origin_version is not None:
        cfg, started = demo_mod.origin_of_release(cfg, origin_version, origin_port,
                                                  on_step=console.print)
    prepared = demo_mod.demo_state(cfg)
    with contextlib.ExitStack() as stack:  # the console, if any, stops however the demo ends
        page = None
        if with_console:
            from zdm.console.server import BackgroundConsole
            from zdm.preflight import live_schema

            page = stack.enter_context(BackgroundConsole(prepared[0], prepared[1], serving,
                                                         live_schema=live_schema))
            console.print(f"[bold]The migration console: {page.url}[/] (open it now: the demo "
                          "pauses at each phase)", soft_wrap=True)
        console.rule("zdm demo: a zero-downtime migration, origin -> target")
        count = iter(range(1, 100))
        try:
            report = demo_mod.run(cfg, lambda line: console.print(f"[bold cyan]{next(count):>2}.[/] {line}"),
                                  rows=rows, rate=rate, prepared=prepared,
                                  pause=(4.0 if with_console else 0.0) if pause is None else pause)
        finally:
            if started is not None and not keep_origin:
                node.stop(started)
                console.print(f"Stopped the Cassandra {origin_version} origin started for the demo "
                              f"(`--keep-origin` leaves it running in {started.directory}).")
        console.rule("result")
        console.print(
            f"The application made {report.app_writes} writes and {report.app_reads} reads during the "
            f"migration: {report.app_errors} errors, {report.read_misses} reads of acknowledged writes "
            f"that found nothing.\n{report.pre_existing} pre-existing rows were copied; origin has "
            f"{report.origin_rows} rows and target {report.target_rows}; acknowledged writes missing on "
            f"target: {report.missing_on_target}.  ({report.seconds:.0f}s)")
        if not report.ok:
            raise ZdmError("the demo found a problem (see the figures above)")
        console.print("[bold green]No downtime, no lost write:[/] the application now uses target.")
        if page is not None:
            console.print(f"The console stays up on {page.url} with the demo's journal; Ctrl-C stops it.",
                          soft_wrap=True)
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)

if __name__ == "__main__":  # pragma: no cover
    app()
