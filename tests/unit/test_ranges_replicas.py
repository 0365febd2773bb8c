"""Where range reads go and when a failed request is sent again, pure: the replica order
(local datacenter first, turn by turn, failed nodes last), the retryable failures, and which
of the copy's writes may be written twice."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from cassandra import InvalidRequest, OperationTimedOut, ReadTimeout, Unavailable, WriteTimeout
from cassandra.cluster import NoHostAvailable
from cassandra.connection import ConnectionShutdown
from cassandra.protocol import OverloadedErrorMessage, SyntaxException
from hypothesis import given
from hypothesis import strategies as st

from zdm.migrate.cells import Assignment, Op, Write
from zdm.migrate.schema import Column, Kind, TableSpec
from zdm.migrate.writer import idempotent
from zdm.ranges import failover
from zdm.ranges.replicas import candidates


@dataclass(frozen=True)
class Node:
    address: str
    datacenter: str
    is_up: bool | None = True


A1, A2, A3 = Node("a1", "dc1"), Node("a2", "dc1"), Node("a3", "dc1")
B1, B2 = Node("b1", "dc2"), Node("b2", "dc2")
EVERY = [A1, A2, A3, B1, B2]


@pytest.mark.parametrize("replicas, reachable, local_dc, turn, failed, expected", [
    ([A1, B1, A2], EVERY, "dc1", 0, (), [A1, A2, B1, A3, B2]),
    ([A1, B1, A2], EVERY, "dc1", 1, (), [A2, A1, B1, A3, B2]),
    ([A1, B1, A2], EVERY, "dc2", 0, (), [B1, A1, A2, B2, A3]),
    ([A1, B1, A2], EVERY, None, 1, (), [B1, A2, A1, A3, B2]),
    ([A1, B1, A2], [A2, A3, B1, B2], "dc1", 0, (), [A2, B1, A3, B2]),
    ([A1, B1, A2], EVERY, "dc1", 0, (A1,), [A2, B1, A3, B2, A1]),
    ([A1, A2], EVERY, "dc1", 0, (A1, A2), [A3, B1, B2, A1, A2]),
    ([A1, A2], [A1, A2], "dc1", 0, (A2, A1), [A1, A2]),
    ([], [A1, B1], "dc1", 0, (), [A1, B1]),
    ([A1, A2], [Node("a1", "dc1", is_up=False), A2], "dc1", 0, (), [A2]),
], ids=["local-replicas-first", "turn-rotates-local-replicas", "other-local-dc", "no-local-dc-all-local",
        "unreachable-replica-left-out", "failed-goes-last", "every-replica-failed-others-first",
        "every-node-failed-still-some", "no-token-map", "down-left-out"])
def test_candidates(replicas, reachable, local_dc, turn, failed, expected):
    assert candidates(replicas, reachable, local_dc, turn=turn, failed=failed) == expected


@given(st.integers(min_value=0, max_value=1000), st.sampled_from(["dc1", "dc2", None]))
def test_candidates_are_every_reachable_node_once_local_replicas_first(turn, local_dc):
    replicas = [A3, B2, A1]
    order = candidates(replicas, EVERY, local_dc, turn=turn)
    assert sorted(order, key=EVERY.index) == EVERY
    local = [h for h in replicas if local_dc is None or h.datacenter == local_dc]
    assert set(order[:len(local)]) == set(local)


def test_turns_spread_reads_over_every_local_replica():
    firsts = {candidates([A1, A2, A3, B1], EVERY, "dc1", turn=t)[0] for t in range(3)}
    assert firsts == {A1, A2, A3}


@pytest.mark.parametrize("exc, expected", [
    (NoHostAvailable("down", {}), True), (OperationTimedOut(), True), (ConnectionShutdown("reset"), True),
    (ReadTimeout("slow"), True), (WriteTimeout("slow", write_type=0), True), (Unavailable("one down"), True),
    (OverloadedErrorMessage(0, "busy", None), True),
    (InvalidRequest("no such table"), False), (SyntaxException(0, "bad", None), False),
    (ValueError("a bug"), False),
], ids=["no-host", "client-timeout", "connection-reset", "read-timeout", "write-timeout", "unavailable",
        "overloaded", "invalid", "syntax", "bug"])
def test_retryable(exc, expected):
    assert failover.retryable(exc) is expected


def test_backoff_grows_then_stays():
    waits = [failover.backoff(i) for i in range(failover.MAX_RETRIES)]
    assert waits == sorted(waits) and waits[-1] == failover.BACKOFF_S[-1]
    assert 30 <= sum(waits) <= 120  # outlasts the failure detector, not a node restart


SPEC = TableSpec("ks", "t", ("pk",), ("ck",),
                 (Column("v", "int", Kind.SIMPLE), Column("l", "list<int>", Kind.LIST),
                  Column("s", "set<int>", Kind.SET)))


@pytest.mark.parametrize("write, expected", [
    (Write(10, 0, (Assignment("v", Op.SET, 1),)), True),
    (Write(10, 0, (Assignment("s", Op.ADD, [1]),)), True),
    (Write(10, 0, (Assignment("l", Op.SET, [1]),)), True),
    (Write(10, 0, (Assignment("l", Op.ADD, [1]),)), False),
    (Write(10, 0, (Assignment("l", Op.PREPEND, [1]),)), False),
    (Write(None, 0, (Assignment("v", Op.INCR, 1),)), False),
    (Write(10, 0, (Assignment("l", Op.ADD, [1]),), chain="l"), False),
    (Write(10, 3600, (Assignment("v", Op.SET, 1),)), False),
], ids=["set-cell", "set-elements", "whole-list", "list-append", "list-prepend", "counter", "chained",
        "ttl"])
def test_which_writes_may_be_written_twice(write, expected):
    assert idempotent(SPEC, write) is expected
