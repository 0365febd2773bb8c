"""The request handler as a message sequence chart: frame in, sends out, answers in, reply out.

No sockets, no event loop: the handler gets fake send callables that record what it sends
(and keep the callback that the test calls with the cluster's answer), and a reply callable
that records what the client gets.
"""

from __future__ import annotations

import uuid

import pytest

from tests.support.cql import error, prepared_result, response, unprepared, void
from zdm.cql import messages as m
from zdm.cql.constants import ErrorCode, Opcode, ResultKind
from zdm.cql.errors import ProtocolError
from zdm.cql.frame import Frame
from zdm.phases.model import Cluster, Phase, routing_for
from zdm.proxy.aggregate import Failure
from zdm.proxy.handler import Context, RequestHandler
from zdm.proxy.schema import KeySchema, TableKey
from zdm.proxy.topology import Instance, VirtualTopology

O, T = Cluster.ORIGIN, Cluster.TARGET
NOW = 1_700_000_000_123_456
ME = Instance("127.0.0.1", 14002)


class Sent:
    """One request the handler sent to a cluster."""

    def __init__(self, cluster, flags, opcode, body, callback, timeout=None):
        self.cluster, self.flags, self.opcode, self.body = cluster, flags, opcode, body
        self.timeout = timeout  # a shorter wait than the connection's request timeout
        self._callback = callback
        self.frame = Frame(4, False, flags, 0, opcode, body)

    def answer(self, frame_or_failure):
        self._callback(frame_or_failure)

    def __repr__(self):
        return f"Sent({self.cluster.value}, {Opcode(self.opcode).name})"


class Chart:
    """A handler wired to recorders: ``sent`` per cluster, ``replies`` to the client,
    ``records`` kept as divergences."""

    def __init__(self, phase=Phase.PROXY, version=4, secondary_timeout=None):
        self.records: list[dict] = []
        self.pending_records: list = []  # (record, done) not yet durable, in record mode
        self.ctx = Context(routing=routing_for(phase),
                           topology=VirtualTopology([ME], {"cluster_name": "origin-cluster",
                                                           "release_version": "5.0.8"}),
                           me=ME, clock=lambda: NOW, name="p1", divergences=self._keep,
                           secondary_timeout=secondary_timeout)
        self.version = version
        self.sent: list[Sent] = []
        self.replies: list[tuple[int, Frame]] = []
        self.handler = RequestHandler(
            self.ctx, version,
            {c: (lambda flags, op, body, cb, timeout=None, c=c:
                 self.sent.append(Sent(c, flags, op, body, cb, timeout)))
             for c in Cluster},
            lambda stream, frame: self.replies.append((stream, frame)))

    def _keep(self, record, done):
        self.records.append(record)
        if done is not None:
            self.pending_records.append(done)

    def make_durable(self, error=None):
        pending, self.pending_records = self.pending_records, []
        for done in pending:
            done(error)

    def request(self, opcode, body, stream=7, flags=0):
        self.handler.frame_received(Frame(self.version, False, flags, stream, opcode, body))

    def take(self):
        sent, self.sent = self.sent, []
        return sent

    def reply(self):
        (reply,) = self.replies
        self.replies.clear()
        return reply


def query(text, **kw):
    return m.encode_query(text, version=4, **kw)


def rows(*values):
    return m.encode_rows([("ks", "t", "v", m.parse_type("text"))], [[v] for v in values])


def prepare_through(chart, text, origin_id=b"\xaa" * 16, target_id=None, **prepared_kw):
    chart.request(Opcode.PREPARE, m.encode_prepare(text, 4), stream=1)
    for sent, pid in zip(chart.take(), (origin_id, target_id or origin_id)):
        sent.answer(response(sent.frame, Opcode.RESULT, prepared_result(4, pid, **prepared_kw)))
    stream, frame = chart.reply()
    assert stream == 1 and m.decode_prepared_result(frame.body, 4).prepared_id == origin_id
    return origin_id


def test_write_goes_to_both_with_one_timestamp_and_the_client_gets_one_answer():
    chart = Chart()
    chart.request(Opcode.QUERY, query("INSERT INTO ks.t (k) VALUES (1)"))
    origin, target = chart.take()
    assert (origin.cluster, target.cluster) == (O, T)
    for sent in (origin, target):
        assert m.decode_query(sent.body, 4).timestamp == NOW
    origin.answer(void(origin.frame))
    assert chart.replies == []  # not before both answered
    target.answer(void(target.frame))
    stream, frame = chart.reply()
    assert stream == 7 and m.result_kind(frame.body) == ResultKind.VOID
    assert chart.handler.in_flight == 0


def test_a_client_timestamp_is_kept():
    chart = Chart()
    chart.request(Opcode.QUERY, query("INSERT INTO ks.t (k) VALUES (1)", timestamp=42))
    assert [m.decode_query(s.body, 4).timestamp for s in chart.take()] == [42, 42]


@pytest.mark.parametrize("origin_ok, target_ok, winner", [
    (True, False, "target"), (False, True, "origin"), (False, False, "origin")],
    ids=["target-fails", "origin-fails", "both-fail"])
def test_a_failure_on_either_side_is_what_the_client_sees(origin_ok, target_ok, winner):
    chart = Chart()
    chart.request(Opcode.QUERY, query("UPDATE ks.t SET v = 1 WHERE k = 1"))
    for sent, ok in zip(chart.take(), (origin_ok, target_ok)):
        sent.answer(void(sent.frame) if ok else error(sent.frame, ErrorCode.INVALID, sent.cluster.value))
    _, frame = chart.reply()
    assert m.decode_error(frame.body).message == winner


def test_a_silent_cluster_becomes_an_error_frame_naming_it():
    chart = Chart()
    chart.request(Opcode.QUERY, query("DELETE FROM ks.t WHERE k = 1"))
    origin, target = chart.take()
    origin.answer(void(origin.frame))
    target.answer(Failure("no answer from target 127.0.0.1:9043 within 10s"))
    _, frame = chart.reply()
    info = m.decode_error(frame.body)
    assert info.code == ErrorCode.SERVER_ERROR and "no answer from target" in info.message


@pytest.mark.parametrize("phase, cluster", [(Phase.PROXY, O), (Phase.MIGRATE, O),
                                            (Phase.TARGET_READS, T)], ids=["p1", "p2", "p4"])
def test_a_read_goes_to_the_primary_only(phase, cluster):
    chart = Chart(phase)
    chart.request(Opcode.QUERY, query("SELECT v FROM ks.t WHERE k = 1"), stream=9)
    (sent,) = chart.take()
    assert sent.cluster is cluster and sent.body == query("SELECT v FROM ks.t WHERE k = 1")
    sent.answer(response(sent.frame, Opcode.RESULT, rows("x")))
    stream, frame = chart.reply()
    assert stream == 9 and m.decode_rows(frame.body, 4).rows == [[b"x"]]


def test_async_reads_answer_from_origin_at_once_and_compare_target_later():
    chart = Chart(Phase.ASYNC_READS)
    chart.request(Opcode.QUERY, query("SELECT v FROM ks.t WHERE k = 1"))
    origin, target = chart.take()
    origin.answer(response(origin.frame, Opcode.RESULT, rows("origin")))
    _, frame = chart.reply()  # the client did not wait for target
    assert m.decode_rows(frame.body, 4).rows == [[b"origin"]]
    assert chart.ctx.stats.async_requests == 0
    target.answer(response(target.frame, Opcode.RESULT, rows("target")))
    assert chart.replies == []  # target's answer is never returned
    stats = chart.ctx.stats
    assert (stats.async_requests, stats.async_mismatches, stats.async_errors) == (1, 1, 0)


def test_a_later_page_is_read_from_the_primary_only_in_async_mode():
    chart = Chart(Phase.ASYNC_READS)
    chart.request(Opcode.QUERY, query("SELECT v FROM ks.t", page_size=10, paging_state=b"\x01\x02"))
    assert [s.cluster for s in chart.take()] == [O]


@pytest.mark.parametrize("phase", [Phase.PROXY, Phase.ASYNC_READS, Phase.TARGET_READS],
                         ids=["p1", "p3", "p4"])
def test_system_local_is_answered_by_the_proxy(phase):
    chart = Chart(phase)
    chart.request(Opcode.QUERY, query("SELECT cluster_name, rpc_port FROM system.local"))
    assert chart.take() == []
    _, frame = chart.reply()
    result = m.decode_rows(frame.body, 4)
    assert [m.deserialize(c.type, v) for c, v in zip(result.columns, result.rows[0])] == [
        "origin-cluster", 14002]


@pytest.mark.parametrize("phase", [Phase.ASYNC_READS, Phase.TARGET_READS], ids=["p3", "p4"])
@pytest.mark.parametrize("skip_metadata", [True, False], ids=["skip-metadata", "with-metadata"])
def test_a_prepared_system_local_read_is_answered_by_the_proxy(phase, skip_metadata):
    """The bug: it went to both clusters in phase 3 (always a mismatch), to target in 4."""
    chart = Chart(phase)
    pid = prepare_through(chart, "SELECT * FROM system.local WHERE key = 'local'",
                          columns=(("key", "text"), ("host_id", "uuid"), ("rpc_port", "int"),
                                   ("something_new", "text")),
                          keyspace="system", table="local")
    chart.request(Opcode.EXECUTE, m.encode_execute(pid, [], 4, skip_metadata=skip_metadata))
    assert chart.take() == []
    _, frame = chart.reply()
    result = m.decode_rows(frame.body, 4)
    row = result.rows[0]
    assert len(row) == 4  # exactly origin's columns, in its order
    assert row[0] == b"local" and uuid.UUID(bytes=row[1]) == ME.host_id
    assert int.from_bytes(row[2], "big") == 14002 and row[3] is None
    assert (result.columns == []) is skip_metadata
    assert chart.ctx.stats.async_requests == 0


def test_prepare_goes_to_both_and_execute_uses_each_clusters_id():
    chart = Chart(Phase.TARGET_READS)
    pid = prepare_through(chart, "SELECT v FROM ks.t WHERE k = ?", b"\x01" * 16, b"\x02" * 16)
    chart.request(Opcode.EXECUTE, m.encode_execute(pid, [b"\x00\x00\x00\x01"], 4))
    (sent,) = chart.take()
    assert sent.cluster is T and m.decode_execute(sent.body, 4).prepared_id == b"\x02" * 16
    chart.request(Opcode.EXECUTE, m.encode_execute(pid, [b"\x00\x00\x00\x01"], 4), stream=8)
    chart.take()[0].answer(response(Frame(4, False, 0, 8, Opcode.EXECUTE, b""), Opcode.RESULT, rows("t")))
    assert chart.reply()[0] == 8


def test_an_id_this_worker_never_saw_is_answered_unprepared_and_counted():
    chart = Chart()
    chart.request(Opcode.EXECUTE, m.encode_execute(b"\x09" * 16, [], 4))
    assert chart.take() == []
    _, frame = chart.reply()
    info = m.decode_error(frame.body)
    assert info.code == ErrorCode.UNPREPARED and info.unprepared_id == b"\x09" * 16
    assert chart.ctx.stats.unknown_prepared == 1


def test_target_forgetting_a_statement_is_recovered_by_preparing_it_again():
    chart = Chart()
    pid = prepare_through(chart, "INSERT INTO ks.t (k) VALUES (?)")
    chart.request(Opcode.EXECUTE, m.encode_execute(pid, [b"\x00\x00\x00\x05"], 4))
    origin, target = chart.take()
    assert m.decode_execute(origin.body, 4).has_timestamp  # one timestamp for both
    origin.answer(void(origin.frame))
    target.answer(unprepared(target.frame, pid))
    (prepare,) = chart.take()
    assert (prepare.cluster, prepare.opcode) == (T, Opcode.PREPARE)
    assert m.decode_prepare(prepare.body, 4).query == "INSERT INTO ks.t (k) VALUES (?)"
    prepare.answer(response(prepare.frame, Opcode.RESULT, prepared_result(4, b"\xbb" * 16)))
    (again,) = chart.take()
    assert again.cluster is T and m.decode_execute(again.body, 4).prepared_id == b"\xbb" * 16
    assert again.body[-8:] == origin.body[-8:]  # the same timestamp as origin's
    again.answer(void(again.frame))
    _, frame = chart.reply()
    assert frame.opcode == Opcode.RESULT and chart.ctx.stats.reprepares == 1
    assert chart.ctx.prepared.get(pid).target_id == b"\xbb" * 16


def test_a_batch_whose_child_target_forgot_is_prepared_again_and_resent():
    """The bug: the client got UNPREPARED with target's id, which it cannot recover from."""
    chart = Chart()
    pid = prepare_through(chart, "INSERT INTO ks.t (k) VALUES (?)", b"\x01" * 16, b"\x02" * 16)
    batch = _batch_body([pid])
    chart.request(Opcode.BATCH, batch)
    origin, target = chart.take()
    assert _batch_ids(target.body) == [b"\x02" * 16]
    origin.answer(void(origin.frame))
    target.answer(unprepared(target.frame, b"\x02" * 16))
    (prepare,) = chart.take()
    assert (prepare.cluster, prepare.opcode) == (T, Opcode.PREPARE)
    prepare.answer(response(prepare.frame, Opcode.RESULT, prepared_result(4, b"\x03" * 16)))
    (again,) = chart.take()
    assert again.cluster is T and _batch_ids(again.body) == [b"\x03" * 16]
    again.answer(void(again.frame))
    _, frame = chart.reply()
    assert frame.opcode == Opcode.RESULT


def test_a_batch_with_an_unknown_child_is_answered_unprepared():
    chart = Chart()
    chart.request(Opcode.BATCH, _batch_body([b"\x07" * 16]))
    assert chart.take() == []
    info = m.decode_error(chart.reply()[1].body)
    assert info.code == ErrorCode.UNPREPARED and info.unprepared_id == b"\x07" * 16


def test_use_sets_the_connections_keyspace_once_both_clusters_agree():
    chart = Chart()
    chart.request(Opcode.QUERY, query("USE app"))
    for sent in chart.take():
        sent.answer(response(sent.frame, Opcode.RESULT, m.encode_set_keyspace("app")))
    chart.reply()
    assert chart.handler.keyspace == "app"
    chart.request(Opcode.QUERY, query("SELECT * FROM local"))  # app.local, not system.local
    assert [s.cluster for s in chart.take()] == [O]


def test_draining_answers_overloaded_and_sends_nothing():
    chart = Chart()
    chart.ctx.draining = True
    chart.request(Opcode.QUERY, query("SELECT v FROM ks.t"))
    assert chart.take() == []
    assert m.decode_error(chart.reply()[1].body).code == ErrorCode.OVERLOADED


@pytest.mark.parametrize("frame, message", [
    (Frame(5, False, 0, 3, Opcode.QUERY, b""), "protocol v5 on a v4 connection"),
    (Frame(4, False, 0, 3, Opcode.STARTUP, b""), "STARTUP after the handshake"),
    (Frame(4, False, 0, 3, Opcode.QUERY, b"\x00\x00"), "truncated"),
], ids=["version-change", "second-startup", "truncated-body"])
def test_bad_requests_raise_with_the_stream_to_answer_on(frame, message):
    chart = Chart()
    with pytest.raises(ProtocolError, match=message) as info:
        chart.handler.frame_received(frame)
    assert info.value.stream == 3


def _batch_body(ids):
    from tests.support import primitives as p

    body = p.write_byte(1) + p.write_short(len(ids))
    for pid in ids:
        body += p.write_byte(1) + p.write_short_bytes(pid) + p.write_short(1) + p.write_bytes(b"\x00\x00\x00\x01")
    return body + p.write_short(1) + p.write_byte(0)


def _batch_ids(body):
    return [c.prepared_id for c in m.decode_batch(body, 4).children]




def lwt_rows(applied, *values):
    columns = [("ks", "t", "[applied]", m.parse_type("boolean"))] + \
        [("ks", "t", "v", m.parse_type("text"))] * len(values)
    return m.encode_rows(columns, [[applied, *values]])


@pytest.mark.parametrize("origin_applied, target_applied, diverged", [
    (True, True, False), (False, True, True), (True, False, True)],
    ids=["both-applied", "only-target", "only-origin"])
def test_a_conditional_write_that_the_clusters_decide_differently_is_recorded(
        origin_applied, target_applied, diverged):
    chart = Chart()
    chart.request(Opcode.QUERY, query("INSERT INTO ks.t (k, v) VALUES (5, 'new') IF NOT EXISTS"))
    origin, target = chart.take()
    origin.answer(response(origin.frame, Opcode.RESULT, lwt_rows(origin_applied, *(
        () if origin_applied else ("old",)))))
    target.answer(response(target.frame, Opcode.RESULT, lwt_rows(target_applied)))
    _, frame = chart.reply()  # the client gets the primary's (origin's) result
    assert m.decode_rows(frame.body, 4).rows[0][0] == (b"\x01" if origin_applied else b"\x00")
    assert bool(chart.records) is diverged
    assert chart.ctx.stats.table("ks.t").lwt_divergences == int(diverged)
    if diverged:
        (record,) = chart.records
        assert (record["kind"], record["keyspace"], record["table"], record["source"]) == (
            "lwt", "ks", "t", "origin")
        assert record["key"]["columns"]["k"] == [{"cql": "5"}]
        assert chart.ctx.stats.table("ks.t").samples == ["ks.t: k=5, v='new'"]


def test_a_prepared_conditional_update_records_its_bound_key():
    chart = Chart()
    pid = prepare_through(chart, "UPDATE ks.t SET v = ? WHERE k = ? IF v = ?", binds=("v", "k", "v"))
    chart.request(Opcode.EXECUTE, m.encode_execute(pid, [b"\x00\x00\x00\x01", b"\x00\x00\x00\x02",
                                                         b"\x00\x00\x00\x03"], 4))
    origin, target = chart.take()
    origin.answer(response(origin.frame, Opcode.RESULT, lwt_rows(True)))
    target.answer(response(target.frame, Opcode.RESULT, lwt_rows(False)))
    chart.reply()
    (record,) = chart.records
    # the IF clause's marker (named v too) is not the row's: only WHERE's k is
    assert record["key"]["columns"] == {"k": [{"type": "int", "hex": "00000002"}]}


@pytest.mark.parametrize("text, binds, values, key", [
    ("UPDATE ks.t SET v = 2 WHERE pk = 7 AND ck = 8 IF v = ?", ("v",), [b"\x00\x00\x00\x01"],
     {"pk": [{"cql": "7"}], "ck": [{"cql": "8"}]}),
    ("UPDATE ks.t SET v = ? WHERE pk = ? AND ck = ? IF v = ?", ("v", "pk", "ck", "v"),
     [b"\x00\x00\x00\x02", b"\x00\x00\x00\x07", b"\x00\x00\x00\x08", b"\x00\x00\x00\x01"],
     {"pk": [{"type": "int", "hex": "00000007"}], "ck": [{"type": "int", "hex": "00000008"}]}),
], ids=["literal-where", "bound-where"])
def test_an_lwt_divergence_is_recorded_under_the_rows_primary_key(text, binds, values, key):
    chart = Chart()
    chart.ctx.schema = KeySchema({("ks", "t"): TableKey(("pk",), ("ck",))})
    pid = prepare_through(chart, text, binds=binds)
    chart.request(Opcode.EXECUTE, m.encode_execute(pid, values, 4))
    origin, target = chart.take()
    origin.answer(response(origin.frame, Opcode.RESULT, lwt_rows(True)))
    target.answer(response(target.frame, Opcode.RESULT, lwt_rows(False, "other")))
    chart.reply()
    (record,) = chart.records
    assert record["key"] == {"keyspace": "ks", "table": "t", "columns": key,
                             "partition_key": ["pk"], "clustering_key": ["ck"]}
    assert record["detail"] == "applied on origin: yes, on target: no"


def test_an_lwt_decided_the_same_way_with_different_current_values_is_counted_not_recorded():
    chart = Chart()
    chart.request(Opcode.QUERY, query("UPDATE ks.t SET v = 'new' WHERE k = 5 IF v = 'expected'"))
    origin, target = chart.take()
    origin.answer(response(origin.frame, Opcode.RESULT, lwt_rows(False, "on origin")))
    target.answer(response(target.frame, Opcode.RESULT, lwt_rows(False, "on target")))
    _, frame = chart.reply()
    assert m.decode_rows(frame.body, 4).rows[0][1] == b"on origin"  # the primary's answer
    stats = chart.ctx.stats
    assert chart.records == [] and stats.lwt_divergences == 0
    assert stats.lwt_same_decision_different_values == 1
    assert stats.table("ks.t").lwt_same_decision_different_values == 1


def test_async_mismatches_are_counted_per_table_with_the_key_that_differed():
    chart = Chart(Phase.ASYNC_READS)
    pid = prepare_through(chart, "SELECT v FROM ks.t WHERE k = ?", binds=("k",))
    chart.request(Opcode.EXECUTE, m.encode_execute(pid, [b"\x00\x00\x00\x09"], 4))
    origin, target = chart.take()
    origin.answer(response(origin.frame, Opcode.RESULT, rows("a")))
    target.answer(response(target.frame, Opcode.RESULT, rows("b")))
    per_table = chart.ctx.stats.table("ks.t")
    assert (per_table.async_requests, per_table.async_mismatches) == (1, 1)
    assert per_table.samples == ["ks.t: k=9"]


def test_a_later_page_in_async_mode_is_counted_as_skipped_not_as_equal():
    chart = Chart(Phase.ASYNC_READS)
    chart.request(Opcode.QUERY, query("SELECT v FROM ks.t", page_size=10, paging_state=b"\x01"))
    (sent,) = chart.take()
    sent.answer(response(sent.frame, Opcode.RESULT, rows("a")))
    stats = chart.ctx.stats
    assert (stats.async_requests, stats.async_skipped, stats.table("ks.t").async_skipped) == (0, 1, 1)


def test_entering_async_reads_again_opens_a_new_window_of_counters():
    from zdm.config import Config
    from zdm.proxy.dataplane import DataPlane

    plane = DataPlane(Config(), VirtualTopology([ME], {}), ME, routing_for(Phase.ASYNC_READS))
    plane.ctx.stats.async_mismatches = plane.ctx.stats.table("ks.t").async_mismatches = 4
    plane.set_routing(routing_for(Phase.ASYNC_READS))  # no change: the window goes on
    assert plane.ctx.stats.async_mismatches == 4
    plane.set_routing(routing_for(Phase.MIGRATE))
    plane.set_routing(routing_for(Phase.ASYNC_READS))  # phase 3 again
    assert (plane.ctx.stats.async_mismatches, plane.ctx.stats.table("ks.t").async_mismatches) == (0, 0)


@pytest.mark.parametrize("failure", [
    Failure("no answer from target 127.0.0.1:9043 within 2s"),
    "write-timeout", "unavailable",
], ids=["silent", "write-timeout", "unavailable"])
def test_record_mode_acknowledges_a_write_only_target_missed_once_it_is_recorded(failure):
    chart = Chart(secondary_timeout=2.0)
    chart.request(Opcode.QUERY, query("UPDATE ks.t SET v = 'x' WHERE k = 3"))
    origin, target = chart.take()
    assert (origin.timeout, target.timeout) == (None, 2.0)  # only the secondary waits less
    origin.answer(void(origin.frame))
    if isinstance(failure, str):
        failure = _error_with_fields({"write-timeout": ErrorCode.WRITE_TIMEOUT,
                                      "unavailable": ErrorCode.UNAVAILABLE}[failure])
    target.answer(failure)
    assert chart.replies == []  # not before the record is durable
    (record,) = chart.records
    assert (record["kind"], record["table"], record["source"], record["writetime"]) == (
        "secondary_write", "t", "origin", NOW)
    assert record["key"]["columns"]["k"] == [{"cql": "3"}]
    chart.make_durable()
    _, frame = chart.reply()
    assert m.result_kind(frame.body) == ResultKind.VOID  # the primary's success
    assert chart.ctx.stats.secondary_writes_recorded == 1


def test_record_mode_fails_the_write_when_the_record_cannot_be_kept():
    chart = Chart(secondary_timeout=2.0)
    chart.request(Opcode.QUERY, query("INSERT INTO ks.t (k) VALUES (1)"))
    origin, target = chart.take()
    origin.answer(void(origin.frame))
    target.answer(Failure("connection to target lost"))
    chart.make_durable(OSError("disk full"))
    _, frame = chart.reply()
    assert "connection to target lost" in m.decode_error(frame.body).message


@pytest.mark.parametrize("query_text, target_error", [
    ("INSERT INTO ks.t (k) VALUES (1)", ErrorCode.INVALID),  # a real problem, not an outage
    ("CREATE TABLE ks.u (k int PRIMARY KEY)", ErrorCode.SERVER_ERROR),  # DDL is never recorded
], ids=["invalid", "ddl"])
def test_record_mode_still_fails_what_is_not_a_write_missed_in_an_outage(query_text, target_error):
    chart = Chart(secondary_timeout=2.0)
    chart.request(Opcode.QUERY, query(query_text))
    origin, target = chart.take()
    origin.answer(void(origin.frame))
    target.answer(error(target.frame, target_error, "no"))
    assert chart.records == []
    assert m.decode_error(chart.reply()[1].body).code == target_error


def test_fail_mode_fails_a_write_the_secondary_missed():
    chart = Chart()
    chart.request(Opcode.QUERY, query("INSERT INTO ks.t (k) VALUES (1)"))
    origin, target = chart.take()
    assert target.timeout is None
    origin.answer(void(origin.frame))
    target.answer(Failure("no answer from target within 10s"))
    assert chart.records == [] and chart.reply()[1].opcode == Opcode.ERROR


def _error_with_fields(code):
    """WRITE_TIMEOUT / UNAVAILABLE carry fields after the message (v4 spec section 9)."""
    from tests.support import primitives as p

    body = p.write_int(code) + p.write_string("timed out")
    if code == ErrorCode.WRITE_TIMEOUT:
        body += p.write_short(1) + p.write_int(0) + p.write_int(1) + p.write_string("SIMPLE")
    else:
        body += p.write_short(1) + p.write_int(1) + p.write_int(0)
    return Frame(4, True, 0, 0, Opcode.ERROR, body)


def test_a_prepared_write_with_now_runs_rewritten_with_one_value_for_both():
    chart = Chart()
    chart.ctx.replace_functions = True
    chart.request(Opcode.PREPARE, m.encode_prepare("INSERT INTO ks.t (k, v) VALUES (now(), ?)", 4), stream=1)
    client, origin, target = chart.take()
    assert m.decode_prepare(client.body, 4).query == "INSERT INTO ks.t (k, v) VALUES (now(), ?)"
    assert {m.decode_prepare(s.body, 4).query for s in (origin, target)} == {
        "INSERT INTO ks.t (k, v) VALUES (?, ?)"}
    assert (client.cluster, origin.cluster, target.cluster) == (O, O, T)
    client.answer(response(client.frame, Opcode.RESULT, prepared_result(4, b"\x01" * 16, binds=("v",))))
    origin.answer(response(origin.frame, Opcode.RESULT, prepared_result(4, b"\x02" * 16, binds=("k", "v"))))
    assert chart.replies == []
    target.answer(response(target.frame, Opcode.RESULT, prepared_result(4, b"\x03" * 16, binds=("k", "v"))))
    _, answer = chart.reply()  # the client's own statement: its id, its one marker
    assert m.decode_prepared_result(answer.body, 4).prepared_id == b"\x01" * 16
    assert [c.name for c in m.decode_prepared_metadata(answer.body, 4).binds] == ["v"]

    chart.request(Opcode.EXECUTE, m.encode_execute(b"\x01" * 16, [b"hello"], 4))
    origin, target = chart.take()
    assert m.decode_execute(origin.body, 4).prepared_id == b"\x02" * 16
    assert m.decode_execute(target.body, 4).prepared_id == b"\x03" * 16
    values = m.execute_values(origin.body, 4)
    assert values == m.execute_values(target.body, 4) and len(values) == 2 and values[1] == b"hello"
    assert uuid.UUID(bytes=values[0]).version == 1
    chart.request(Opcode.EXECUTE, m.encode_execute(b"\x01" * 16, [b"again"], 4))
    assert m.execute_values(chart.take()[0].body, 4)[0] != values[0]  # a new value per execution


def test_a_batch_with_functions_is_built_for_each_cluster_from_the_same_values():
    chart = Chart()
    chart.ctx.replace_functions = True
    from tests.support import primitives as p

    body = (p.write_byte(0) + p.write_short(1) + p.write_byte(0) +
            p.write_long_string("INSERT INTO ks.t (k) VALUES (uuid())") + p.write_short(0) +
            p.write_short(1) + p.write_byte(0))
    chart.request(Opcode.BATCH, body)
    origin, target = chart.take()
    queries = [m.decode_batch(s.body, 4).children[0].query for s in (origin, target)]
    assert queries[0] == queries[1] and "uuid()" not in queries[0]
    assert m.request_timestamp(Opcode.BATCH, origin.body, 4) == NOW


# -- UNPREPARED: the client sees what the cluster would show it ------------------------------
def _unprepared_reply(chart):
    _, frame = chart.reply()
    info = m.decode_error(frame.body)
    assert info.code == ErrorCode.UNPREPARED
    return info.unprepared_id


def test_a_read_the_primary_forgot_is_answered_unprepared_for_the_driver_to_prepare_again():
    """After ALTER TABLE the node drops the statement; the driver must prepare it again to
    learn the new columns.  The proxy preparing it on its own hid that: a driver that skips
    result metadata decoded the new rows against the old columns."""
    chart = Chart()
    pid = prepare_through(chart, "SELECT * FROM ks.t WHERE k = ?")
    chart.request(Opcode.EXECUTE, m.encode_execute(pid, [b"\x00\x00\x00\x01"], 4, skip_metadata=True))
    (origin,) = chart.take()
    origin.answer(unprepared(origin.frame, pid))
    assert chart.take() == []  # no PREPARE of the proxy's own
    assert _unprepared_reply(chart) == pid
    assert chart.ctx.stats.reprepares == 0 and chart.handler.in_flight == 0


def test_in_phase_4_targets_unprepared_names_the_id_the_client_knows():
    chart = Chart(phase=Phase.TARGET_READS)
    pid = prepare_through(chart, "SELECT * FROM ks.t WHERE k = ?", b"\x01" * 16, b"\x02" * 16)
    chart.request(Opcode.EXECUTE, m.encode_execute(pid, [b"\x00\x00\x00\x01"], 4))
    (target,) = chart.take()
    assert target.cluster is T and m.decode_execute(target.body, 4).prepared_id == b"\x02" * 16
    target.answer(unprepared(target.frame, b"\x02" * 16))
    assert chart.take() == []
    assert _unprepared_reply(chart) == b"\x01" * 16


@pytest.mark.parametrize("first", [O, T], ids=["origin-first", "target-first"])
def test_a_write_both_clusters_forgot_goes_back_to_the_driver_and_runs_nowhere(first):
    """DROP and CREATE with another column type: both clusters forget the INSERT; only the
    driver, preparing again, learns the new bind types."""
    chart = Chart()
    pid = prepare_through(chart, "INSERT INTO ks.t (k, v) VALUES (?, ?)")
    chart.request(Opcode.EXECUTE, m.encode_execute(pid, [b"\x00\x00\x00\x01", b"\x00\x00\x00\x02"], 4))
    sent = {s.cluster: s for s in chart.take()}
    second = T if first is O else O
    sent[first].answer(unprepared(sent[first].frame, pid))
    assert chart.take() == [] and chart.replies == []  # it waits for the other cluster
    sent[second].answer(unprepared(sent[second].frame, pid))
    assert chart.take() == []  # nothing prepared or resent by the proxy
    assert _unprepared_reply(chart) == pid


@pytest.mark.parametrize("phase", [Phase.PROXY, Phase.TARGET_READS], ids=["origin-primary", "target-primary"])
def test_a_write_the_secondary_already_applied_is_recovered_by_the_proxy(phase):
    """The secondary took the write: a retry by the client would apply it twice there (a
    counter would count twice), so the proxy prepares the primary again and resends."""
    chart = Chart(phase=phase)
    pid = prepare_through(chart, "UPDATE ks.c SET n = n + 1 WHERE k = ?")
    chart.request(Opcode.EXECUTE, m.encode_execute(pid, [b"\x00\x00\x00\x01"], 4))
    sent = {s.cluster: s for s in chart.take()}
    primary = chart.ctx.routing.primary
    secondary = T if primary is O else O
    sent[primary].answer(unprepared(sent[primary].frame, pid))
    sent[secondary].answer(void(sent[secondary].frame))
    (prepare,) = chart.take()
    assert (prepare.cluster, prepare.opcode) == (primary, Opcode.PREPARE)
    prepare.answer(response(prepare.frame, Opcode.RESULT, prepared_result(4, pid)))
    (again,) = chart.take()
    assert again.cluster is primary and again.opcode == Opcode.EXECUTE
    again.answer(void(again.frame))
    _, frame = chart.reply()
    assert frame.opcode == Opcode.RESULT and chart.ctx.stats.reprepares == 1


def test_a_write_the_primary_refused_otherwise_is_not_recovered_on_the_secondary():
    """Origin failed the write: the client gets origin's error and retries it; target's
    UNPREPARED is not worth a PREPARE of the proxy's own."""
    chart = Chart()
    pid = prepare_through(chart, "INSERT INTO ks.t (k) VALUES (?)")
    chart.request(Opcode.EXECUTE, m.encode_execute(pid, [b"\x00\x00\x00\x01"], 4))
    origin, target = chart.take()
    target.answer(unprepared(target.frame, pid))
    origin.answer(error(origin.frame, ErrorCode.INVALID, "bad"))
    assert chart.take() == []
    _, frame = chart.reply()
    assert m.decode_error(frame.body).code == ErrorCode.INVALID


def test_a_batch_target_forgot_in_phase_4_goes_back_under_the_clients_ids():
    chart = Chart(phase=Phase.TARGET_READS)
    pid = prepare_through(chart, "INSERT INTO ks.t (k) VALUES (?)", b"\x01" * 16, b"\x02" * 16)
    chart.request(Opcode.BATCH, _batch_body([pid]))
    origin, target = chart.take()
    origin.answer(unprepared(origin.frame, b"\x01" * 16))
    target.answer(unprepared(target.frame, b"\x02" * 16))
    assert chart.take() == []
    assert _unprepared_reply(chart) == b"\x01" * 16


def test_async_reads_answer_the_primarys_unprepared_and_prepare_the_secondary_again():
    chart = Chart(phase=Phase.ASYNC_READS)
    pid = prepare_through(chart, "SELECT v FROM ks.t WHERE k = ?")
    chart.request(Opcode.EXECUTE, m.encode_execute(pid, [b"\x00\x00\x00\x01"], 4))
    origin, target = chart.take()
    origin.answer(unprepared(origin.frame, pid))
    assert _unprepared_reply(chart) == pid
    target.answer(unprepared(target.frame, pid))
    (prepare,) = chart.take()  # the compared read is the proxy's own: it recovers
    assert (prepare.cluster, prepare.opcode) == (T, Opcode.PREPARE)


def test_a_statement_the_proxy_rewrote_is_prepared_again_by_the_proxy():
    """With function replacement the clusters run the proxy's statement, which the driver
    cannot prepare: the proxy recovers both clusters itself."""
    chart = Chart()
    chart.ctx.replace_functions = True
    chart.request(Opcode.PREPARE, m.encode_prepare("INSERT INTO ks.t (k, v) VALUES (now(), ?)", 4), stream=1)
    client, origin, target = chart.take()
    client.answer(response(client.frame, Opcode.RESULT, prepared_result(4, b"\x01" * 16, binds=("v",))))
    origin.answer(response(origin.frame, Opcode.RESULT, prepared_result(4, b"\x02" * 16, binds=("k", "v"))))
    target.answer(response(target.frame, Opcode.RESULT, prepared_result(4, b"\x03" * 16, binds=("k", "v"))))
    chart.reply()
    chart.request(Opcode.EXECUTE, m.encode_execute(b"\x01" * 16, [b"hello"], 4))
    origin, target = chart.take()
    origin.answer(unprepared(origin.frame, b"\x02" * 16))
    target.answer(unprepared(target.frame, b"\x03" * 16))
    prepares = chart.take()
    assert sorted((s.cluster.value, s.opcode) for s in prepares) == [("origin", Opcode.PREPARE),
                                                                     ("target", Opcode.PREPARE)]
    for s, new in zip(prepares, (b"\x04" * 16, b"\x05" * 16)):
        s.answer(response(s.frame, Opcode.RESULT, prepared_result(4, new, binds=("k", "v"))))
    resent = chart.take()
    assert len(resent) == 2 and all(s.opcode == Opcode.EXECUTE for s in resent)
    for s in resent:
        s.answer(void(s.frame))
    _, frame = chart.reply()
    assert frame.opcode == Opcode.RESULT and chart.ctx.stats.reprepares == 2


def test_v5_execute_on_target_keeps_the_clients_result_metadata_id():
    """Cassandra derives the id from the result columns: target answers METADATA_CHANGED
    exactly when the columns the client holds are stale, as it would directly."""
    chart = Chart(phase=Phase.TARGET_READS, version=5)
    chart.request(Opcode.PREPARE, m.encode_prepare("SELECT * FROM ks.t WHERE k = ?", 5), stream=1)
    for sent, pid, mid in zip(chart.take(), (b"\x01" * 16, b"\x02" * 16), (b"\x11" * 16, b"\x12" * 16)):
        sent.answer(Frame(5, True, 0, sent.frame.stream, Opcode.RESULT,
                          prepared_result(5, pid, metadata_id=mid)))
    chart.reply()
    chart.request(Opcode.EXECUTE, m.encode_execute(b"\x01" * 16, [b"\x00\x00\x00\x01"], 5, b"\x99" * 16))
    (target,) = chart.take()
    info = m.decode_execute(target.body, 5)
    assert (info.prepared_id, info.result_metadata_id) == (b"\x02" * 16, b"\x99" * 16)
