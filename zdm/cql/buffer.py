"""A receive buffer in the h11 style.

Theory of operation: unread bytes from the network and a read offset into them.
Reads never consume partially: ``consume_exactly(n)`` returns ``None`` (and consumes
nothing) until ``n`` bytes are there, so a half-received header never eats bytes.

Incoming ``bytes`` are adopted as they are when nothing is buffered (the common case:
a read that holds whole frames is parsed in place, with no copy into the buffer);
only a remainder that has to wait for more bytes is moved into a ``bytearray``.  In a
``bytearray``, consumed bytes are dropped from the front only once they are both
numerous and more than half the array, so many small frames cost O(total bytes),
not O(n^2).  An idle buffer holds nothing.
"""

from __future__ import annotations

import struct

_COMPACT_MIN = 64 * 1024


class ReceiveBuffer:
    __slots__ = ("_data", "_start")

    def __init__(self) -> None:
        self._data: bytes | bytearray = b""
        self._start = 0

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if self._start == len(self._data):  # empty: adopt, do not copy
            self._data = data if type(data) is bytes else bytes(data)
            self._start = 0
            return
        if type(self._data) is bytes:  # a remainder waiting for the rest: now it is copied
            self._data = bytearray(memoryview(self._data)[self._start:])
            self._start = 0
        self._data += data

    def __len__(self) -> int:
        return len(self._data) - self._start

    def __bool__(self) -> bool:
        return len(self._data) > self._start

    def peek(self, n: int) -> bytes | None:
        """The next ``n`` bytes without consuming them, or None if fewer are buffered."""
        if len(self) < n:
            return None
        with memoryview(self._data) as view:
            return bytes(view[self._start:self._start + n])

    def unpack_from(self, fmt: struct.Struct, skip: int = 0) -> tuple | None:
        """``fmt.unpack`` of the bytes at ``skip`` past the read offset, without copying."""
        if len(self) < skip + fmt.size:
            return None
        return fmt.unpack_from(self._data, self._start + skip)

    def consume_exactly(self, n: int) -> bytes | None:
        """Remove and return exactly ``n`` bytes, or None (consuming nothing) if fewer."""
        if len(self) < n:
            return None
        start = self._start
        with memoryview(self._data) as view:
            out = bytes(view[start:start + n])
        self._advance(n)
        return out

    def discard(self, n: int) -> None:
        """Drop ``n`` bytes (which must be buffered)."""
        if len(self) < n:
            raise ValueError("discarding more than is buffered")
        self._advance(n)

    def consume_all(self) -> bytes:
        out = self.consume_exactly(len(self))
        assert out is not None
        return out

    def _advance(self, n: int) -> None:
        self._start += n
        data = self._data
        if self._start == len(data):
            self._data = b""
            self._start = 0
        elif type(data) is bytearray and self._start >= _COMPACT_MIN and self._start * 2 >= len(data):
            del data[:self._start]
            self._start = 0
