"""When the clusters disagree about a write: count it, name the rows, keep a durable record.

Theory of operation: two disagreements are tracked, and both leave a record (see
:mod:`zdm.state.divergences`) that validation re-checks and repair fixes:

* a lightweight transaction (``INSERT ... IF NOT EXISTS``, ``UPDATE ... IF``) that one
  cluster applied and the other did not -- ``[applied]`` differs (:func:`compare_lwt`): the
  client already has the primary's answer.  Both deciding the same way with different
  current values wrote nothing anywhere: that is only counted
  (``lwt_same_decision_different_values``);
* in record mode, a write the primary took and the secondary missed in an outage
  (:func:`record_secondary_failure`): the client gets the primary's answer only once the
  record -- keys and the writetime used -- is durable.

The rows are named by :mod:`~zdm.proxy.keys` from the request itself -- its text, with a
prepared statement's markers as origin described them -- and by the table's primary key in
the worker's schema snapshot (``ctx.schema``, :mod:`~zdm.proxy.schema`).  Functions here take
the worker's :class:`~zdm.proxy.handler.Context` and the connection's keyspace; they do no
I/O of their own (``ctx.divergences`` keeps records, off the event loop).
"""

from __future__ import annotations

import logging
from typing import Callable

from zdm.cql import messages as m
from zdm.cql.classify import classify
from zdm.cql.constants import Opcode, ResultKind
from zdm.cql.frame import Frame
from zdm.state.divergences import new_record
from zdm.phases.model import Cluster
from zdm.proxy import keys
from zdm.proxy.aggregate import Outcome
from zdm.proxy.keys import RowKey, render
from zdm.proxy.pending import failure_frame
from zdm.proxy.schema import key_of

log = logging.getLogger("zdm.proxy")

Rows = list[tuple[str | None, str | None, RowKey | None]]


def request_keys(ctx, keyspace: str | None, frame: Frame, entry, body: bytes | None = None,
                 cluster: Cluster = Cluster.ORIGIN) -> Rows:
    """(keyspace, table, key) of each statement a request runs (a BATCH runs several), read
    from ``body``, the request as it was sent to ``cluster`` (default: as the client sent it):
    with function replacement, that is where the generated values are."""
    version, flags = frame.version, frame.flags
    body = frame.body if body is None else body
    if frame.opcode == Opcode.EXECUTE and entry is not None:
        return [_entry_key(ctx, entry, m.execute_values(body, version, flags=flags), keyspace)]
    if frame.opcode == Opcode.QUERY:
        info = m.decode_query(body, version, flags=flags)
        return [_text_key(ctx, info.query, m.query_values(body, version, flags=flags), keyspace)]
    if frame.opcode == Opcode.BATCH:
        out = []
        for child in m.decode_batch(body, version, flags=flags).children:
            child_entry = ctx.prepared.on_cluster(cluster, child.prepared_id) if child.kind == 1 else None
            if child_entry is not None:
                out.append(_entry_key(ctx, child_entry, list(child.values), keyspace))
            elif child.kind == 0:
                out.append(_text_key(ctx, child.query, list(child.values), keyspace))
        return out
    return []


def describe(ctx, keyspace: str | None, frame: Frame, entry) -> str:
    """The row a request touches, for people; its text when the row cannot be named."""
    found = request_keys(ctx, keyspace, frame, entry)
    if found and found[0][2] is not None:
        return render(found[0][2])
    if entry is not None:
        return entry.query[:200]
    if frame.opcode == Opcode.QUERY:
        return m.decode_query(frame.body, frame.version, flags=frame.flags).query[:200]
    return "?"


def compare_lwt(ctx, keyspace: str | None, dual) -> None:
    """Both clusters ran a conditional write.  If they decided differently (``[applied]``
    differs), the rows now differ: count it, and keep the keys durably for validation to
    re-check and repair.  If they decided the same way but answered with different current
    values (neither applied, and the row differs already), nothing was written on either
    side: that is counted apart, as ``lwt_same_decision_different_values``, and not recorded
    -- validation finds such a row like any other difference."""
    frame, origin, target = dual.frame, dual.origin, dual.target
    version = frame.version
    origin_outcome, target_outcome = _lwt_outcome(origin, version), _lwt_outcome(target, version)
    if origin_outcome == target_outcome:
        return
    applied = _applied(origin_outcome), _applied(target_outcome)
    if applied[0] == applied[1] != "?":
        ctx.stats.lwt_same_decision_different_values += 1
        for ks, table, key in request_keys(ctx, keyspace, frame, dual.entry, dual.origin_body):
            per_table = ctx.stats.table(f"{ks}.{table}")
            per_table.lwt_same_decision_different_values += 1
            if per_table.lwt_same_decision_different_values == 1:
                log.info("LWT on %s: both clusters decided the same way (applied: %s) but hold "
                         "different current values (lwt_same_decision_different_values); "
                         "not a divergence, nothing recorded", _shown(ks, table, key), applied[0],
                         extra=dual.handler.who)
        return
    detail = f"applied on origin: {applied[0]}, on target: {applied[1]}"
    ctx.stats.lwt_divergences += 1
    for ks, table, key in request_keys(ctx, keyspace, frame, dual.entry, dual.origin_body):
        per_table = ctx.stats.table(f"{ks}.{table}")
        per_table.lwt_divergences += 1
        shown = _shown(ks, table, key)
        if shown not in per_table.samples:
            log.warning("LWT divergence on %s: %s; recorded for `zdm validate`", shown, detail,
                        extra=dual.handler.who)
        per_table.sample(shown)
        if ctx.divergences is not None:
            ctx.divergences(new_record("lwt", ks, table, key.to_json() if key else None,
                                       source=ctx.routing.primary.value, proxy=ctx.name,
                                       detail=detail), None)


def _shown(ks: str | None, table: str | None, key: RowKey | None) -> str:
    return render(key) if key is not None else f"{ks}.{table} (key unknown)"


def record_secondary_failure(ctx, keyspace: str | None, dual, primary: Frame, secondary: Outcome,
                             answer: Callable[[int, Frame], None]) -> None:
    """The primary took the write, the secondary failed or did not answer in time: keep a
    durable record of each row it wrote (with the writetime used), then ``answer`` the client
    with the primary's answer; if the record cannot be kept, the client gets the failure."""
    frame = dual.frame
    body = dual.origin_body if dual.primary is Cluster.ORIGIN else dual.target_body
    writetime = m.request_timestamp(frame.opcode, body, frame.version, flags=frame.flags)
    reason = secondary.message if not isinstance(secondary, Frame) else \
        m.decode_error(secondary.body, flags=secondary.flags).message
    if ctx.divergences is None:
        answer(frame.stream, failure_frame(frame.version, frame.stream, secondary))
        return
    rows = request_keys(ctx, keyspace, frame, dual.entry, body, dual.primary) or [(None, None, None)]
    left = [len(rows), None]  # records not yet durable, the first error

    def durable(error: BaseException | None) -> None:
        left[0] -= 1
        left[1] = left[1] or error
        if left[0]:
            return
        answer(frame.stream, primary if left[1] is None else
               failure_frame(frame.version, frame.stream, secondary))

    secondary_name = "target" if dual.primary is Cluster.ORIGIN else "origin"
    for ks, table, key in rows:
        ctx.stats.secondary_writes_recorded += 1
        ctx.stats.table(f"{ks}.{table}").secondary_writes_recorded += 1
        ctx.divergences(new_record("secondary_write", ks, table, key.to_json() if key else None,
                                   source=dual.primary.value, proxy=ctx.name, writetime=writetime,
                                   detail=f"{secondary_name}: {reason}"), durable)


def _entry_key(ctx, entry, values: list, keyspace: str | None):
    """A prepared statement's key: its text read with the markers origin described (in
    order: a marker's position, not its name, says whether it is in WHERE or IF)."""
    stmt = entry.statement
    ks = stmt.keyspace or entry.keyspace or keyspace
    key = keys.from_text(entry.run_query, values, binds=entry.binds,
                         primary_key=key_of(ctx.schema, ks, stmt.table), keyspace=ks)
    return ks, stmt.table, key


def _text_key(ctx, query: str, values: list, keyspace: str | None):
    stmt = classify(query)
    ks = stmt.keyspace or keyspace
    key = keys.from_text(query, values, primary_key=key_of(ctx.schema, ks, stmt.table), keyspace=ks)
    return ks, stmt.table, key


def _lwt_outcome(frame: Frame, version: int):
    """What a conditional write answered: its rows ([applied] and, when not applied, the
    values found), or its result kind."""
    kind = m.result_kind(frame.body, flags=frame.flags)
    if kind != ResultKind.ROWS:
        return kind
    return m.decode_rows(frame.body, version, flags=frame.flags).rows


def _applied(rows) -> str:
    """``yes``/``no`` from a conditional write's outcome (:func:`_lwt_outcome`); ``?`` when it
    has no [applied] column."""
    if isinstance(rows, list) and rows and rows[0] and rows[0][0] is not None:
        return "yes" if rows[0][0] != b"\x00" else "no"
    return "?"
