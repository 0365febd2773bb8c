"""Statement classification for routing, without a CQL grammar.

Theory of operation: a small regex lexer yields tokens lazily (comments and
whitespace skipped; string literals, $$ strings and quoted identifiers kept
whole), and a few hand-written rules look at the first keywords only as far as
routing needs: the statement kind, and for SELECT/INSERT/UPDATE/DELETE/USE and
the common DDL forms the keyspace and table named.  Unquoted identifiers are
case-insensitive, so they are lowercased; double-quoted ones keep their case
(``""`` escapes a quote).  Results are cached by query text.

Anything the rules do not recognise is ``StatementKind.OTHER``; callers route
it conservatively.
"""

from __future__ import annotations

import enum
import functools
import re
from dataclasses import dataclass, replace

__all__ = ["StatementKind", "Statement", "classify", "resolve", "is_system_peers_or_local"]


class StatementKind(enum.Enum):
    SELECT = "select"
    INSERT = "insert"
    UPDATE = "update"
    DELETE = "delete"
    BATCH = "batch"
    USE = "use"
    DDL = "ddl"      # CREATE/ALTER/DROP/TRUNCATE, including roles and users
    AUTH = "auth"    # GRANT/REVOKE/LIST
    OTHER = "other"


_WRITES = frozenset({StatementKind.INSERT, StatementKind.UPDATE, StatementKind.DELETE,
                     StatementKind.BATCH})


@dataclass(frozen=True, slots=True)
class Statement:
    kind: StatementKind
    keyspace: str | None = None   # as written; None when unqualified (see resolve)
    table: str | None = None      # SELECT: the FROM target; None for USE and keyspace DDL
    conditional: bool = False     # a lightweight transaction: INSERT/UPDATE/DELETE/BATCH ... IF

    @property
    def is_read(self) -> bool:
        return self.kind is StatementKind.SELECT

    @property
    def is_write(self) -> bool:
        return self.kind in _WRITES


_TOKEN = re.compile(r"""
      (?P<skip> \s+ | (?:--|//)[^\n]* | /\*.*?(?:\*/|\Z) )
    | (?P<str>  '(?:[^']|'')*(?:'|\Z) | \$\$.*?(?:\$\$|\Z) )
    | (?P<qid>  "(?:[^"]|"")*(?:"|\Z) )
    | (?P<id>   [A-Za-z_][A-Za-z0-9_]* )
    | (?P<num>  [0-9][A-Za-z0-9_.]* )
    | (?P<op>   . )
""", re.VERBOSE | re.DOTALL)


class _Tokens:
    """Lazy token cursor: (kind, value) pairs, ids lowercased, quoted ids unescaped."""

    __slots__ = ("_it", "_peeked")

    def __init__(self, text: str) -> None:
        self._it = _TOKEN.finditer(text)
        self._peeked: tuple[str, str] | None = None

    def peek(self) -> tuple[str, str] | None:
        if self._peeked is None:
            for m in self._it:
                kind = m.lastgroup
                if kind == "skip":
                    continue
                value = m.group()
                if kind == "id":
                    value = value.lower()
                elif kind == "qid":
                    value = value[1:-1 if len(value) > 1 and value.endswith('"') else None]
                    value = value.replace('""', '"')
                self._peeked = (kind, value)
                break
        return self._peeked

    def next(self) -> tuple[str, str] | None:
        token = self.peek()
        self._peeked = None
        return token

    def word(self) -> str | None:
        """The next token if it is an unquoted identifier (lowercased), consuming it."""
        token = self.peek()
        if token is not None and token[0] == "id":
            self._peeked = None
            return token[1]
        return None

    def accept(self, *words: str) -> bool:
        token = self.peek()
        if token is not None and token[0] == "id" and token[1] in words:
            self._peeked = None
            return True
        return False

    def name(self) -> str | None:
        token = self.peek()
        if token is not None and token[0] in ("id", "qid"):
            self._peeked = None
            return token[1]
        return None

    def qualified_name(self) -> tuple[str | None, str | None]:
        first = self.name()
        if first is None:
            return None, None
        if self.peek() == ("op", "."):
            self.next()
            return first, self.name()
        return None, first

    def skip_to_keyword(self, keyword: str) -> bool:
        """Advance past ``keyword`` at parenthesis depth 0; False if absent."""
        depth = 0
        while (token := self.next()) is not None:
            kind, value = token
            if kind == "op":
                depth += value in "([{"
                depth -= value in ")]}"
            elif kind == "id" and depth <= 0 and value == keyword:
                return True
        return False

    def skip_if_exists(self) -> None:
        if self.accept("if"):
            self.accept("not")
            self.accept("exists")


@functools.lru_cache(maxsize=4096)
def classify(query: str) -> Statement:
    tokens = _Tokens(query)
    verb = tokens.word()
    if verb == "select":
        if tokens.skip_to_keyword("from"):
            return Statement(StatementKind.SELECT, *tokens.qualified_name())
        return Statement(StatementKind.SELECT)
    if verb == "insert":
        tokens.accept("into")
        return _write(StatementKind.INSERT, tokens)
    if verb == "update":
        return _write(StatementKind.UPDATE, tokens)
    if verb == "delete":
        if tokens.skip_to_keyword("from"):
            return _write(StatementKind.DELETE, tokens)
        return Statement(StatementKind.DELETE)
    if verb == "begin":
        tokens.accept("logged", "unlogged", "counter")
        if tokens.accept("batch"):
            return Statement(StatementKind.BATCH, conditional=tokens.skip_to_keyword("if"))
        return Statement(StatementKind.OTHER)
    if verb == "use":
        return Statement(StatementKind.USE, tokens.name())
    if verb == "truncate":
        tokens.accept("table", "columnfamily")
        return Statement(StatementKind.DDL, *tokens.qualified_name())
    if verb in ("create", "alter", "drop"):
        return _ddl(tokens)
    if verb in ("grant", "revoke", "list"):
        return Statement(StatementKind.AUTH)
    return Statement(StatementKind.OTHER)


def _write(kind: StatementKind, tokens: _Tokens) -> Statement:
    keyspace, table = tokens.qualified_name()
    return Statement(kind, keyspace, table, conditional=tokens.skip_to_keyword("if"))


def _ddl(tokens: _Tokens) -> Statement:
    target = tokens.word()
    if target in ("table", "columnfamily"):
        tokens.skip_if_exists()
        return Statement(StatementKind.DDL, *tokens.qualified_name())
    if target in ("keyspace", "schema"):
        tokens.skip_if_exists()
        return Statement(StatementKind.DDL, tokens.name())
    return Statement(StatementKind.DDL)


def resolve(stmt: Statement, session_keyspace: str | None) -> Statement:
    """``stmt`` with an unqualified table placed in the connection's keyspace."""
    if stmt.table is not None and stmt.keyspace is None and session_keyspace is not None:
        return replace(stmt, keyspace=session_keyspace)
    return stmt


_SYSTEM_TABLES = frozenset({"local", "peers", "peers_v2"})


def is_system_peers_or_local(stmt: Statement, session_keyspace: str | None = None) -> str | None:
    """'local', 'peers' or 'peers_v2' for a SELECT from that system table, else None."""
    if stmt.kind is not StatementKind.SELECT:
        return None
    stmt = resolve(stmt, session_keyspace)
    if stmt.keyspace == "system" and stmt.table in _SYSTEM_TABLES:
        return stmt.table
    return None
