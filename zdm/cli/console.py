"""`zdm console`: serve the migration console (:mod:`zdm.console`) until Ctrl-C."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from zdm.cli.common import DEFAULT_CONFIG, ConfigPath, command, config_from, console


def register(app: typer.Typer) -> None:
    """Add this module's command to the `zdm` app."""
    app.command("console")(console_cmd)


@command
def console_cmd(
    config: ConfigPath = DEFAULT_CONFIG,
    host: Annotated[str, typer.Option(
        "--host", help="The address to listen on; any but a loopback one needs --token-file.",
    )] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="The port to listen on.")] = 8765,
    token_file: Annotated[Path | None, typer.Option(
        "--token-file", metavar="FILE", dir_okay=False,
        help="Ask for the bearer token in FILE; a new token is written there (and shown "
             "once) when FILE does not exist.")] = None,
    tls_cert: Annotated[Path | None, typer.Option(
        "--tls-cert", metavar="PEM", dir_okay=False, help="Serve HTTPS with this certificate.",
    )] = None,
    tls_key: Annotated[Path | None, typer.Option(
        "--tls-key", metavar="PEM", dir_okay=False, help="The private key of --tls-cert.",
    )] = None,
) -> None:
    """Serve a web page showing the migration live (phase, routing, proxies, the evidence
    for the next step, the journal), and its JSON API, which can advance or roll back."""
    from zdm.console.server import plan_serving, serve
    from zdm.preflight import live_schema
    from zdm.state import open_store

    cfg = config_from(config)
    serving = plan_serving(host, port, token_file, tls_cert, tls_key)
    if serving.token_created:
        console.print(f"A new console token was written to {escape(str(token_file))}; it is shown "
                      f"this once:\n{serving.token}", soft_wrap=True)
    with open_store(cfg) as store:
        serve(cfg, store, serving, live_schema=live_schema,
              announce=lambda text: console.print(escape(text), soft_wrap=True))
