"""Whether a failed request of range work is worth sending again, and after how long.

Theory of operation: a node that dies mid-run shows up in many ways, depending on what it
was doing: its connections reset (``ConnectionException``, then ``NoHostAvailable`` for a
request sent only to it), a request it coordinated never answers (the driver's
``OperationTimedOut``), or a coordinator that still counts on it as a replica answers
``ReadTimeout``/``WriteTimeout``, ``Unavailable``, or a read/write failure until gossip
marks it down.  All of them say "another attempt, perhaps elsewhere, may succeed";
an invalid request, a refused login or a type error never will.  Range work retries the
first kind (:func:`retryable`) up to :data:`MAX_RETRIES` times, waiting :func:`backoff`
before each, long enough to outlast the failure detector (about ten seconds) and a
coordinator's timeouts, and short of a node restart; past that the range fails and the
coordinator (:mod:`zdm.ranges.coordinator`) tries it again in pieces.

Only an idempotent request is ever sent twice: reads, and writes that carry their own
timestamp and no TTL (the copy's, :mod:`zdm.migrate.writer`).  A counter update or a list
append that timed out may have been applied, and a TTL sent late would outlive origin's; the
range that sent it is redone from scratch instead, reading origin (and target) again.
"""

from __future__ import annotations

#: retries of one request (a page, a write) before its range fails
MAX_RETRIES = 10

#: the waits before successive retries, seconds (the last one repeats): about 50 s in all
BACKOFF_S = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


def backoff(retry: int) -> float:
    """Seconds to wait before retry number ``retry`` (0 for the first)."""
    return BACKOFF_S[min(retry, len(BACKOFF_S) - 1)]


def _retryable_types() -> tuple[type, ...]:
    from cassandra import CoordinationFailure, OperationTimedOut, Timeout, Unavailable
    from cassandra.cluster import NoHostAvailable
    from cassandra.connection import ConnectionException
    from cassandra.protocol import IsBootstrappingErrorMessage, OverloadedErrorMessage, ServerError

    return (NoHostAvailable, OperationTimedOut, Unavailable, Timeout, CoordinationFailure,
            ConnectionException, ConnectionResetError, OverloadedErrorMessage,
            IsBootstrappingErrorMessage, ServerError)


_RETRYABLE: tuple[type, ...] | None = None


def retryable(exc: BaseException) -> bool:
    """Whether ``exc`` may pass if the request is sent again (to another node)."""
    global _RETRYABLE
    if _RETRYABLE is None:
        _RETRYABLE = _retryable_types()
    return isinstance(exc, _RETRYABLE)
