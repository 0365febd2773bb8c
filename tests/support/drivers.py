"""The driver matrix's programs: one per driver family, each an application of that driver.

Every family's program (tests/drivers/<family>/) takes the same command line and prints one
JSON line per scenario (the contract: tests/drivers/README.md):

    <program> --host H --port P --protocol {3,4,5} --compression {none,lz4,snappy}
              --keyspace KS --scenarios NAME[,NAME...]

This module knows, per family, the command that runs its program, which protocols and
compressions its driver speaks, and whether the program is built (tests/drivers/build builds
them, once per version of their sources); :func:`run` runs one and parses what it printed.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

DRIVERS = Path(__file__).resolve().parent.parent / "drivers"

#: every scenario, in the order a run goes through them
SCENARIOS = ("prepared_alter_add", "prepared_type_change", "paging", "udt_collections", "lwt",
             "counters", "batches", "schema_metadata", "compression")
#: what a run with compression goes through: the big row, plus a schema change and paging
COMPRESSION_SCENARIOS = ("prepared_alter_add", "paging", "compression")


@dataclass(frozen=True)
class Family:
    name: str
    driver: str
    protocols: tuple[int, ...]
    #: compression -> the protocols the driver compresses with it at
    compressions: dict[str, tuple[int, ...]] = field(default_factory=dict)
    #: why there is no compression run, when there is none
    no_compression: str | None = None

    def command(self) -> list[str]:
        home = DRIVERS / self.name
        if self.name == "python":
            return [sys.executable, str(home / "matrix.py")]
        if self.name == "node" and not (home / "matrix").exists():
            return ["node", str(home / "matrix.js")]
        return ["bash", str(home / "matrix")]  # the family's launcher: it finds the build

    def not_built(self) -> str | None:
        """Why the program cannot run yet (None: it can)."""
        if self.name == "python":
            return None  # the test tools' own driver
        home = DRIVERS / self.name
        if not ((home / "matrix").exists() or (home / "matrix.js").exists()):
            return f"tests/drivers/{self.name} has no program yet"
        if self.name == "node":
            return None if (home / "node_modules" / "cassandra-driver").is_dir() else \
                "the Node.js driver is not installed: run tests/drivers/build"
        flag = "--print-path" if self.name == "go" else "--print-dir"
        where = Path(subprocess.run(["bash", str(home / "build"), flag], check=True,
                                    capture_output=True, text=True).stdout.strip())
        built = where / "matrix.jar" if self.name == "java" else where
        return None if built.exists() else f"{built} is not built: run tests/drivers/build"

    def compression_unavailable(self, compression: str) -> str | None:
        """Why this process cannot run the family with ``compression`` (None: it can)."""
        if self.name != "python":
            return None  # built in: a program that cannot exits 3, which fails the run
        module = {"lz4": "lz4", "snappy": "snappy"}[compression]
        if importlib.util.find_spec(module) is None:
            return f"the Python package for {compression} is missing: pip install -e '.[test]'"
        return None


FAMILIES = {f.name: f for f in (
    Family("python", "DataStax Python driver", (3, 4, 5), {"lz4": (4, 5), "snappy": (4,)}),
    # gocql (Apache's cassandra-gocql-driver v2) speaks v5; snappy is frame compression (v3/v4)
    Family("go", "gocql v2", (3, 4, 5), {"snappy": (3, 4), "lz4": (4, 5)}),
    Family("java", "DataStax Java driver 4", (3, 4, 5), {"lz4": (4, 5), "snappy": (4,)}),
    Family("node", "DataStax Node.js driver", (3, 4),
           no_compression="the Node.js driver has no compression"),
)}


@dataclass(frozen=True)
class Run:
    """What one program run printed: ``lines`` are its JSON lines, in order."""
    argv: tuple[str, ...]
    returncode: int
    lines: tuple[dict, ...]
    stderr: str
    #: stdout lines that were not JSON (a program must print none)
    stray: tuple[str, ...] = ()

    def by_scenario(self) -> dict[str, dict]:
        return {line.get("scenario"): line for line in self.lines}

    def describe(self) -> str:
        tail = "\n".join(self.stderr.strip().splitlines()[-30:])
        return (f"`{' '.join(self.argv)}` exited with {self.returncode}"
                + (f"\nstdout that is not JSON: {list(self.stray)}" if self.stray else "")
                + (f"\nstderr (last lines):\n{tail}" if tail else ""))


def start(family: Family, port: int, protocol: int, compression: str, keyspace: str,
          scenarios: tuple[str, ...], host: str = "127.0.0.1") -> subprocess.Popen:
    """Start one run of ``family``'s program (:func:`finish` collects it), so that two runs, a
    direct one and one through the proxy, can go side by side."""
    argv = [*family.command(), "--host", host, "--port", str(port), "--protocol", str(protocol),
            "--compression", compression, "--keyspace", keyspace, "--scenarios", ",".join(scenarios)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)


def finish(proc: subprocess.Popen, timeout: float = 300) -> Run:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        err += f"\n(killed after {timeout:g} s)"
    lines, stray = [], []
    for text in out.splitlines():
        try:
            lines.append(json.loads(text))
        except ValueError:
            stray.append(text)
    return Run(tuple(proc.args), proc.returncode, tuple(lines), err, tuple(stray))


def run(family: Family, port: int, protocol: int, compression: str, keyspace: str,
        scenarios: tuple[str, ...], host: str = "127.0.0.1", timeout: float = 300) -> Run:
    return finish(start(family, port, protocol, compression, keyspace, scenarios, host), timeout)
