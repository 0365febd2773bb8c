"""Benchmark: `zdm validate` (merge-join of range scans) vs per-row point reads, same run.

    python bench/validate.py --rows 1000000 --workers 2
"""

from __future__ import annotations

import time

from _common import args, config, sessions, setup, side_by_side, teardown

from zdm.migrate import MigrationSettings, RunSettings, Scope, migrate
from zdm.validate import ValidationSettings, validate


def naive_validate(o, t, ks: str, limit: int) -> tuple[int, int]:
    """The plain loop: scan origin, one point read of target per row, compare."""
    get = t.prepare(f"SELECT v, n, WRITETIME(v) FROM {ks}.data WHERE pk = ? AND ck = ?")
    n = bad = 0
    for row in o.execute(f"SELECT pk, ck, v, n, WRITETIME(v) FROM {ks}.data LIMIT {limit}"):
        other = t.execute(get, (row[0], row[1])).one()
        bad += other is None or tuple(other) != tuple(row[2:])
        n += 1
    return n, bad


def main() -> None:
    a = args(__doc__)
    o, t = sessions(a)
    ks = setup(o, t, a.rows)
    scope = Scope(keyspaces=(ks,), tables=(f"{ks}.data",))
    try:
        cfg = config(a)
        assert migrate(cfg, MigrationSettings(scope=scope, run=RunSettings(workers=a.workers),
                                              record_evidence=False)).complete
        t0 = time.monotonic()
        base_rows, bad = naive_validate(o, t, ks, min(a.baseline_rows, a.rows))
        base_s = time.monotonic() - t0
        assert bad == 0
        t0 = time.monotonic()
        report = validate(cfg, ValidationSettings(scope=scope, run=RunSettings(workers=a.workers),
                                                  record_evidence=False))
        zdm_s = time.monotonic() - t0
        assert report.clean
        side_by_side(f"validate ({a.rows:,} rows, {a.workers} workers)", report.tables[0].rows_origin,
                     zdm_s, base_rows, base_s, "per-row point reads")
    finally:
        teardown(o, t, ks, a.keep)


if __name__ == "__main__":
    main()
