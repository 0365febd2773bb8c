"""Driver sessions to origin and target, built from the configuration.

zdm's own reads and writes of the clusters (preflight, copy, validation) use the
DataStax cassandra-driver; the proxy does not (it speaks the protocol itself).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from zdm.config import ClusterConfig
from zdm.errors import ZdmError


class ConnectError(ZdmError):
    """A cluster could not be reached or refused the login."""


def make_cluster(cfg: ClusterConfig, *, name: str = "cluster", **overrides):
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import DCAwareRoundRobinPolicy, RoundRobinPolicy

    policy = DCAwareRoundRobinPolicy(cfg.local_dc) if cfg.local_dc else RoundRobinPolicy()
    profile = ExecutionProfile(load_balancing_policy=policy, request_timeout=overrides.pop("request_timeout", 30.0))
    kwargs = dict(
        contact_points=list(cfg.contact_points), port=cfg.port,
        connect_timeout=cfg.connect_timeout_s, control_connection_timeout=cfg.connect_timeout_s,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
    )
    if cfg.credentials:
        kwargs["auth_provider"] = PlainTextAuthProvider(*cfg.credentials)
    if cfg.protocol_version:
        kwargs["protocol_version"] = cfg.protocol_version
    kwargs.update(overrides)
    return Cluster(**kwargs)


@contextmanager
def session(cfg: ClusterConfig, *, name: str = "cluster", keyspace: str | None = None,
            **overrides) -> Iterator:
    """A connected driver Session; a failure to connect becomes a ConnectError naming the cluster."""
    from cassandra import AuthenticationFailed
    from cassandra.cluster import NoHostAvailable

    cluster = make_cluster(cfg, name=name, **overrides)
    where = ", ".join(f"{h}:{cfg.port}" for h in cfg.contact_points)
    try:
        try:
            sess = cluster.connect(keyspace)
        except NoHostAvailable as exc:
            detail = "; ".join(f"{host}: {err}" for host, err in exc.errors.items()) or str(exc)
            auth = any(isinstance(e, AuthenticationFailed) for e in exc.errors.values())
            raise ConnectError(
                f"{name} ({where}): {'login refused' if auth else 'not reachable'}: {detail}",
                hint=(f"check {name}.username / {name}.password in zdm.yaml" if auth else
                      f"check {name}.contact_points and {name}.port in zdm.yaml, "
                      "and that the cluster is up (`zdm sandbox status` for the sandbox)")) from None
        yield sess
    finally:
        cluster.shutdown()
