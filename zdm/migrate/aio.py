"""The one place where the driver's callback futures meet asyncio.

The cassandra-driver runs its own I/O thread and reports through callbacks on a
``ResponseFuture``; here each callback hops onto the asyncio loop with
``call_soon_threadsafe``.  :func:`pages` keeps exactly one page in flight ahead of the
consumer (the next page is requested when the current one is handed out), so reading
overlaps processing without buffering a whole range; :func:`timed_pages` also says when
each page arrived (a TTL read in it counts down from then).  :class:`WriteWindow` bounds the
requests in flight (:meth:`~WriteWindow.acquire` a slot, then :meth:`~WriteWindow.send` in it) and
remembers the first failure.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator


def execute(session, statement, params=None) -> "asyncio.Future[list]":
    """Run one request; the future resolves to its (first page of) rows."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future = loop.create_future()
    rf = session.execute_async(statement, params)
    rf.add_callbacks(
        lambda rows: loop.call_soon_threadsafe(_resolve, fut, rows),
        lambda exc: loop.call_soon_threadsafe(_fail, fut, exc))
    return fut


def _resolve(fut: asyncio.Future, value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


def _fail(fut: asyncio.Future, exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


async def timed_pages(session, statement, params=None) -> AsyncIterator[tuple[float, list]]:
    """(when it arrived, on the monotonic clock; rows) for each page of a paged query, in
    order, one page read ahead."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    rf = session.execute_async(statement, params)
    rf.add_callbacks(
        lambda rows: loop.call_soon_threadsafe(queue.put_nowait, (True, rows, time.monotonic())),
        lambda exc: loop.call_soon_threadsafe(queue.put_nowait, (False, exc, 0.0)))
    while True:
        ok, payload, arrived = await queue.get()
        if not ok:
            raise payload
        more = rf.has_more_pages
        if more:
            rf.start_fetching_next_page()
        yield arrived, payload
        if not more:
            return


async def pages(session, statement, params=None) -> AsyncIterator[list]:
    """Each page of rows of a paged query, in order, one page read ahead."""
    async for _arrived, rows in timed_pages(session, statement, params):
        yield rows


class WriteWindow:
    """At most ``limit`` requests in flight; :meth:`drain` waits for all and raises the first error."""

    def __init__(self, limit: int) -> None:
        self._slots = asyncio.Semaphore(limit)
        self._limit = limit
        self.error: BaseException | None = None
        self.completed = 0

    async def submit(self, session, statement, params=None) -> None:
        await self.acquire()
        self.send(session, statement, params)

    async def acquire(self) -> None:
        """Take a slot (waiting for one); :meth:`send` uses it."""
        if self.error is not None:
            raise self.error
        await self._slots.acquire()

    def send(self, session, statement, params=None) -> None:
        """Send one request in the slot :meth:`acquire` took."""
        loop = asyncio.get_running_loop()
        try:
            rf = session.execute_async(statement, params)
        except BaseException:
            self._slots.release()
            raise
        rf.add_callbacks(lambda _rows: loop.call_soon_threadsafe(self._done, None),
                         lambda exc: loop.call_soon_threadsafe(self._done, exc))

    def _done(self, exc: BaseException | None) -> None:
        self._slots.release()
        if exc is None:
            self.completed += 1
        elif self.error is None:
            self.error = exc

    async def drain(self) -> None:
        for _ in range(self._limit):
            await self._slots.acquire()
        for _ in range(self._limit):
            self._slots.release()
        if self.error is not None:
            raise self.error
