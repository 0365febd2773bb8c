"""The demo: zdm's main job, run end to end on the local sandbox.

Today it proves both clusters answer: for each, a login, its identity, and a write
read back through the real driver.  Each later capability adds its step here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from zdm.config import ClusterConfig, Config
from zdm.connect import session
from zdm.errors import ZdmError

DEMO_KEYSPACE = "zdm_demo"


@dataclass(frozen=True)
class ClusterCheck:
    name: str
    address: str
    cluster_name: str
    release_version: str
    round_trip_ms: float


def check_cluster(cfg: ClusterConfig, name: str) -> ClusterCheck:
    with session(cfg, name=name) as s:
        local = s.execute("SELECT cluster_name, release_version FROM system.local").one()
        s.execute(f"CREATE KEYSPACE IF NOT EXISTS {DEMO_KEYSPACE} WITH replication = "
                  "{'class': 'SimpleStrategy', 'replication_factor': 1}")
        s.execute(f"CREATE TABLE IF NOT EXISTS {DEMO_KEYSPACE}.hello (cluster text PRIMARY KEY, at timestamp)")
        started = time.perf_counter()
        s.execute(f"INSERT INTO {DEMO_KEYSPACE}.hello (cluster, at) VALUES (%s, toTimestamp(now()))", (name,))
        row = s.execute(f"SELECT cluster FROM {DEMO_KEYSPACE}.hello WHERE cluster = %s", (name,)).one()
        elapsed = (time.perf_counter() - started) * 1000
        if row is None or row.cluster != name:
            raise ZdmError(f"{name}: the row just written was not read back")
        address = ", ".join(f"{h}:{cfg.port}" for h in cfg.contact_points)
        return ClusterCheck(name, address, local.cluster_name, local.release_version, elapsed)


def run(config: Config) -> list[ClusterCheck]:
    return [check_cluster(config.origin, "origin"), check_cluster(config.target, "target")]
