"""The one place where the driver's callback futures meet asyncio.

The cassandra-driver runs its own I/O thread and reports through callbacks on a
``ResponseFuture``; here each callback hops onto the asyncio loop with
``call_soon_threadsafe``.  :func:`pages` keeps exactly one page in flight ahead of the
consumer (the next page is requested when the current one is handed out), so reading
overlaps processing without buffering a whole range; :func:`timed_pages` also says when
each page arrived (a TTL read in it counts down from then) and, with ``host`` and
``paging_state``, reads from one node, from where an earlier read of the same query stopped
(:mod:`zdm.migrate.range_read` fails a range read over to another replica that way).
:class:`WriteWindow` bounds the requests in flight (:meth:`~WriteWindow.acquire` a slot, then
:meth:`~WriteWindow.send` in it) and remembers the first failure.

A request whose statement is idempotent (``is_idempotent``: reads, and batches of writes
that carry their own timestamps and no TTL) is sent again when it fails in a way another
attempt may get past (:func:`zdm.ranges.failover.retryable`: a node died, timed out, was
unavailable), after
a backoff, up to :data:`~zdm.ranges.failover.MAX_RETRIES` times: the driver's load-balancing
policy then picks a live node.  Any other failure is final at once.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator

from zdm.ranges import failover


async def execute(session, statement, params=None) -> list:
    """Run one request: its (first page of) rows; an idempotent one is retried (see above)."""
    retry = 0
    while True:
        try:
            return await execute_once(session, statement, params)
        except Exception as exc:
            if not (getattr(statement, "is_idempotent", False) and failover.retryable(exc)) \
                    or retry >= failover.MAX_RETRIES:
                raise
        await asyncio.sleep(failover.backoff(retry))
        retry += 1


def execute_once(session, statement, params=None) -> "asyncio.Future[list]":
    """Run one request, once; the future resolves to its (first page of) rows."""
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
    async for arrived, rows, _next in paged(session, statement, params):
        yield arrived, rows


async def paged(session, statement, params=None, *, host=None,
                paging_state: bytes | None = None) -> AsyncIterator[tuple[float, list, bytes | None]]:
    """(when it arrived; rows; the paging state that reads the pages after it, None after
    the last) for each page of a paged query, one page read ahead.  ``host``: every page
    from that node only (None: the load-balancing policy picks); ``paging_state``: start
    after the page an earlier read of this query returned that state with."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    rf = session.execute_async(statement, params, paging_state=paging_state, host=host)

    def on_page(rows) -> None:
        # the driver sets the next page's state before it calls back, and changes it only
        # when that page arrives: read it here, with the rows it follows
        loop.call_soon_threadsafe(queue.put_nowait, (True, rows, time.monotonic(), rf._paging_state))

    rf.add_callbacks(on_page, lambda exc: loop.call_soon_threadsafe(queue.put_nowait,
                                                                     (False, exc, 0.0, None)))
    while True:
        ok, payload, arrived, next_state = await queue.get()
        if not ok:
            raise payload
        if next_state:
            rf.start_fetching_next_page()
        yield arrived, payload, next_state or None
        if not next_state:
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
        """Send one request in the slot :meth:`acquire` took (an idempotent one is sent
        again while it fails retryably, in the same slot)."""
        try:
            self._send(session, statement, params, 0)
        except BaseException:
            self._slots.release()
            raise

    def _send(self, session, statement, params, retry: int) -> None:
        loop = asyncio.get_running_loop()
        rf = session.execute_async(statement, params)
        rf.add_callbacks(
            lambda _rows: loop.call_soon_threadsafe(self._done, None),
            lambda exc: loop.call_soon_threadsafe(self._failed, exc, session, statement, params, retry))

    def _failed(self, exc: BaseException, session, statement, params, retry: int) -> None:
        if self.error is None and retry < failover.MAX_RETRIES and failover.retryable(exc) \
                and getattr(statement, "is_idempotent", False):
            asyncio.get_running_loop().call_later(failover.backoff(retry), self._resend,
                                                  session, statement, params, retry + 1)
            return
        self._done(exc)

    def _resend(self, session, statement, params, retry: int) -> None:
        try:
            self._send(session, statement, params, retry)
        except Exception as exc:  # noqa: BLE001 - e.g. the session shut down: the range fails
            self._done(exc)

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
