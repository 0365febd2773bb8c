"""Which row a write touches: the primary key of a request, for the records the proxy keeps.

Theory of operation: when two clusters disagree about a write (an LWT decided differently,
or a write the secondary did not take), the proxy records *where*: the keyspace, the table
and the row's primary key.  The key is read from the statement's text in two steps:

1. :func:`pinned` reads what the statement pins: the columns of its ``WHERE`` clause
   compared with ``=`` or ``IN`` (``(a, b) = (x, y)`` too), or an ``INSERT``'s columns with
   their ``VALUES`` (or its ``JSON`` document).  The ``IF`` clause, ``SET`` assignments and
   ``USING TTL/TIMESTAMP`` never pin anything.  Every bind marker in the text -- ``?`` or
   named ``:x`` -- is numbered in the order it appears, which is the order of the request's
   values and of the markers a PREPARED result describes; so a term that is a marker takes
   the value at its own position, wherever the other markers are (a marker in ``IF`` may
   carry a key column's name; its position says it is not the key).
2. :func:`row_key` keeps the table's primary key columns, from origin's schema
   (:mod:`~zdm.proxy.schema`): the partition key, then the clustering columns pinned, in
   order.  A statement that pins only the partition (a static column's update or
   condition, a partition delete) is keyed by its partition.  Without the table's key (the
   proxy has not read it), every pinned column is kept and ``primary_key`` is None: the
   reader of the record picks the key out by its own schema, and a record without the
   partition key covers the whole table.  A key is not ``exact`` when the statement
   restricted its rows further than the key says (``c > 5``, ``IN ?``): comparing by it is
   right, deleting by it would be too wide.

A value is ``{"cql": literal}`` (a term as written) or ``{"hex": bytes}`` (a bound value,
with its ``"type"`` when the PREPARED metadata gave it); :func:`render` shows either for
people.  This runs only when a record is made (rare), never per request.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, NamedTuple

from zdm.cql.classify import StatementKind, classify
from zdm.cql.messages import ColumnSpec
from zdm.proxy.schema import TableKey
from zdm.state.divergences import complete_partition, render_key as render  # noqa: F401 - records

_TOKEN = re.compile(r"""
      (?P<skip> \s+ | (?:--|//)[^\n]* | /\*.*?(?:\*/|\Z) )
    | (?P<str>  '(?:[^']|'')*(?:'|\Z) | \$\$.*?(?:\$\$|\Z) )
    | (?P<qid>  "(?:[^"]|"")*(?:"|\Z) )
    | (?P<word> [A-Za-z0-9_.:+-]+ )
    | (?P<op>   . )
""", re.VERBOSE | re.DOTALL)
_NAMED_MARKER = re.compile(r":[A-Za-z_][A-Za-z0-9_]*\Z")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")

Value = dict[str, str]


class Pinned(NamedTuple):
    """What a statement pins."""

    #: column -> the values it is pinned to (several for IN); None: to what cannot be read
    columns: dict[str, list[Value] | None]
    #: False when the WHERE clause also has relations that pin nothing (a range, token())
    complete: bool = True


class RowKey(NamedTuple):
    keyspace: str | None
    table: str
    #: column -> the values it is pinned to (several for IN)
    columns: dict[str, list[Value]]
    #: the table's primary key as the proxy knew it; None: unknown, ``columns`` is all that
    #: the statement pinned
    primary_key: TableKey | None = None
    #: False when the statement restricted its rows further than ``columns`` says (a range
    #: on a clustering column, ``IN ?``, a value that could not be read): the key is wider
    #: than what the statement touched -- right for comparing, too wide to delete by
    exact: bool = True

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"keyspace": self.keyspace, "table": self.table, "columns": self.columns}
        if self.primary_key is not None:
            out["partition_key"] = list(self.primary_key.partition)
            out["clustering_key"] = list(self.primary_key.clustering)
        if not self.exact:
            out["exact"] = False
        return out


def from_text(query: str, values: Sequence[bytes | None] = (), *, binds: Sequence[ColumnSpec] = (),
              primary_key: TableKey | None = None, keyspace: str | None = None) -> RowKey | None:
    """The key of a statement (a write, or the row a SELECT asks for): ``values`` are the
    request's bound values and ``binds`` the markers' descriptions (a prepared statement's),
    both in marker order.  None when the statement is not of a form read here."""
    stmt = classify(query)
    if stmt.table is None or stmt.kind not in (StatementKind.INSERT, StatementKind.UPDATE,
                                               StatementKind.DELETE, StatementKind.SELECT):
        return None
    found = pinned(query, values, binds)
    if found is None:
        return None
    return row_key(stmt.keyspace or keyspace, stmt.table, found, primary_key)


def row_key(keyspace: str | None, table: str, found: Pinned, primary_key: TableKey | None) -> RowKey:
    """The primary key among the pinned columns: the partition key, then the clustering
    columns pinned in order (stopping at the first one not pinned)."""
    pins = found.columns
    if primary_key is None:
        columns = {n: v for n, v in pins.items() if v}
        return RowKey(keyspace, table, columns, None, found.complete and len(columns) == len(pins))
    columns: dict[str, list[Value]] = {}
    for name in primary_key.partition:
        if not pins.get(name):
            return RowKey(keyspace, table, columns, primary_key, False)  # the partition is unknown
        columns[name] = pins[name]
    for name in primary_key.clustering:
        if not pins.get(name):
            break
        columns[name] = pins[name]
    key_columns = set(primary_key.partition + primary_key.clustering)
    exact = found.complete and all(n in columns for n in pins if n in key_columns)
    return RowKey(keyspace, table, columns, primary_key, exact)


# -- reading a statement -----------------------------------------------------------------------

class _Tok(NamedTuple):
    kind: str
    text: str
    start: int
    end: int


def _tokens(query: str) -> list[_Tok]:
    return [_Tok(m.lastgroup, m.group(), m.start(), m.end()) for m in _TOKEN.finditer(query)
            if m.lastgroup != "skip"]


def _is(tok: _Tok, *words: str) -> bool:
    return tok.kind == "word" and tok.text.lower() in words


def _name(tok: _Tok) -> str | None:
    if tok.kind == "qid":
        return tok.text[1:-1].replace('""', '"')
    if tok.kind == "word" and not tok.text[0].isdigit() and ":" not in tok.text:
        return tok.text.lower()
    return None


class _Statement:
    """One statement's tokens, its bind markers numbered in text order, and its values."""

    def __init__(self, query: str, values: Sequence[bytes | None], binds: Sequence[ColumnSpec]) -> None:
        self.query = query
        self.tokens = _tokens(query)
        self.values = values
        self.binds = binds
        #: False once a relation is met that pins nothing (a range, token(), CONTAINS)
        self.complete = True
        #: token index -> the marker's number; a named marker may be ``:"Name"`` (two tokens)
        self.markers: dict[int, int] = {}
        for i, tok in enumerate(self.tokens):
            if tok.text == "?" or (tok.kind == "word" and _NAMED_MARKER.match(tok.text)) or (
                    tok.text == ":" and i + 1 < len(self.tokens) and self.tokens[i + 1].kind == "qid"):
                self.markers[i] = len(self.markers)

    def consistent(self) -> bool:
        """Do the markers found match the values and descriptions given?  When they do not,
        the numbering cannot be trusted and nothing is read."""
        count = len(self.markers)
        return (not self.binds or len(self.binds) == count) and (not self.values or len(self.values) == count)

    def term(self, start: int, end: int) -> Value | None:
        """The term ``tokens[start:end]``: its literal text, or the value of the marker it is;
        None when it cannot be read (a marker inside a function call, a null)."""
        if start >= end:
            return None
        if start in self.markers and end - start == (2 if self.tokens[start].text == ":" else 1):
            n = self.markers[start]
            value = self.values[n] if n < len(self.values) else None
            if not isinstance(value, bytes):
                return None  # null, unset or not given: no key
            if n < len(self.binds):
                return {"type": self.binds[n].type.cql, "hex": value.hex()}
            return {"hex": value.hex()}
        if any(start <= i < end for i in self.markers):
            return None
        text = self.query[self.tokens[start].start:self.tokens[end - 1].end]
        return None if text.lower() == "null" else {"cql": text}

    def split(self, start: int, end: int, separator: str) -> list[tuple[int, int]]:
        """``tokens[start:end]`` cut at each depth-0 ``separator`` (a punctuation or a keyword)."""
        spans, depth, first = [], 0, start
        for i in range(start, end):
            text = self.tokens[i].text
            if depth == 0 and (text == separator or _is(self.tokens[i], separator)):
                spans.append((first, i))
                first = i + 1
            depth += text in "([{"
            depth -= text in ")]}"
        spans.append((first, end))
        return spans

    def closing(self, i: int) -> int:
        """The index of the bracket closing the one at ``tokens[i]``."""
        depth = 0
        for j in range(i, len(self.tokens)):
            depth += self.tokens[j].text in "([{"
            depth -= self.tokens[j].text in ")]}"
            if depth == 0:
                return j
        return len(self.tokens)

    def find(self, start: int, *words: str) -> int:
        """The first depth-0 token from ``start`` that is one of ``words`` (or ``;``)."""
        depth = 0
        for i in range(start, len(self.tokens)):
            tok = self.tokens[i]
            if depth == 0 and (tok.text == ";" or _is(tok, *words)):
                return i
            depth += tok.text in "([{"
            depth -= tok.text in ")]}"
        return len(self.tokens)


def pinned(query: str, values: Sequence[bytes | None] = (), binds: Sequence[ColumnSpec] = ()) -> Pinned | None:
    """The columns an INSERT, UPDATE, DELETE or SELECT pins, with their values; None when its
    form is not read here (no WHERE, a marker count that does not match the values)."""
    st = _Statement(query, values, binds)
    if not st.consistent() or not st.tokens:
        return None
    if _is(st.tokens[0], "insert"):
        return _insert(st)
    where = st.find(0, "where")
    if where == len(st.tokens) or st.tokens[where].text == ";":
        return None
    end = st.find(where + 1, "if", "limit", "allow", "order", "group", "per")
    found: dict[str, list[Value] | None] = {}
    for start, stop in st.split(where + 1, end, "and"):
        if not _relation(st, start, stop, found):
            st.complete = False
    return Pinned(found, st.complete)


def _pin(found: dict, name: str, values: list[Value | None]) -> None:
    if name in found and found[name] is None:
        return
    if any(v is None for v in values) or not values:
        found[name] = None
        return
    known = found.setdefault(name, [])
    known.extend(v for v in values if v not in known)


def _relation(st: _Statement, start: int, stop: int, found: dict) -> bool:
    """One relation of a WHERE clause: ``c = t``, ``c IN (t, ...)``, ``(a, b) = (x, y)``,
    ``(a, b) IN ((x, y), ...)``; others (ranges, token(), CONTAINS) pin nothing: False."""
    tokens = st.tokens
    if stop - start < 3:
        return False
    if tokens[start].text == "(":
        close = st.closing(start)
        names = [_name(tokens[a]) if b - a == 1 else None for a, b in st.split(start + 1, close, ",")]
        if close + 1 >= stop or None in names:
            return False
        op, rest = tokens[close + 1], close + 2
        if rest >= stop:
            return False
        if op.text == "=":
            tuples = [(rest, stop)]
        elif _is(op, "in") and tokens[rest].text == "(" and st.closing(rest) == stop - 1:
            tuples = st.split(rest + 1, stop - 1, ",")
        else:
            return False
        per_name: list[list[Value | None]] = [[] for _ in names]
        for a, b in tuples:
            if tokens[a].text != "(" or st.closing(a) != b - 1:
                for column in per_name:
                    column.append(None)  # a marker bound to a whole tuple: not read
                continue
            terms = st.split(a + 1, b - 1, ",")
            for column, (ta, tb) in zip(per_name, terms if len(terms) == len(names) else [(0, 0)] * len(names)):
                column.append(st.term(ta, tb))
        for name, column in zip(names, per_name):
            _pin(found, name, column)
        return True
    name = _name(tokens[start])
    op = tokens[start + 1]
    if name is None or tokens[start + 1].text == "(":
        return False  # token(...) and other functions
    if op.text == "=":
        _pin(found, name, [st.term(start + 2, stop)])
    elif _is(op, "in"):
        rest = start + 2
        if tokens[rest].text == "(" and st.closing(rest) == stop - 1:
            _pin(found, name, [st.term(a, b) for a, b in st.split(rest + 1, stop - 1, ",")])
        else:
            _pin(found, name, [None])  # IN ?: one marker for the whole list
    else:
        return False  # a range, CONTAINS, LIKE...
    return True


def _insert(st: _Statement) -> Pinned | None:
    """``INSERT INTO t (c, ...) VALUES (v, ...)`` or ``INSERT INTO t JSON doc``."""
    tokens = st.tokens
    i = 1
    while i < len(tokens) and not (tokens[i].text == "(" or _is(tokens[i], "json")):
        i += 1
    if i >= len(tokens):
        return None
    if _is(tokens[i], "json"):
        return _insert_json(st, i + 1)
    close = st.closing(i)
    names = [_name(tokens[a]) if b - a == 1 else None for a, b in st.split(i + 1, close, ",")]
    if close + 2 >= len(tokens) or not _is(tokens[close + 1], "values") or tokens[close + 2].text != "(":
        return None
    vclose = st.closing(close + 2)
    terms = st.split(close + 3, vclose, ",")
    if len(terms) != len(names) or None in names:
        return None
    found: dict[str, list[Value] | None] = {}
    for name, (a, b) in zip(names, terms):
        _pin(found, name, [st.term(a, b)])
    return Pinned(found)


def _insert_json(st: _Statement, i: int) -> Pinned | None:
    """The JSON document's columns: a literal string, or a bound one (text)."""
    if i >= len(st.tokens):
        return None
    tok = st.tokens[i]
    if tok.kind == "str" and tok.text.startswith("'"):
        doc = tok.text[1:-1].replace("''", "'")
    elif tok.kind == "str":
        doc = tok.text[2:-2]
    else:
        value = st.term(i, i + (2 if tok.text == ":" else 1))
        if value is None or "hex" not in value:
            return None
        doc = bytes.fromhex(value["hex"]).decode("utf-8", "replace")
    try:
        data = json.loads(doc)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    found: dict[str, list[Value] | None] = {}
    for key, value in data.items():
        # JSON keys are case-insensitive names unless they carry quotes of their own
        name = key[1:-1] if len(key) > 1 and key[0] == key[-1] == '"' else key.lower()
        _pin(found, name, [_json_term(value)])
    return Pinned(found)


def _json_term(value: Any) -> Value | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return {"cql": "true" if value else "false"}
    if isinstance(value, int):
        return {"cql": str(value)}
    if isinstance(value, str) and _UUID.match(value):
        return {"cql": value}
    # the column's type decides what a JSON string or number means: let Cassandra read it
    return {"cql": "fromJson('" + json.dumps(value).replace("'", "''") + "')"}
