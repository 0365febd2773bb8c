"""``zdm migrate``: copy pre-existing data from origin to target, cell for cell.

Public API: ``migrate(config, settings) -> MigrationReport`` (:mod:`zdm.migrate.run`) and
the per-range ``copy_range(ctx, spec, range)`` (:mod:`zdm.migrate.copy`) it is built on (a
plain async function of the range and the worker's settings, so another engine can run it).

Documented choices and caveats:
- Writetime and TTL are kept per cell; for non-frozen collections per element and
  for non-frozen UDTs per field (Cassandra 5.0 exposes them).  An origin before 5.0
  rejects ``WRITETIME(collection)``: there those columns take the fallback
  (:mod:`zdm.migrate.fallback`), written by contents at a timestamp below the start of
  dual writes, so that every live write wins; their element writetimes and TTLs are lost.
- Row markers cannot be read through CQL: see :mod:`zdm.migrate.cells` (oldest group
  is an INSERT; primary-key-only rows use timestamp 0 so any live write wins).
- Sets whose Python order differs from Cassandra's (e.g. set<uuid>) may pair element
  writetimes with the wrong element when their elements carry different writetimes.
- Counters are copied as deltas (``target += origin - target``, target read first).
  A live increment landing between the two reads is counted once on one side and
  not the other; copy counter tables while no increments run, or re-run migrate after.
- List appends are made idempotent by reading target's list first; a live append
  racing the copy may end up ordered differently on target.
- Writes travel in UNLOGGED batches of partitions with the same target replicas, within
  target's warning thresholds (:mod:`zdm.ranges.batches`).  A batch is not atomic and
  need not be: a range whose batch failed or timed out is copied again, and every write
  but counters' and list appends' is idempotent by its timestamp (those two read target
  first, as above).
"""

from zdm.migrate.report import MigrationReport
from zdm.migrate.run import MigrationSettings, migrate
from zdm.ranges.context import RunSettings

__all__ = ["MigrationReport", "MigrationSettings", "RunSettings", "migrate"]
