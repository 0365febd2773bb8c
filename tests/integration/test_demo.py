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


def test_demo_with_the_console_shows_each_phase_and_stays_up(zdm_config, tmp_path):
    """`zdm demo --console`: the page's API follows the demo phase by phase while it runs,
    and the console stays up afterwards with the demo's journal, until Ctrl-C."""
    import json
    import signal
    import subprocess
    import sys
    import threading
    import time
    import urllib.request

    port = free_port()
    config = tmp_path / "zdm.yaml"
    config.write_text(f"origin: {{port: {zdm_config.origin.port}}}\n"
                      f"target: {{port: {zdm_config.target.port}}}\n"
                      f"proxy: {{listen_port: {free_port()}, metrics_port: {free_port()}}}\n"
                      f"state_dir: {tmp_path / 'state'}\n")
    proc = subprocess.Popen([sys.executable, "-m", "zdm.cli.main", "demo", "--config", str(config),
                             "--rows", "200", "--rate", "30", "--console", "--console-port", str(port),
                             "--pause", "1.5"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(proc.stdout), daemon=True)
    reader.start()
    seen: list[int] = []
    deadline = time.monotonic() + 300
    try:
        while not any("Ctrl-C stops it" in line for line in output):
            assert proc.poll() is None, "".join(output)
            assert time.monotonic() < deadline, "".join(output)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/state", timeout=5) as r:
                    phase = json.load(r)["phase"]["number"]
                if not seen or seen[-1] != phase:
                    seen.append(phase)
            except OSError:
                pass
            time.sleep(0.3)
        assert any(f"http://127.0.0.1:{port}/" in line for line in output[:5]), output[:5]
        # every phase was on the page while the demo ran, in order
        assert seen == [0, 1, 2, 3, 4, 5], seen
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/state", timeout=5) as r:
            doc = json.load(r)
        moves = [e for e in doc["journal"] if e.get("event") == "advance"]
        assert len(moves) == 5 and {e["source"] for e in moves} == {"demo"}
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0, "".join(output)
    finally:
        if proc.poll() is None:
            proc.kill()
