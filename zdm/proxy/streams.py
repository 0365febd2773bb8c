"""Stream ids of one backend connection.

Each client request forwarded to a cluster gets a fresh stream id on that
cluster's connection (client stream ids are only unique per client connection,
and the proxy may have its own requests in flight).  Ids are recycled LIFO; an id
whose request timed out stays reserved until its late answer arrives, so a late
answer can never be taken for the answer to a newer request.
"""

from __future__ import annotations

from typing import Any

MAX_STREAMS = 32768  # v3+ stream ids are a signed short; only 0..32767 are for requests


class StreamsExhausted(Exception):
    pass


class StreamIds:
    __slots__ = ("_free", "pending")

    def __init__(self, size: int = MAX_STREAMS) -> None:
        self._free = list(range(size - 1, -1, -1))
        #: stream id -> whatever the caller keeps for the answer
        self.pending: dict[int, Any] = {}

    def acquire(self, entry: Any) -> int:
        try:
            stream = self._free.pop()
        except IndexError:
            raise StreamsExhausted("all stream ids of this connection are in use") from None
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
