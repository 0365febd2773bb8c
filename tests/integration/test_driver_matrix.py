"""The driver matrix: the same scenarios run by each driver family (the Python driver, gocql,
the Java driver 4, the Node.js driver) directly against Cassandra and through a zdm proxy; any
difference between the two runs fails.

Each case is one (family, protocol, compression): its program runs once directly and once
through the proxy, side by side, each in a fresh keyspace, each running all its scenarios
(tests/support/drivers.py starts them). The direct run must itself be sane (the checks below)
so that a broken program cannot pass by printing the same nonsense twice. The proxies are
module-scoped, one per routing: phase 1 (writes to both, reads from origin, compared with a
direct run on origin) and phase 4 (reads from target, compared with a direct run on target,
for the scenarios whose prepared statements change under them).

A family whose program is not built is skipped with the reason, except in CI (CI=true), where
tests/drivers/build has run and a missing program is a failure.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import uuid

import pytest

from tests.support import drivers
from tests.support.harness import RunningProxy
from tests.support.net import free_port
from zdm.config import ProxyConfig

IN_CI = os.environ.get("CI") == "true"


def cases(*, compression=True):
    """(family, protocol, compression) for every protocol each family speaks, then for each
    compression it does (only when ``compression``), with readable ids: go-v4-snappy."""
    out = []
    for family in drivers.FAMILIES.values():
        out += [pytest.param(family, v, "none", id=f"{family.name}-v{v}-none") for v in family.protocols]
        if not compression:
            continue
        out += [pytest.param(family, v, c, id=f"{family.name}-v{v}-{c}")
                for c, versions in family.compressions.items() for v in versions]
        if family.no_compression:  # said in the run's summary rather than left out silently
            out.append(pytest.param(family, 0, "any", id=f"{family.name}-compression",
                                    marks=pytest.mark.skip(reason=family.no_compression)))
    return out


def require_built(family: drivers.Family, compression: str) -> None:
    reason = family.not_built() or (compression != "none" and family.compression_unavailable(compression))
    if reason:
        message = f"{family.driver}: {reason}"
        if IN_CI:
            pytest.fail(f"{message} (in CI every family must run: tests/drivers/build)")
        pytest.skip(message)


# -- sanity of a direct run: what each scenario must show against a real node -------------

ROWS_T1 = [{"ck": 1, "pk": 0, "v": "a"}, {"ck": 2, "pk": 0, "v": "b"}]


def sane_prepared_alter_add(r):
    assert r["before"] == ROWS_T1
    # "after" is what the driver makes of the new rows, right or wrong: the Java driver 4 at v4
    # keeps the statement's old result metadata and reads column a's value as v's. The proxy
    # must give the driver the same, so only the keys are checked here.
    assert [(row["pk"], row["ck"]) for row in r["after"]] == [(0, 1), (0, 2)], r["after"]


def sane_prepared_type_change(r):
    if r["second_insert"] == "ok":
        assert r["rows"] == [{"pk": 2, "v": 20}], r
    else:
        assert set(r["second_insert"]) == {"error"} and r["rows"] == [], r


def sane_paging(r):
    assert r == {"simple": list(range(50)), "prepared": list(range(50))}


def sane_udt_collections(r):
    assert [row["pk"] for row in r] == [1, 2], r
    assert all(set(row) == {"pk", "l", "s", "m", "a", "la", "tu"} for row in r), r
    assert r[0]["l"][-1] == 9 and r[0]["s"] == sorted(r[0]["s"]), r


def sane_lwt(r):
    assert [step["applied"] for step in r] == [True, False, True, False, True], r
    assert r[0]["row"] is None and r[1]["row"]["v"] == 1, r


def sane_counters(r):
    assert r == {"n": 11}


def sane_batches(r):
    assert r == {"lwt_batch_applied": True, "rows": [
        {"pk": pk, "ck": ck, "v": v} for pk, ck, v in
        ((1, 1, "a"), (1, 2, "b"), (1, 3, "f"), (2, 1, "c"), (3, 1, "d"), (3, 2, "e"))]}


def sane_schema_metadata(r):
    assert r["partition_key"] == ["pk"], r
    assert [name for name, _ in r["clustering"]] == ["ck"], r
    assert r["clustering"][0][1].upper().startswith("DESC"), r
    assert set(r["columns"]) == {"pk", "ck", "v"}, r


def sane_compression(r):
    assert r == [[1, 20000, "zdmzdmzdmz"], [2, 300, "zdmzdmzdmz"]]


SANE = {name: globals()[f"sane_{name}"] for name in drivers.SCENARIOS}


def assert_sane(run: drivers.Run, scenarios) -> None:
    assert run.returncode == 0 and not run.stray, run.describe()
    assert [line.get("scenario") for line in run.lines] == list(scenarios), run.describe()
    for line in run.lines:
        assert "error" not in line, f"{line['scenario']} failed on the direct run: {line}"
        try:
            SANE[line["scenario"]](line["result"])
        except AssertionError as e:
            raise AssertionError(f"the direct run's {line['scenario']} is not what the node holds: "
                                 f"{e}\n{json.dumps(line['result'], sort_keys=True)}") from None


# -- comparing two runs --------------------------------------------------------------------

def compared(line: dict) -> dict:
    """What must be equal: the result or the error kind (the message is for diagnosis only)."""
    return {k: v for k, v in line.items() if k != "message"}


def differences(direct: drivers.Run, proxied: drivers.Run, scenarios) -> str:
    """A readable account of every scenario the two runs disagree on ('' when none)."""
    a, b = direct.by_scenario(), proxied.by_scenario()
    out = []
    for name in scenarios:
        if name not in b:
            out.append(f"{name}: no line from the proxied run")
            continue
        if compared(a[name]) == compared(b[name]):
            continue
        before = json.dumps(compared(a[name]), indent=1, sort_keys=True).splitlines()
        after = json.dumps(compared(b[name]), indent=1, sort_keys=True).splitlines()
        diff = "\n".join(difflib.unified_diff(before, after, "direct", "through the proxy", lineterm="", n=2))
        note = f"\n(proxy's message: {b[name]['message']})" if "message" in b[name] else ""
        out.append(f"{name} differs:\n{diff}{note}")
    return "\n\n".join(out)


def keyspace_name(family, protocol, compression, path) -> str:
    return f"dm_{family.name}_v{protocol}_{compression}_{path}_{uuid.uuid4().hex[:8]}"


def run_pair(family, protocol, compression, scenarios, direct_port, proxy_port, sessions):
    """Run the program directly and through the proxy at once; drop what either left behind."""
    keyspaces = {path: keyspace_name(family, protocol, compression, path) for path in ("direct", "proxy")}
    procs = {path: drivers.start(family, port, protocol, compression, keyspaces[path], scenarios)
             for path, port in (("direct", direct_port), ("proxy", proxy_port))}
    try:
        return drivers.finish(procs["direct"]), drivers.finish(procs["proxy"])
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
        for s in sessions:  # a run that failed half-way leaves its keyspace
            for ks in keyspaces.values():
                s.execute(f"DROP KEYSPACE IF EXISTS {ks}")


def assert_same(direct, proxied, scenarios, routing: str) -> None:
    assert_sane(direct, scenarios)
    # pytrace=False: the account below is the whole story, a traceback would bury it
    if proxied.returncode != 0 or proxied.stray:
        pytest.fail(f"the run through the proxy ({routing}) failed where the direct run passed: "
                    f"{proxied.describe()}", pytrace=False)
    diff = differences(direct, proxied, scenarios)
    if diff:
        pytest.fail(f"through the proxy ({routing}) the driver saw something else than directly:\n\n{diff}",
                    pytrace=False)


# -- the proxies ---------------------------------------------------------------------------

def proxy_in_phase(zdm_config, phase: int):
    from zdm.phases.model import Phase, routing_for

    proxy = RunningProxy(dataclasses.replace(zdm_config, proxy=ProxyConfig(listen_port=free_port())))
    proxy.server.routing = routing_for(Phase(phase))
    return proxy


@pytest.fixture(scope="module")
def phase1_proxy(zdm_config):
    """Writes to both clusters, reads from origin."""
    proxy = proxy_in_phase(zdm_config, 1)
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def phase4_proxy(zdm_config):
    """Writes to both clusters, reads from target."""
    proxy = proxy_in_phase(zdm_config, 4)
    yield proxy
    proxy.stop()


# -- the matrix ----------------------------------------------------------------------------

@pytest.mark.parametrize(("family", "protocol", "compression"), cases())
def test_driver_sees_the_same_through_the_proxy(family, protocol, compression, phase1_proxy, sandbox,
                                                 origin_session, target_session):
    require_built(family, compression)
    scenarios = drivers.COMPRESSION_SCENARIOS if compression != "none" else \
        tuple(s for s in drivers.SCENARIOS if s != "compression")
    direct, proxied = run_pair(family, protocol, compression, scenarios, sandbox.origin_port,
                               phase1_proxy.port, (origin_session, target_session))
    assert_same(direct, proxied, scenarios, "phase 1, reads from origin")


PREPARED_CHANGES = ("prepared_alter_add", "prepared_type_change")


@pytest.mark.parametrize(("family", "protocol", "compression"), cases(compression=False))
def test_prepared_statements_read_from_target_as_directly(family, protocol, compression, phase4_proxy,
                                                          sandbox, origin_session, target_session):
    require_built(family, compression)
    direct, proxied = run_pair(family, protocol, compression, PREPARED_CHANGES, sandbox.target_port,
                               phase4_proxy.port, (origin_session, target_session))
    assert_same(direct, proxied, PREPARED_CHANGES, "phase 4, reads from target")


def test_a_difference_reads_as_a_diff():
    """The runner's own account of a mismatch: the scenario, a diff, the proxy's message."""
    direct = drivers.Run(("p",), 0, ({"scenario": "counters", "result": {"n": 11}},), "")
    proxied = drivers.Run(("p",), 0, ({"scenario": "counters", "error": "Unavailable", "message": "x"},), "")
    text = differences(direct, proxied, ("counters",))
    assert text.startswith("counters differs:") and '+ "error": "Unavailable",' in text
    assert '-  "n": 11' in text and "(proxy's message: x)" in text
    assert differences(direct, direct, ("counters",)) == ""
