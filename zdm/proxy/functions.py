"""CQL function replacement: one value for ``now()``, ``uuid()`` and friends on both clusters.

Theory of operation: a write that calls ``now()`` makes each cluster generate its own
timeuuid, so the same INSERT stores two different rows.  With
``proxy.replace_cql_functions`` the proxy generates the value once and sends it to both
(zdm-proxy's option, which covers ``now()`` only).  Reads are never rewritten.

* In statement text (a QUERY, a BATCH's query children) each call becomes a literal
  (:func:`with_literals`).
* A prepared statement is prepared rewritten, each call replaced by a bind marker
  (:func:`with_markers`); every EXECUTE of it gets the generated values inserted at those
  markers' positions (:func:`fill`).  The client still prepares, and sees the metadata of,
  the statement it wrote.

Calls are found by the lexer (a function name in a string literal or a quoted identifier is
no call); names are case-insensitive, as CQL's are.  :class:`PrepareRewritten` and
:class:`BatchPlan` are the request handler's part: pure, as it is.
"""

from __future__ import annotations

import datetime
import random
import re
import struct
import uuid
from typing import NamedTuple

from zdm.cql import messages as m
from zdm.cql.constants import Opcode
from zdm.cql.frame import Frame
from zdm.phases.model import Cluster
from zdm.proxy.aggregate import Outcome
from zdm.proxy.pending import failure_frame
from zdm.proxy.prepared import PreparedEntry

_TOKEN = re.compile(r"""
      (?P<skip> \s+ | (?:--|//)[^\n]* | /\*.*?(?:\*/|\Z) )
    | (?P<str>  '(?:[^']|'')*(?:'|\Z) | \$\$.*?(?:\$\$|\Z) )
    | (?P<qid>  "(?:[^"]|"")*(?:"|\Z) )
    | (?P<id>   [A-Za-z_][A-Za-z0-9_]* )
    | (?P<mark> \?|:[A-Za-z_][A-Za-z0-9_]* )
    | (?P<op>   . )
""", re.VERBOSE | re.DOTALL)

#: function name (lowercase) -> the kind of value it makes
FUNCTIONS = {"now": "timeuuid", "currenttimeuuid": "timeuuid", "uuid": "uuid",
             "currenttimestamp": "timestamp", "currentdate": "date", "currenttime": "time"}
_EPOCH_DAYS = 1 << 31  # CQL date: days since the epoch, centred on 2^31


class Call(NamedTuple):
    kind: str    # timeuuid, uuid, timestamp, date, time
    start: int   # the call's span in the text
    end: int


class Generated(NamedTuple):
    literal: str   # as written in CQL text
    value: bytes   # as a bound value


def calls(query: str) -> list[Call]:
    """The replaceable function calls in ``query``, in order."""
    tokens = [(m.lastgroup, m.group(), m.start(), m.end()) for m in _TOKEN.finditer(query)
              if m.lastgroup != "skip"]
    found = []
    for i, (kind, text, start, _) in enumerate(tokens[:-2]):
        if kind == "id" and text.lower() in FUNCTIONS and tokens[i + 1][1] == "(" and tokens[i + 2][1] == ")":
            if i > 0 and tokens[i - 1][1] == ".":
                continue  # ks.now(): a user function of that name
            found.append(Call(FUNCTIONS[text.lower()], start, tokens[i + 2][3]))
    return found


def generate(kind: str, now_us: int) -> Generated:
    """One value of ``kind``, for a write made at ``now_us`` (microseconds since the epoch)."""
    if kind == "uuid":
        u = uuid.uuid4()
        return Generated(str(u), u.bytes)
    if kind == "timeuuid":
        u = _timeuuid(now_us)
        return Generated(str(u), u.bytes)
    moment = datetime.datetime.fromtimestamp(now_us / 1e6, datetime.timezone.utc)
    if kind == "timestamp":
        ms = now_us // 1000
        return Generated(f"'{moment.strftime('%Y-%m-%d %H:%M:%S')}.{ms % 1000:03d}+0000'",
                         struct.pack(">q", ms))
    if kind == "date":
        days = now_us // 86_400_000_000
        return Generated(f"'{moment.strftime('%Y-%m-%d')}'", struct.pack(">I", _EPOCH_DAYS + days))
    if kind == "time":
        nanos = (now_us % 86_400_000_000) * 1000
        return Generated(f"'{moment.strftime('%H:%M:%S')}.{nanos % 1_000_000_000:09d}'",
                         struct.pack(">q", nanos))
    raise ValueError(f"unknown kind {kind!r}")


def with_literals(query: str, found: list[Call], now_us: int) -> str:
    """``query`` with each call replaced by a freshly generated literal."""
    out, last = [], 0
    for call in found:
        out.append(query[last:call.start])
        out.append(generate(call.kind, now_us).literal)
        last = call.end
    out.append(query[last:])
    return "".join(out)


class Rewritten(NamedTuple):
    query: str
    #: (index among the rewritten statement's markers, kind) of each generated value
    slots: tuple[tuple[int, str], ...]


def with_markers(query: str, found: list[Call]) -> Rewritten | None:
    """``query`` with each call replaced by a bind marker, or None when it names its markers
    in a way this cannot extend (a mix the rewritten statement could not keep)."""
    markers = [(m.start(), m.group()) for m in _TOKEN.finditer(query) if m.lastgroup == "mark"]
    named = any(text != "?" for _, text in markers)
    positional = any(text == "?" for _, text in markers)
    if named and positional:
        return None
    out, last, slots = [], 0, []
    for n, call in enumerate(found):
        out.append(query[last:call.start])
        out.append(f":zdm_generated_{n}" if named else "?")
        index = sum(1 for start, _ in markers if start < call.start) + n
        slots.append((index, call.kind))
        last = call.end
    out.append(query[last:])
    return Rewritten("".join(out), tuple(slots))


def fill(values: list[bytes | None], slots: tuple[tuple[int, str], ...], now_us: int) -> list[bytes | None]:
    """The rewritten statement's values: the client's, with a generated one at each slot."""
    out = list(values)
    for index, kind in slots:
        out.insert(index, generate(kind, now_us).value)
    return out


def _timeuuid(now_us: int) -> uuid.UUID:
    """A version-1 UUID for ``now_us``, with a random clock sequence and a random node (RFC
    4122 section 4.5: the multicast bit set), so two proxies never make the same one."""
    ticks = now_us * 10 + 0x01B21DD213814000  # 100 ns intervals since 1582-10-15
    clock_seq = random.getrandbits(14)
    return uuid.UUID(fields=(ticks & 0xFFFFFFFF, (ticks >> 32) & 0xFFFF, (ticks >> 48) & 0x0FFF,
                             clock_seq >> 8, clock_seq & 0xFF, random.getrandbits(48) | (1 << 40)),
                     version=1)


# -- in the request path: PREPARE of a rewritten statement, and a BATCH built per cluster --

class PrepareRewritten:
    """PREPARE of a write whose functions are replaced: the clusters prepare the rewritten
    statement, and origin also prepares the client's, whose id and metadata the client gets."""

    __slots__ = ("handler", "frame", "query", "keyspace", "stmt", "rewritten", "answers")

    def __init__(self, handler, frame: Frame, query: str, keyspace: str | None,
                 stmt, rewritten: Rewritten) -> None:
        self.handler = handler
        self.frame = frame
        self.query = query
        self.keyspace = keyspace
        self.stmt = stmt
        self.rewritten = rewritten
        self.answers: dict[str, Outcome] = {}

    def send(self) -> None:
        frame, handler = self.frame, self.handler
        rewritten = m.replace_query(frame.body, self.rewritten.query, flags=frame.flags)
        handler.send_to(Cluster.ORIGIN, frame.flags, Opcode.PREPARE, frame.body, self._got("client"))
        handler.send_to(Cluster.ORIGIN, frame.flags, Opcode.PREPARE, rewritten, self._got("origin"))
        handler.send_to(Cluster.TARGET, frame.flags, Opcode.PREPARE, rewritten, self._got("target"))

    def _got(self, which: str):
        def done(outcome: Outcome) -> None:
            self.answers[which] = outcome
            if len(self.answers) == 3:
                self._complete()
        return done

    def _complete(self) -> None:
        frame, handler, answers = self.frame, self.handler, self.answers
        failed = [answers[k] for k in ("client", "origin", "target")
                  if not isinstance(answers[k], Frame) or answers[k].opcode != Opcode.RESULT]
        if failed:  # the client's own statement's failure first: it is what it would have seen
            handler.answer(frame.stream, failure_frame(frame.version, frame.stream, failed[0]))
            return
        version = frame.version
        client, run, target = (answers[k] for k in ("client", "origin", "target"))
        ids = {k: m.decode_prepared_result(a.body, version, flags=a.flags) for k, a in answers.items()}
        handler.ctx.prepared.put(PreparedEntry(
            self.query, self.keyspace, self.stmt, ids["client"].prepared_id, ids["target"].prepared_id,
            ids["client"].result_metadata_id, ids["target"].result_metadata_id, None,
            m.decode_prepared_metadata(run.body, version, flags=run.flags).binds,
            exec_query=self.rewritten.query, origin_exec_id=ids["origin"].prepared_id,
            origin_exec_metadata_id=ids["origin"].result_metadata_id, slots=self.rewritten.slots))
        handler.answer(frame.stream, client)


class BatchPlan:
    """A BATCH with function replacement, built per cluster from the same generated values:
    query children get literals, rewritten prepared children their values and each
    cluster's id; the plan rebuilds a cluster's body again after a re-prepare."""

    __slots__ = ("handler", "frame", "children", "timestamp")

    def __init__(self, handler, frame: Frame, children, timestamp: int | None) -> None:
        self.handler = handler
        self.frame = frame
        self.children = children  # (BatchChild, entry or None)
        self.timestamp = timestamp

    @classmethod
    def of(cls, handler, frame: Frame, info, timestamp: int | None) -> "BatchPlan | None":
        """The plan, or None when no child calls a function (the batch goes as it came)."""
        now = timestamp or handler.ctx.clock()
        children, changed = [], False
        for child in info.children:
            if child.kind == 0:
                found = calls(child.query)
                if found:
                    child = child._replace(query=with_literals(child.query, found, now))
                    changed = True
                children.append((child, None))
            else:
                entry = handler.ctx.prepared.get(child.prepared_id)
                if entry.slots:
                    child = child._replace(values=tuple(fill(list(child.values), entry.slots, now)))
                    changed = True
                children.append((child, entry))
        return cls(handler, frame, children, timestamp) if changed else None

    def build(self, cluster: Cluster) -> bytes:
        frame = self.frame
        children = [child if entry is None else child._replace(prepared_id=entry.id_on(cluster))
                    for child, entry in self.children]
        body = m.rebuild_batch(frame.body, frame.version, children, flags=frame.flags)
        if self.timestamp is not None:
            body = m.add_default_timestamp(Opcode.BATCH, body, frame.version, self.timestamp,
                                           flags=frame.flags)
        return body
