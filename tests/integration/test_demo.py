"""The README's main job: the demo's whole migration, with a live application, loses nothing."""

from __future__ import annotations

import dataclasses

from tests.support.net import free_port
from zdm import demo
from zdm.config import ProxyConfig


def test_demo_migrates_with_no_lost_write(zdm_config, tmp_path):
    config = dataclasses.replace(zdm_config, state_dir=tmp_path / "state",
                                 proxy=ProxyConfig(listen_port=free_port()))
    steps: list[str] = []
    report = demo.run(config, steps.append, rows=500, rate=60)
    assert report.phases == ["1 PROXY", "2 MIGRATE", "3 ASYNC_READS", "4 TARGET_READS", "5 CUTOVER"]
    assert report.app_writes > 0 and report.app_reads > 0
    assert (report.app_errors, report.read_misses, report.missing_on_target) == (0, 0, 0)
    assert report.origin_rows == report.target_rows == 500 + report.app_writes
    assert report.ok
    assert any("Async reads" in s and "0 mismatches" in s for s in steps)
