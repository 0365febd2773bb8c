"""A token-bucket rate limiter (rows per second), pure at its core.

:meth:`RateLimiter.reserve` books ``n`` rows and returns how long the caller must wait
before using them; it never sleeps itself, so it is tested with a fake clock.
:meth:`RateLimiter.acquire` is the asyncio edge that does the sleeping.  The burst is
one second's worth of rows, so short bursts do not exceed the rate by more than that.
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable


class RateLimiter:
    def __init__(self, rate: float | None, *, clock: Callable[[], float] = time.monotonic) -> None:
        """``rate`` rows/s; None or 0 means unlimited."""
        self.rate = rate or None
        self._clock = clock
        self._next_free = clock()  # when the bucket is next empty of debt

    def reserve(self, n: int) -> float:
        """Book ``n`` rows; return the seconds to wait before they may proceed."""
        if self.rate is None or n <= 0:
            return 0.0
        now = self._clock()
        burst = 1.0  # seconds of credit that may accumulate
        start = max(self._next_free, now - burst)
        self._next_free = start + n / self.rate
        return max(0.0, self._next_free - now - burst)

    async def acquire(self, n: int) -> None:
        delay = self.reserve(n)
        if delay > 0:
            await asyncio.sleep(delay)
