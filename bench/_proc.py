"""A process tree's CPU time and memory, read from /proc: what the benchmarks charge to a
tool (a proxy and its workers, a copy and its worker processes, a JVM and its children)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    """Fields of /proc/PID/stat after the command name: [0] state, [1] ppid, [11] utime, ..."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                children.setdefault(int(_stat(int(entry))[1]), []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def tree_cpu_seconds(root: int | None) -> float:
    """utime+stime of every process in the tree, plus what their reaped children used."""
    if root is None:
        return 0.0
    ticks = 0
    for pid in process_tree(root):
        with contextlib.suppress(OSError):
            ticks += sum(int(v) for v in _stat(pid)[11:15])
    return ticks / CLK_TCK


def tree_rss_kb(root: int) -> int:
    total = 0
    for pid in process_tree(root):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as f:
            total += next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
    return total


class PeakRss:
    """The largest RSS the tree of ``proc`` reached, sampled every ``interval`` seconds from a
    thread until :meth:`stop` (or the process ends)."""

    def __init__(self, proc: subprocess.Popen, interval: float = 0.25) -> None:
        self.peak_kb = 0
        self._proc = proc
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, args=(interval,), daemon=True)
        self._thread.start()

    def _sample(self, interval: float) -> None:
        while not self._done.is_set() and self._proc.poll() is None:
            with contextlib.suppress(OSError):
                self.peak_kb = max(self.peak_kb, tree_rss_kb(self._proc.pid))
            self._done.wait(interval)

    def stop(self) -> int:
        self._done.set()
        self._thread.join()
        return self.peak_kb
