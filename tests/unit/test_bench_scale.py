"""The copy and validate benchmarks at several sizes: the sizes they accept, and the marginal
rows/s they report between two sizes (which start-up does not count in)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from _common import marginal, row_counts, summary  # noqa: E402


def test_sizes_are_counts_with_k_and_m_ascending():
    assert row_counts("3M,1M") == [1_000_000, 3_000_000]
    assert row_counts("300000") == [300_000]
    assert row_counts("500k, 1.5M") == [500_000, 1_500_000]
    for bad in ("ten", "0", "1M,1M", "-5"):
        with pytest.raises(argparse.ArgumentTypeError):
            row_counts(bad)


def run(tool, rows, seconds, ok=True, rss=100.0):
    return {"shape": "single", "tool": tool, "rows": rows, "seconds": seconds, "ok": ok,
            "peak_rss_mb": rss, "load": (1.0, 2.0)}


def test_marginal_rate_is_the_slope_and_a_failed_size_has_none():
    lines = summary([run("zdm migrate", 1_000_000, 40.0, rss=300), run("zdm migrate", 3_000_000, 120.0, rss=310),
                     run("CDM Migrate", 1_000_000, 115.0), run("CDM Migrate", 3_000_000, 315.0),
                     run("DSBulk", 1_000_000, 70.0), run("DSBulk", 3_000_000, 200.0, ok=False)])
    by_tool = {m["tool"]: m for m in marginal(lines)}
    zdm, cdm, dsbulk = by_tool["zdm migrate"], by_tool["CDM Migrate"], by_tool["DSBulk"]
    assert zdm["rows_per_s"] == pytest.approx(2_000_000 / 80)
    assert cdm["rows_per_s"] == pytest.approx(2_000_000 / 200)
    assert cdm["zdm_speedup"] == pytest.approx(200 / 80)
    assert zdm["peak_rss_mb"] == (300, 310)
    assert dsbulk["rows_per_s"] is None and not dsbulk["ok"] and dsbulk["zdm_speedup"] is None
    # the whole-run rate counts start-up: below the marginal one for a tool with a fixed cost
    cdm_3m = next(ln for ln in lines if ln["tool"] == "CDM Migrate" and ln["rows"] == 3_000_000)
    assert cdm_3m["rows_per_s"] < cdm["rows_per_s"]


def test_cdm_counters_are_read_from_its_final_lines_and_lost_work_is_named():
    from _contenders import CDM_COUNTER, cdm_lost_work

    log = ("26/12/08 00:22:00 INFO JobCounter: Final Read Record Count: 1000000\n"
           "26/12/08 00:22:00 INFO JobCounter: Final Error Record Count: 312566\n"
           "26/12/08 00:22:00 INFO JobCounter: Final Partitions Passed: 11\n"
           "26/12/08 00:22:00 INFO JobCounter: Final Partitions Failed: 5\n")
    counters = {n.lower().replace(" ", "_"): int(v) for n, v in CDM_COUNTER.findall(log)}
    assert counters == {"read": 1_000_000, "error": 312_566, "partitions_passed": 11, "partitions_failed": 5}
    assert cdm_lost_work(counters) == "error 312,566, partitions_failed 5"
    assert cdm_lost_work({"read": 10, "write": 10, "error": 0, "partitions_failed": 0}) is None
    assert cdm_lost_work({}) == "no final counters in its log"


def test_zdm_is_read_against_each_limit_at_the_largest_size():
    from _contenders import against_limit

    lines = summary([run("zdm migrate", 1_000_000, 40.0), run("zdm migrate", 3_000_000, 120.0)])
    limits = [{"shape": "single", "tool": "limit: copy (gocql)", "rows": 1_000_000, "rows_per_s": 50_000.0, "ok": True},
              {"shape": "single", "tool": "limit: copy (gocql)", "rows": 3_000_000, "rows_per_s": 40_000.0, "ok": True},
              {"shape": "single", "tool": "limit: target ingest (gocql)", "rows": 3_000_000, "rows_per_s": 0,
               "ok": False}]
    (only,) = against_limit(marginal(lines), limits)
    assert only["limit"] == "limit: copy (gocql)" and only["limit_rows_per_s"] == 40_000.0
    assert only["ratio"] == pytest.approx(25_000 / 40_000)
