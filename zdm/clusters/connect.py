"""Driver sessions to origin and target, built from the configuration.

zdm's own reads and writes of the clusters (preflight, copy, validation, the demo) use the
DataStax cassandra-driver; the proxy does not (it speaks the protocol itself).  Every
session goes through :func:`make_cluster`, so each of them speaks what the configuration
says: plaintext, TLS (``tls``: :func:`zdm.clusters.tls.client_context`), or an Astra DB secure
connect bundle (``secure_connect_bundle``: :func:`zdm.clusters.bundle.resolve`, then one SNI
endpoint per node, as the driver's own ``cloud=`` support makes them).  A failure to
connect becomes one :class:`ConnectError` naming the cluster, what went wrong and the
setting that fixes it (:func:`connect_error`).
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Iterator

from cassandra import AuthenticationFailed
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable
from cassandra.connection import SniEndPointFactory
from cassandra.policies import DCAwareRoundRobinPolicy, RoundRobinPolicy, TokenAwarePolicy

from zdm.clusters import tls_diagnosis
from zdm.clusters.bundle import resolve
from zdm.config import ClusterConfig
from zdm.errors import ZdmError


class ConnectError(ZdmError):
    """A cluster could not be reached or refused the login."""


def describe(cfg: ClusterConfig) -> str:
    """Where a cluster is, for messages: its nodes and how zdm talks to them."""
    if cfg.secure_connect_bundle is not None:
        return f"Astra DB, secure connect bundle {cfg.secure_connect_bundle.name}"
    where = ", ".join(f"{h}:{cfg.port}" for h in cfg.contact_points)
    if cfg.tls is None:
        return where
    return f"{where}, TLS{'' if cfg.tls.verify_hostname else ' without hostname verification'}"


def make_cluster(cfg: ClusterConfig, *, name: str = "cluster", token_aware: bool = False, **overrides):
    """A driver Cluster for ``cfg``; ``token_aware``: each request with a routing key goes to
    a replica of it (the copy's writes), else requests go round the nodes (of the local DC)."""

    kwargs = dict(connect_timeout=cfg.connect_timeout_s,
                  control_connection_timeout=cfg.connect_timeout_s)
    local_dc = cfg.local_dc
    if cfg.secure_connect_bundle is not None:


        astra = resolve(cfg.secure_connect_bundle, key=f"{name}.secure_connect_bundle",
                        timeout=cfg.connect_timeout_s)
        factory = SniEndPointFactory(astra.sni_host, astra.sni_port)
        kwargs.update(contact_points=[factory.create_from_sni(h) for h in astra.host_ids],
                      endpoint_factory=factory, ssl_context=astra.ssl_context)
        local_dc = local_dc or astra.local_dc
    else:
        kwargs.update(contact_points=list(cfg.contact_points), port=cfg.port)
        if cfg.tls is not None:
            from zdm.clusters.tls import client_context

            kwargs["ssl_context"] = client_context(cfg.tls, name=name)
    policy = DCAwareRoundRobinPolicy(local_dc) if local_dc else RoundRobinPolicy()
    if token_aware:
        policy = TokenAwarePolicy(policy)
    profile = ExecutionProfile(load_balancing_policy=policy, request_timeout=overrides.pop("request_timeout", 30.0))
    kwargs["execution_profiles"] = {EXEC_PROFILE_DEFAULT: profile}
    if cfg.credentials:
        kwargs["auth_provider"] = PlainTextAuthProvider(*cfg.credentials)
    if cfg.protocol_version:
        kwargs["protocol_version"] = cfg.protocol_version
    kwargs.update(overrides)
    return Cluster(**kwargs)


def connect_error(exc: Exception, cfg: ClusterConfig, name: str) -> ConnectError:
    """The ConnectError for a driver's failure to connect (``NoHostAvailable``): the TLS
    failure explained with its fix when it is one, else a refused login or an unreachable
    cluster."""


    errors = dict(getattr(exc, "errors", None) or {})
    where = describe(cfg)
    bundle = cfg.secure_connect_bundle is not None
    for endpoint, err in errors.items():
        host, port, sni = _endpoint(endpoint)
        if host is None or isinstance(err, AuthenticationFailed):
            continue
        if bundle:
            failure = tls_diagnosis.classify(err)
            if failure is not None and failure is not tls_diagnosis.Failure.CLOSED:
                return ConnectError(
                    f"{name} ({where}): TLS to the SNI proxy {host}:{port} (node {sni}) failed: "
                    f"{failure.value} ({tls_diagnosis.short_error(err)})",
                    hint=f"the bundle does not match this database: download its secure connect "
                         f"bundle again and set {name}.secure_connect_bundle")
            continue
        explanation = tls_diagnosis.explain(err, name=name, tls=cfg.tls, host=host, port=port,
                                  server_hostname=sni, timeout=min(cfg.connect_timeout_s, 5.0))
        if explanation is not None:
            return ConnectError(f"{name}: {explanation.message}", hint=explanation.hint)
    detail = "; ".join(f"{host}: {tls_diagnosis.short_error(err)}" for host, err in errors.items()) or str(exc)
    auth = any(isinstance(e, AuthenticationFailed) for e in errors.values())
    if auth:
        return ConnectError(f"{name} ({where}): login refused: {detail}",
                            hint=f"check {name}.username / {name}.password in zdm.yaml")
    fix = (f"check that the database is active (Astra console) and {name}.secure_connect_bundle"
           if bundle else f"check {name}.contact_points and {name}.port in zdm.yaml")
    return ConnectError(f"{name} ({where}): not reachable: {detail}",
                        hint=f"{fix}, and that the cluster is up (`zdm sandbox status` for the sandbox)")


_ENDPOINT = re.compile(r"^(.*):(\d+)(?::([^:]+))?$")


def _endpoint(endpoint) -> tuple[str | None, int | None, str | None]:
    """(host, port, SNI name) of a key of ``NoHostAvailable.errors``: an EndPoint, or its
    text ``host:port`` / ``host:port:server_name`` (SNI), which is what the driver puts there."""
    if hasattr(endpoint, "address") and hasattr(endpoint, "port"):
        return endpoint.address, endpoint.port, getattr(endpoint, "_server_name", None)
    match = _ENDPOINT.match(str(endpoint))
    if match is None:
        return None, None, None
    return match.group(1).strip("[]"), int(match.group(2)), match.group(3)


@contextmanager
def session(cfg: ClusterConfig, *, name: str = "cluster", keyspace: str | None = None,
            **overrides) -> Iterator:
    """A connected driver Session; a failure to connect becomes a ConnectError naming the cluster."""

    cluster = make_cluster(cfg, name=name, **overrides)
    try:
        try:
            sess = cluster.connect(keyspace)
        except NoHostAvailable as exc:
            raise connect_error(exc, cfg, name) from None
        yield sess
    finally:
        cluster.shutdown()
