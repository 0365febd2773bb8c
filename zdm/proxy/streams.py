"""Stream ids of one backend connection.

Each client request forwarded to a cluster gets a fresh stream id on that
cluster's connection (client stream ids are only unique per client connection,
and the proxy may have its own requests in flight).  Ids are handed out lazily:
a connection that never has more than a few requests in flight only ever holds a
few ids, so an idle connection costs bytes, not the 32,768-entry table a v3+
connection could use.  Released ids are recycled LIFO; an id whose request timed
out stays reserved until its late answer arrives, so a late answer can never be
taken for the answer to a newer request.
"""

from __future__ import annotations

from typing import Any

MAX_STREAMS = 32768  # v3+ stream ids are a signed short; only 0..32767 are for requests


class StreamsExhausted(Exception):
    pass


class StreamIds:
    __slots__ = ("_free", "_next", "_size", "pending")

    def __init__(self, size: int = MAX_STREAMS) -> None:
        self._free: list[int] = []  # released ids, reused last-in first-out
        self._next = 0              # ids from here up were never handed out
        self._size = size
        #: stream id -> whatever the caller keeps for the answer
        self.pending: dict[int, Any] = {}

    def acquire(self, entry: Any) -> int:
        if self._free:
            stream = self._free.pop()
        elif self._next < self._size:
            stream = self._next
            self._next += 1
        else:
            raise StreamsExhausted("all stream ids of this connection are in use")
        self.pending[stream] = entry
        return stream

    def release(self, stream: int) -> Any:
        """The entry of an answered stream (None if unknown), and the id back to the pool."""
        entry = self.pending.pop(stream, None)
        if entry is not None:
            self._free.append(stream)
        return entry

    def __len__(self) -> int:
        return len(self.pending)
