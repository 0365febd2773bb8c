"""Benchmark: `zdm migrate` vs a naive cassandra-driver copy loop, same run, same table.

    python bench/migrate.py --rows 1000000 --workers 2
"""

from __future__ import annotations

import time

from _common import args, config, sessions, setup, side_by_side, teardown

from zdm.migrate import MigrationSettings, RunSettings, Scope, migrate


def naive_copy(o, t, ks: str, limit: int) -> int:
    """The plain loop: page through origin, one synchronous INSERT per row (keeping writetime)."""
    ins = t.prepare(f"INSERT INTO {ks}.naive (pk, ck, v, n) VALUES (?, ?, ?, ?) USING TIMESTAMP ?")
    n = 0
    for row in o.execute(f"SELECT pk, ck, v, n, WRITETIME(v) FROM {ks}.data LIMIT {limit}"):
        t.execute(ins, tuple(row))
        n += 1
    return n


def main() -> None:
    a = args(__doc__)
    o, t = sessions(a)
    ks = setup(o, t, a.rows)
    try:
        t0 = time.monotonic()
        base_rows = naive_copy(o, t, ks, min(a.baseline_rows, a.rows))
        base_s = time.monotonic() - t0
        settings = MigrationSettings(scope=Scope(keyspaces=(ks,), tables=(f"{ks}.data",)),
                                     run=RunSettings(workers=a.workers), record_evidence=False)
        t0 = time.monotonic()
        report = migrate(config(a), settings)
        zdm_s = time.monotonic() - t0
        assert report.complete
        side_by_side(f"migrate ({a.rows:,} rows, {a.workers} workers)", report.rows_copied, zdm_s,
                     base_rows, base_s, "naive copy loop")
    finally:
        teardown(o, t, ks, a.keep)


if __name__ == "__main__":
    main()
