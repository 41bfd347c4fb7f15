"""Fault injection and rate limiting for /v1 requests (configured via /_emulator/...).

A fault matches a route key (``"POST /v1/customers"``, a concrete ``"POST /v1/customers/cus_1"``,
or ``"*"``) and acts at a *stage*:

* ``before_endpoint`` (default): an infrastructure failure. The endpoint never runs and
  nothing is saved under the idempotency key, so a retry can succeed.
* ``endpoint``: the endpoint itself fails with ``status`` (saved under the idempotency key,
  like Stripe saves endpoint 500s). With no status it only delays while the key is in
  flight, which makes concurrent same-key requests see 409.
* ``after_endpoint``: the endpoint runs and its result is saved, then the client gets the
  fault instead (``drop_connection`` here is the classic lost response).

``delay_ms`` sleeps at that stage; a fault with neither status nor drop is just latency.

A 429 is Stripe's rate-limit error (``code: rate_limit``) with no ``Stripe-Should-Retry``
header, so the SDK does not retry it (Stripe's SDKs do not retry real rate limits). A queued
fault's ``should_retry`` (true or false) adds that header, which is how a test models a
retryable 429. The random kind ``lock_timeout`` is Stripe's lock timeout: 429, ``code:
lock_timeout``, ``Stripe-Should-Retry: true`` (the one 429 the SDKs retry).

The global latency (``POST /_emulator/latency``) is kept here too: every API request the rate
limiter accepts waits that long before it goes on, without holding any lock.
"""

from __future__ import annotations

import math
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .errors import invalid

STAGES = ("before_endpoint", "endpoint", "after_endpoint")
RANDOM_KINDS = ("429", "lock_timeout", "500", "503", "timeout", "drop", "drop_after")


@dataclass
class Fault:
    route: str = "*"
    status: int | None = None
    count: int = 1
    should_retry: bool | None = None
    delay_ms: int = 0
    drop_connection: bool = False
    stage: str = "before_endpoint"
    kind: str = "queued"
    code: str | None = None  # "lock_timeout": a 429 that is a lock timeout, not a rate limit

    def matches(self, route_key: str, concrete: str) -> bool:
        return self.route in ("*", route_key, concrete)

    def to_json(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "status": self.status,
            "count": self.count,
            "should_retry": self.should_retry,
            "delay_ms": self.delay_ms,
            "drop_connection": self.drop_connection,
            "stage": self.stage,
        }


@dataclass
class RandomFaults:
    rate: float
    kinds: list[str]
    rng: random.Random
    timeout_ms: int = 3000
    routes: list[str] = field(default_factory=lambda: ["*"])


class TokenBucket:
    """``per_second`` tokens a second, burst of ``per_second``; real (monotonic) time."""

    def __init__(self, per_second: float) -> None:
        self.rate = per_second
        self.capacity = max(1.0, per_second)
        self.tokens = self.capacity
        self.updated = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


def parse_fault(spec: dict[str, Any]) -> Fault:
    status = spec.get("status")
    if status is not None and (not isinstance(status, int) or not 400 <= status <= 599):
        raise invalid("status must be an HTTP error status (400-599)", param="status")
    stage = spec.get("stage", "before_endpoint")
    if stage not in STAGES:
        raise invalid(f"stage must be one of {', '.join(STAGES)}", param="stage")
    count = spec.get("count", 1)
    if not isinstance(count, int) or count < 1:
        raise invalid("count must be a positive integer", param="count")
    should_retry = spec.get("should_retry")
    if should_retry is not None and not isinstance(should_retry, bool):
        raise invalid("should_retry must be true, false or null", param="should_retry")
    return Fault(
        route=str(spec.get("route", "*")),
        status=status,
        count=count,
        should_retry=should_retry,
        delay_ms=int(spec.get("delay_ms", 0)),
        drop_connection=bool(spec.get("drop_connection", False)),
        stage=stage,
    )


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.queue: list[Fault] = []
        self.random: RandomFaults | None = None
        self.bucket: TokenBucket | None = None
        self.latency_ms: float = 0

    def reset(self) -> None:
        with self._lock:
            self.queue.clear()
            self.random = None
            self.bucket = None
            self.latency_ms = 0

    def clear(self) -> None:
        with self._lock:
            self.queue.clear()
            self.random = None

    def add(self, fault: Fault) -> None:
        with self._lock:
            self.queue.append(fault)

    def set_random(self, spec: dict[str, Any]) -> None:
        kinds = [str(k) for k in spec.get("kinds", ["429", "500", "timeout", "drop"])]
        bad = [k for k in kinds if k not in RANDOM_KINDS]
        if bad:
            raise invalid(f"unknown fault kinds {bad}; use {list(RANDOM_KINDS)}", param="random.kinds")
        rate = float(spec.get("rate", 0.1))
        if not 0 <= rate <= 1:
            raise invalid("rate must be between 0 and 1", param="random.rate")
        with self._lock:
            self.random = RandomFaults(
                rate=rate,
                kinds=kinds,
                rng=random.Random(spec.get("seed")),
                timeout_ms=int(spec.get("timeout_ms", 3000)),
                routes=[str(r) for r in spec.get("routes", ["*"])],
            )

    def set_rate_limit(self, per_second: float | None) -> None:
        with self._lock:
            self.bucket = TokenBucket(per_second) if per_second else None

    def rate_limited(self) -> bool:
        with self._lock:
            return self.bucket is not None and not self.bucket.take()

    def set_latency(self, ms: float | None) -> None:
        if ms is not None and (
            isinstance(ms, bool) or not isinstance(ms, (int, float)) or not math.isfinite(ms) or ms < 0
        ):
            raise invalid("ms must be a non-negative number of milliseconds or null", param="ms")
        with self._lock:
            self.latency_ms = ms or 0

    def wait_latency(self) -> None:
        """Sleep the global latency, if any (outside the lock, so concurrent requests overlap)."""
        with self._lock:
            ms = self.latency_ms
        if ms:
            time.sleep(ms / 1000)

    def take(self, route_key: str, concrete: str) -> Fault | None:
        with self._lock:
            for fault in self.queue:
                if fault.matches(route_key, concrete):
                    fault.count -= 1
                    if fault.count <= 0:
                        self.queue.remove(fault)
                    return fault
            rnd = self.random
            if rnd is None or not any(r in ("*", route_key, concrete) for r in rnd.routes):
                return None
            if rnd.rng.random() >= rnd.rate:
                return None
            kind = rnd.rng.choice(rnd.kinds)
        if kind == "429":
            return Fault(status=429, kind="random")
        if kind == "lock_timeout":
            return Fault(status=429, should_retry=True, kind="random", code="lock_timeout")
        if kind in ("500", "503"):
            return Fault(status=int(kind), kind="random")
        if kind == "timeout":
            return Fault(delay_ms=rnd.timeout_ms, kind="random")
        if kind == "drop":
            return Fault(drop_connection=True, kind="random")
        return Fault(drop_connection=True, stage="after_endpoint", kind="random")

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "queued": [f.to_json() for f in self.queue],
                "random": None
                if self.random is None
                else {"rate": self.random.rate, "kinds": self.random.kinds, "routes": self.random.routes},
                "rate_limit": None if self.bucket is None else {"per_second": self.bucket.rate},
                "latency": {"ms": self.latency_ms} if self.latency_ms else None,
            }
