"""The sandbox on a Docker engine, for users who have one: the official Cassandra image
started through testcontainers with the same fixed ports as the local sandbox.

CI never uses this path (there is no Docker engine there); the local engine is the default.
Containers are named ``zdm-sandbox-origin`` / ``zdm-sandbox-target`` and outlive this
process (testcontainers' reaper is turned off), so ``zdm sandbox down`` removes them by name.
"""

from __future__ import annotations

import dataclasses
import os
import time

from zdm.errors import SandboxError
from zdm.sandbox import local, node

IMAGE = "cassandra:{version}"  # the official image, tagged by release


def _client():
    try:
        import docker
    except ImportError:
        raise SandboxError("the Docker engine needs the `testcontainers` package",
                           hint="pip install 'zdm[test]', or use the local engine (no --docker)") from None
    try:
        client = docker.from_env()
        client.ping()
        return client
    except Exception as exc:  # noqa: BLE001 - any failure means: no engine
        raise SandboxError(f"no Docker engine answers ({exc})",
                           hint="start Docker, or drop --docker to run Cassandra from Maven jars") from None


def up(settings: local.SandboxSettings, *, timeout: float = 300.0, on_step=lambda m: None):
    settings = dataclasses.replace(settings, engine="docker")
    settings.validate()
    local.check_compatible(settings)
    _client()
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
    from testcontainers.core.container import DockerContainer

    local.save_settings(settings)
    for spec in settings.nodes():
        name = f"zdm-sandbox-{spec.name}"
        if _container(name) is None:
            image = IMAGE.format(version=spec.version)
            on_step(f"Starting {spec.name} ({image}) on port {spec.native_port}...")
            container = (DockerContainer(image).with_name(name)
                         .with_bind_ports(9042, spec.native_port)
                         .with_env("CASSANDRA_CLUSTER_NAME", spec.cluster_name)
                         .with_env("MAX_HEAP_SIZE", f"{settings.heap_mb}M")
                         .with_env("HEAP_NEWSIZE", "128M"))
            if settings.auth:
                container = container.with_env("CASSANDRA_AUTHENTICATOR", "PasswordAuthenticator")
            container.start()
    deadline = time.monotonic() + timeout
    for spec in settings.nodes():
        while True:
            try:
                node.cql_login(spec)
                break
            except Exception as exc:  # noqa: BLE001 - retry until the deadline
                if time.monotonic() > deadline:
                    raise SandboxError(f"{spec.name}: no CQL login after {timeout:.0f}s ({exc})") from None
                time.sleep(1)
    return [local.NodeStatus(s.name, s.native_port, None, True, None, node.cql_login(s),
                             release=s.version)
            for s in settings.nodes()]


def _container(name: str):
    import docker

    try:
        return _client().containers.get(name)
    except docker.errors.NotFound:
        return None


def down(settings: local.SandboxSettings) -> list[str]:
    stopped = []
    for spec in settings.nodes():
        container = _container(f"zdm-sandbox-{spec.name}")
        if container is not None:
            container.remove(force=True)
            stopped.append(spec.name)
    return stopped
