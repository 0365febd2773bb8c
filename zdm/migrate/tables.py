"""The tables a run works on, and the ranges it cuts the ring into: what migrate, validate and
repair plan the same way.

:func:`plan_tables` reads the tables in scope from origin's schema, checks that target has each
of them with every column, and cuts the ring at origin's ownership boundaries
(:func:`zdm.ranges.ring.split_ring`).  Whether a table's cells can be copied exactly is decided
here, from origin's release: before Cassandra 5.0 its non-frozen collections and UDTs take the
fallback (:mod:`zdm.migrate.fallback`), whose timestamp :func:`with_fallback_timestamp` sets
from when dual writes began.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

from zdm.config import Config
from zdm.errors import ZdmError
from zdm.migrate.fallback import fallback_timestamp
from zdm.migrate.schema import TableSpec, tables_in_scope
from zdm.ranges import engine
from zdm.ranges.context import RunSettings, connect
from zdm.ranges.ring import TokenRange, cluster_boundaries, split_ring
from zdm.releases import has_element_metadata, parse_version
from zdm.scope import Scope
from zdm.state import open_store


def origin_release(cluster) -> tuple[str | None, str | None]:
    """(release_version, dse_version) of origin's oldest node, as the driver saw them."""
    hosts = [h for h in cluster.metadata.all_hosts() if h.release_version]
    if not hosts:
        return None, None
    oldest = min(hosts, key=lambda h: parse_version(h.release_version) or (0,))
    dse = next((h.dse_version for h in hosts if getattr(h, "dse_version", None)), None)
    return oldest.release_version, dse


def plan_tables(config: Config, scope: Scope, run: RunSettings) -> tuple[list[TableSpec], list[TokenRange]]:
    """Tables in the config's scope narrowed by ``scope`` (the command's options, see
    :meth:`zdm.scope.Scope.narrow`), from origin's schema and checked against target's, and the
    range plan.

    Columns whose cells' metadata origin cannot read are marked not exact; their
    ``fallback_timestamp`` is left for :func:`with_fallback_timestamp`."""
    cluster, _session = connect(config.origin, "origin", run.request_timeout_s)
    try:
        release, dse = origin_release(cluster)
        specs = tables_in_scope(cluster.metadata, Scope.of(config).narrow(scope),
                                element_metadata=has_element_metadata(release, dse))
        plan = split_ring(cluster_boundaries(cluster), run.range_count())
    finally:
        cluster.shutdown()
    tcluster, _tsession = connect(config.target, "target", run.request_timeout_s)
    try:
        for spec in specs:
            ks = tcluster.metadata.keyspaces.get(spec.keyspace)
            table = ks.tables.get(spec.name) if ks else None
            if table is None:
                raise ZdmError(f"table {spec.qualified} does not exist on target",
                               hint="create the schema on target first (same keyspaces, tables, types)")
            missing = [c.name for c in spec.columns if c.name not in table.columns]
            if missing:
                raise ZdmError(f"table {spec.qualified} on target lacks column(s) {', '.join(missing)}",
                               hint="make target's schema match origin's before copying")
    finally:
        tcluster.shutdown()
    return specs, plan


def plan_run(config: Config, scope: Scope, run: RunSettings, *, dual_writes_since: datetime | None,
             needed_for: str | None
             ) -> tuple[RunSettings, list[TableSpec], list[TokenRange], datetime | None]:
    """What a copy or a validation works on: ``run`` ready on its engine
    (:func:`zdm.ranges.engine.prepare`), the tables in scope (none is refused) with the
    fallback's timestamp (:func:`with_fallback_timestamp`), and the range plan."""
    run = engine.prepare(run)
    specs, plan = plan_tables(config, scope, run)
    if not specs:
        raise ZdmError("no tables in scope", hint="check scope.keyspaces in zdm.yaml or --keyspace")
    specs, since = with_fallback_timestamp(config, specs, dual_writes_since, needed_for=needed_for)
    return run, specs, plan, since


def with_fallback_timestamp(config: Config, specs: list[TableSpec], since: datetime | None, *,
                            needed_for: str | None) -> tuple[list[TableSpec], datetime | None]:
    """Give the tables that take the fallback its timestamp, from ``since`` or, when None,
    from when the migration last entered phase 1.  When that is unknown, refuse if the
    fallback is needed (``needed_for`` names what for), else leave it unset."""
    inexact = [s.qualified for s in specs if s.fallback_columns]
    if not inexact:
        return specs, None
    if since is None:
        with open_store(config) as store:
            since = store.load().dual_writes_since
    if since is None:
        if needed_for is None:
            return specs, None
        raise ZdmError(
            f"{needed_for} {', '.join(inexact)} needs to know when dual writes began: origin "
            "cannot read the writetimes of their non-frozen collections and UDTs, so those are "
            "written just below the start of dual writes, and the migration has not entered "
            "phase 1 (the state has no record of it)",
            hint="start the proxy and run `zdm phase advance` to phase 1 before copying, or pass "
                 "--dual-writes-since with the time (ISO 8601, UTC) your proxy began dual writes")
    ts = fallback_timestamp(since)
    return [dataclasses.replace(s, fallback_timestamp=ts) if s.fallback_columns else s
            for s in specs], since
