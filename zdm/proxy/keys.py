"""Which rows a write touches: the key of a request, for the records the proxy keeps.

Theory of operation: when two clusters disagree about a write (an LWT applied on one side
only, or a write the secondary did not take), the proxy records *where*: the keyspace, the
table and the column values the statement pins with ``=`` (or ``IN``) -- its primary key
among them.  Whoever repairs the row later knows the table's schema and picks the key
columns out of them; a record whose key columns cannot all be found stands for the whole
table.  The proxy reads no schema, so this module only reads requests:

* a prepared statement's bound values, named by the bind markers origin described when it
  was prepared (``k = ?`` is named ``k``);
* a statement's text, for the common forms: ``INSERT ... (c1, c2) VALUES (v1, v2)`` and
  ``UPDATE``/``DELETE``/``SELECT ... WHERE c1 = v1 AND c2 IN (v2, v3)``; a ``?`` in the text
  takes the request's next value.

A value is ``{"cql": literal}`` (a term as written) or ``{"hex": bytes}`` (a bound value,
with its ``"type"`` when the marker's type is known: the column's, otherwise); :func:`render`
shows either for people.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from zdm.cql.classify import StatementKind, classify
from zdm.cql.messages import ColumnSpec
from zdm.cql.types import deserialize, parse_type

_TOKEN = re.compile(r"""
      (?P<skip> \s+ | (?:--|//)[^\n]* | /\*.*?(?:\*/|\Z) )
    | (?P<str>  '(?:[^']|'')*(?:'|\Z) | \$\$.*?(?:\$\$|\Z) )
    | (?P<qid>  "(?:[^"]|"")*(?:"|\Z) )
    | (?P<word> [A-Za-z0-9_.:+-]+ )
    | (?P<op>   . )
""", re.VERBOSE | re.DOTALL)


class RowKey(NamedTuple):
    keyspace: str | None
    table: str
    #: column -> the values it is pinned to (several for IN)
    columns: dict[str, list[dict[str, str]]]

    def to_json(self) -> dict[str, Any]:
        return {"keyspace": self.keyspace, "table": self.table, "columns": self.columns}


def from_bound_values(keyspace: str | None, table: str, binds: list[ColumnSpec],
                      values: list[bytes | None]) -> RowKey:
    """The key of a prepared write: each bound value under its marker's name."""
    columns: dict[str, list[dict[str, str]]] = {}
    for spec, value in zip(binds, values):
        if spec.name.startswith("[") or not isinstance(value, bytes):  # [ttl]..., null, unset
            continue
        entry = {"type": spec.type.cql, "hex": value.hex()}
        if entry not in columns.setdefault(spec.name, []):
            columns[spec.name].append(entry)
    return RowKey(keyspace, table, columns)


def from_text(query: str, values: list[bytes | None] = ()) -> RowKey | None:
    """The key of a statement given as text (``?`` markers take ``values`` in order): the
    written row, or the one a SELECT asks for; None when it is not a form read here."""
    stmt = classify(query)
    if stmt.table is None or stmt.kind not in (StatementKind.INSERT, StatementKind.UPDATE,
                                               StatementKind.DELETE, StatementKind.SELECT):
        return None
    tokens = _tokens(query)
    bound = iter(values)
    try:
        if stmt.kind is StatementKind.INSERT:
            pairs = _insert_pairs(tokens, query, bound)
        else:
            pairs = _where_pairs(tokens, query, bound)
    except _NotRead:
        return None
    if pairs is None:
        return None
    columns: dict[str, list[dict[str, str]]] = {}
    for name, value in pairs:
        columns.setdefault(name, []).append(value)
    return RowKey(stmt.keyspace, stmt.table, columns)


def render(key: RowKey | dict | None) -> str:
    """``ks.t: k=1, c='x'`` for people (logs, samples, `zdm status`)."""
    if key is None:
        return "(key unknown)"
    data = key.to_json() if isinstance(key, RowKey) else key
    parts = []
    for name, values in data["columns"].items():
        shown = [_show(v) for v in values]
        parts.append(f"{name}={shown[0]}" if len(shown) == 1 else f"{name} IN ({', '.join(shown)})")
    where = f"{data['keyspace']}.{data['table']}" if data.get("keyspace") else data["table"]
    return f"{where}: {', '.join(parts)}" if parts else where


def _show(value: dict[str, str]) -> str:
    if "cql" in value:
        return value["cql"]
    if "type" not in value:
        return "0x" + value["hex"]

    try:
        return repr(deserialize(parse_type(value["type"]), bytes.fromhex(value["hex"])))
    except Exception:  # noqa: BLE001 - a value we cannot decode is still shown
        return "0x" + value["hex"]


class _NotRead(Exception):
    """The statement is not of a form this module reads."""


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


def _name(tok: _Tok) -> str:
    if tok.kind == "qid":
        return tok.text[1:-1].replace('""', '"')
    if tok.kind == "word":
        return tok.text.lower()
    raise _NotRead


def _terms(tokens: list[_Tok], i: int, query: str, bound) -> tuple[list[dict[str, str]], int]:
    """The comma-separated terms of a parenthesised list starting at ``tokens[i]`` == "(";
    returns them and the index after the closing ")"."""
    if tokens[i].text != "(":
        raise _NotRead
    out, i = [], i + 1
    while True:
        term, i = _term(tokens, i, query, bound, (",", ")"))
        out.append(term)
        if tokens[i].text == ")":
            return out, i + 1
        i += 1  # the comma


def _term(tokens: list[_Tok], i: int, query: str, bound, stop: tuple[str, ...],
          stop_words: tuple[str, ...] = ()) -> tuple[dict[str, str], int]:
    """One term, up to a depth-0 token in ``stop`` (or keyword in ``stop_words``): its literal
    text, or the request's next bound value for a ``?``."""
    start, depth = i, 0
    while i < len(tokens):
        tok = tokens[i]
        text = tok.text
        if depth == 0 and (text in stop or (tok.kind == "word" and text.lower() in stop_words)):
            break
        depth += text in "([{"
        depth -= text in ")]}"
        i += 1
    else:
        if depth or ")" in stop:
            raise _NotRead
    if i == start:
        raise _NotRead
    if i == start + 1 and tokens[start].text == "?":
        value = next(bound, None)
        return ({"hex": value.hex()} if isinstance(value, bytes) else {"cql": "null"}), i
    if any(t.text.startswith(":") for t in tokens[start:i]) or any(t.text == "?" for t in tokens[start:i]):
        raise _NotRead  # named or nested markers: not read here
    return {"cql": query[tokens[start].start:tokens[i - 1].end]}, i


#: keywords that end a WHERE clause, and those that end one of its terms
_AFTER_WHERE = ("if", "limit", "allow", "order", "group", "per")
_AFTER_A_TERM = ("and", *_AFTER_WHERE)


def _insert_pairs(tokens: list[_Tok], query: str, bound):
    i = next((n for n, t in enumerate(tokens) if t.text == "("), None)
    if i is None:
        return None  # INSERT ... JSON
    names_end = next(n for n in range(i, len(tokens)) if tokens[n].text == ")")
    names = [_name(t) for t in tokens[i + 1:names_end] if t.text != ","]
    if names_end + 1 >= len(tokens) or not _is(tokens[names_end + 1], "values"):
        return None
    values, _ = _terms(tokens, names_end + 2, query, bound)
    if len(values) != len(names):
        raise _NotRead
    return list(zip(names, values))


def _where_pairs(tokens: list[_Tok], query: str, bound):
    where = next((n for n, t in enumerate(tokens) if _is(t, "where")), None)
    if where is None:
        return None
    # markers before WHERE (SET v = ?, USING TTL ?) take their values first
    for tok in tokens[:where]:
        if tok.text == "?":
            next(bound, None)
    pairs, i = [], where + 1
    while i < len(tokens):
        name = _name(tokens[i])
        op = tokens[i + 1].text.lower() if i + 1 < len(tokens) else ""
        if op == "=":
            value, i = _term(tokens, i + 2, query, bound, (";",), _AFTER_A_TERM)
            pairs.append((name, value))
        elif op == "in":
            values, i = _terms(tokens, i + 2, query, bound)
            pairs.extend((name, v) for v in values)
        else:
            raise _NotRead  # ranges, tuples, token(): not a key
        if i >= len(tokens) or tokens[i].text == ";" or _is(tokens[i], *_AFTER_WHERE):
            return pairs
        if not _is(tokens[i], "and"):
            raise _NotRead
        i += 1
    return pairs

