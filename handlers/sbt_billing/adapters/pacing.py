"""A pace for Stripe requests: at most `rate` a second (a token bucket), for a process that makes many
requests in a row (a reconcile run, the adoption tool) and must leave room in Stripe's rate limit for
the rest of the deployment."""

from __future__ import annotations

import time
from collections.abc import Callable
from threading import Lock


class Pacer:
    def __init__(
        self,
        rate: float,
        burst: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self._capacity = max(1.0, burst)
        self._tokens = self._capacity
        self._clock = clock
        self._sleep = sleep
        self._updated = clock()
        self._lock = Lock()
        self.requests = 0

    def acquire(self) -> None:
        """Waits until one more request fits the pace, then counts it."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self._capacity, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            wait = 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate
            self._tokens -= 1  # taken now, paid for by the wait (others queue behind it)
            self.requests += 1
        if wait > 0:
            self._sleep(wait)
