"""Small network helpers for tests."""

from __future__ import annotations

import socket


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def driver_cluster(port: int, protocol_version: int | None = None, **kwargs):
    """A DataStax driver Cluster pointed at a proxy on loopback, as an application would make it."""
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import RoundRobinPolicy

    profile = ExecutionProfile(load_balancing_policy=RoundRobinPolicy(),
                               request_timeout=kwargs.pop("request_timeout", 20))
    if protocol_version:
        kwargs["protocol_version"] = protocol_version
    return Cluster(["127.0.0.1"], port=port, execution_profiles={EXEC_PROFILE_DEFAULT: profile},
                   connect_timeout=10, **kwargs)
