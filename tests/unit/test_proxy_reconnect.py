"""The requests that wait while a lost cluster connection is replaced (zdm.proxy.reconnect.Waiting)."""

from __future__ import annotations

from zdm.phases.model import Cluster
from zdm.proxy.aggregate import Failure
from zdm.proxy.reconnect import MAX_WAITING, Waiting


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_waiting_requests_go_out_in_order_on_the_new_connection():
    waiting, got, sent = Waiting(Cluster.TARGET, 10.0, Clock()), [], []
    for i in range(3):
        waiting.send(0, 10, bytes([i]), got.append)
    waiting.release(lambda flags, op, body, cb, timeout: sent.append(body))
    assert sent == [b"\x00", b"\x01", b"\x02"] and got == [] and waiting.queue == []


def test_a_request_that_waits_past_its_deadline_fails_and_the_others_stay():
    clock = Clock()
    waiting, got = Waiting(Cluster.ORIGIN, 10.0, clock), []
    waiting.send(0, 10, b"a", lambda o: got.append(("a", o)))
    clock.now += 6
    waiting.send(0, 10, b"b", lambda o: got.append(("b", o)))
    waiting.send(0, 10, b"c", lambda o: got.append(("c", o)), 2.0)  # its own, shorter timeout
    waiting.sweep(clock.now + 1)
    assert got == []
    waiting.sweep(clock.now + 4.5)  # past a's 10 s and c's 2 s, not b's 10 s
    assert [name for name, _ in got] == ["a", "c"]
    assert all(isinstance(o, Failure) and "no connection to origin within" in o.message for _, o in got)
    assert [e[2] for e in waiting.queue] == [b"b"]


def test_a_full_queue_refuses_at_once():
    waiting, got = Waiting(Cluster.ORIGIN, 10.0, Clock()), []
    waiting.queue = [(0, 10, b"", got.append, None, 1e18)] * MAX_WAITING
    waiting.send(0, 10, b"x", got.append)
    assert len(got) == 1 and "too many requests waiting" in got[0].message
