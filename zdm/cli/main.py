"""The `zdm` command: a thin layer over zdm's plain functions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from zdm.cli import data, phases, proxy, sandbox
from zdm.cli.common import DEFAULT_CONFIG, ConfigPath, command, config_from, console, flags
from zdm.config import TEMPLATE, load_config
from zdm.errors import ConfigError

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


@app.callback()
def _main(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False) -> None:
    flags.debug = debug


@app.command()
@command
def init(
    config: Annotated[Path, typer.Option("--config", "-c", envvar="ZDM_CONFIG",
                                         help="Where to write the template.")] = DEFAULT_CONFIG,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented zdm.yaml whose defaults point at the local sandbox."""
    if config.exists() and not force:
        raise ConfigError("already exists; not overwritten", path=str(config),
                          hint="edit it, or pass --force to replace it with the template")
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(TEMPLATE)
    load_config(config)  # the template must itself be valid
    console.print(f"Wrote {config}. Edit it to point at your clusters; the defaults use the sandbox.")


@app.command()
@command
def demo(config: ConfigPath = DEFAULT_CONFIG) -> None:
    """Run zdm's main job on the configured clusters (the sandbox, by default)."""
    from rich.table import Table

    from zdm import demo as demo_mod

    checks = demo_mod.run(config_from(config))
    table = Table(title="Both clusters answer")
    for col in ("cluster", "address", "cluster_name", "release", "write+read"):
        table.add_column(col)
    for c in checks:
        table.add_row(c.name, c.address, c.cluster_name, c.release_version, f"{c.round_trip_ms:.1f} ms")
    console.print(table)
    console.print("[green]origin and target are up and accept writes.[/]")


if __name__ == "__main__":  # pragma: no cover
    app()
