"""Merge-join two range scans (origin, target) into matched pairs, without a CQL comparator.

Theory of operation: both scans come back in the same order (token, then the partition
key's and the clustering key's server-side order).  Only tokens are compared here;
ordering partition and clustering keys would need every CQL type's comparator, so
instead the rows of one token are matched by key equality in two small dictionaries:
the sides advance in lockstep, a row whose key is waiting on the other side pairs up
at once, and the rest wait.  When both sides have moved past the token, whatever still
waits is unmatched (missing on target, or only on target).  Because both sides share
the order, the dictionaries hold only the differences plus a small lag; a token that
only one side has is passed straight through without buffering.

The class is sans-I/O: the caller feeds pages (:meth:`feed`, :meth:`finish`), asks
which side :meth:`needs` more, and takes the pairs out (:meth:`pairs`).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Iterator

ORIGIN, TARGET = 0, 1


class MergeJoin:
    def __init__(self, key: Callable[[tuple], Any]) -> None:
        self._key = key
        self._rows: tuple[deque, deque] = (deque(), deque())
        self._ended = [False, False]
        self._waiting: tuple[dict, dict] = ({}, {})
        self._token: int | None = None
        self._out: list[tuple[tuple | None, tuple | None]] = []

    def feed(self, side: int, rows) -> None:
        self._rows[side].extend(rows)

    def finish(self, side: int) -> None:
        self._ended[side] = True

    def needs(self) -> list[int]:
        """Sides that must be fed (or finished) before more pairs can come out."""
        self._advance()
        return [s for s in (ORIGIN, TARGET) if not self._rows[s] and not self._ended[s]]

    @property
    def done(self) -> bool:
        self._advance()
        return all(self._ended) and not any(self._rows) and self._token is None

    def pairs(self) -> list[tuple[tuple | None, tuple | None]]:
        """(origin_row, target_row) pairs found so far; None marks the side that lacks the row."""
        self._advance()
        out, self._out = self._out, []
        return out

    def _head_token(self, side: int) -> int | None:
        rows = self._rows[side]
        return rows[0][0] if rows else None

    def _advance(self) -> None:
        rows, waiting = self._rows, self._waiting
        while True:
            blocked = [s for s in (ORIGIN, TARGET) if not rows[s] and not self._ended[s]]
            if blocked:
                return
            heads = [self._head_token(ORIGIN), self._head_token(TARGET)]
            if self._token is not None and self._token not in heads:
                self._flush()
                continue
            if self._token is None:
                live = [h for h in heads if h is not None]
                if not live:
                    return
                self._token = min(live)
            took = False
            for side in (ORIGIN, TARGET):
                if heads[side] != self._token:
                    continue
                row = rows[side].popleft()
                took = True
                other = 1 - side
                if heads[other] != self._token and not waiting[other]:
                    self._emit(side, row, None)  # the other side has nothing at this token
                    continue
                k = self._key(row)
                match = waiting[other].pop(k, None)
                if match is not None:
                    self._emit(side, row, match)
                else:
                    waiting[side][k] = row
            if not took:  # pragma: no cover - defensive: heads moved past the token
                self._flush()

    def _emit(self, side: int, row: tuple | None, other: tuple | None) -> None:
        self._out.append((row, other) if side == ORIGIN else (other, row))

    def _flush(self) -> None:
        for k, row in self._waiting[ORIGIN].items():
            self._out.append((row, None))
        for k, row in self._waiting[TARGET].items():
            self._out.append((None, row))
        self._waiting[ORIGIN].clear()
        self._waiting[TARGET].clear()
        self._token = None


def merge_all(origin: list[tuple], target: list[tuple], key: Callable[[tuple], Any],
              page: int = 1000) -> Iterator[tuple[tuple | None, tuple | None]]:
    """Convenience for tests and small inputs: the pairs of two complete sorted lists."""
    m = MergeJoin(key)
    pos = [0, 0]
    sources = (origin, target)
    while not m.done:
        for side in m.needs():
            chunk = sources[side][pos[side]:pos[side] + page]
            pos[side] += len(chunk)
            if chunk:
                m.feed(side, chunk)
            else:
                m.finish(side)
        yield from m.pairs()
    yield from m.pairs()
