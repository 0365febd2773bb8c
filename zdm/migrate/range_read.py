"""Read one token range of a table, page by page, from a replica of the range, and carry on
from another when it fails mid-range.

Theory of operation: :func:`range_pages` asks the context's router
(:class:`zdm.ranges.replicas.ReplicaRouter`) for the nodes to read the range from (a replica
in the local datacenter first, turn by turn) and reads every page from the first of them.
It remembers the paging state that came with the last page it handed out.  When a page
fails retryably (:func:`zdm.ranges.failover.retryable`: the node died, timed out, was
unavailable), it waits a backoff and sends the same query, with that paging state, to the
next node of the plan (the one that failed goes last).  A Cassandra paging state names the
last row returned, not the node that returned it, so any coordinator speaking the same
protocol version resumes right after that row: every row of the range is handed out
exactly once, even across a failover, and the rows a range counts are the rows it read.

The other choice, restarting the range from its first row, would also be exact (a range's
rows are counted, and checkpointed, only when it ends), but redoes the work done so far
and, for a copy, writes it again; it remains what happens when the failures outlast
:data:`~zdm.ranges.failover.MAX_RETRIES`: the range fails, and the coordinator redoes it,
in pieces, from scratch.
"""

from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator

from zdm.migrate import aio
from zdm.ranges import failover
from zdm.ranges.ring import TokenRange

log = logging.getLogger("zdm.ranges")


async def range_pages(ctx, side: str, keyspace: str, statement,
                      rng: TokenRange) -> AsyncIterator[tuple[float, list]]:
    """(when it arrived, on the monotonic clock; rows) for each page of ``statement`` (a
    range select bound to ``(start, end)``) over ``rng`` on ``side`` ("origin"/"target")."""
    session = ctx.session(side)
    router = ctx.router(side)
    params = (rng.start, rng.end)
    state: bytes | None = None
    failed: list = []
    retry = 0
    rows_read = 0
    while True:
        plan = router.plan(keyspace, rng.end, failed)
        host = plan[0] if plan else None  # no node reachable: the driver's policy decides
        try:
            async for arrived, rows, next_state in aio.paged(session, statement, params,
                                                             host=host, paging_state=state):
                retry = 0  # a page came: the next failure starts a fresh count
                yield arrived, rows
                rows_read += len(rows)
                state = next_state
            return
        except Exception as exc:
            if not failover.retryable(exc) or retry >= failover.MAX_RETRIES:
                raise
            if host is not None:
                failed = [h for h in failed if h != host] + [host]
            # info, not warning: in an outage every range in flight says it, and the run's
            # report says what did not recover (a range that failed for good)
            log.info("%s range %s in %s: a page read from %s failed (%s: %s); reading on after "
                     "%d rows, from the next node of the plan, in %.2f s", side, rng.key(), keyspace,
                     getattr(host, "address", "any node"), type(exc).__name__, exc, rows_read,
                     failover.backoff(retry))
        await asyncio.sleep(failover.backoff(retry))
        retry += 1
