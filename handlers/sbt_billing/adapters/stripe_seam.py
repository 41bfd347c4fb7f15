"""The one place Stripe's errors become the domain's, with the backoff Stripe's SDK leaves to us.

The SDK retries connection errors, 409s and 5xx itself (`max_network_retries`, same idempotency key);
the seam adds bounded backoff for 429 rate limits, which the SDK retries only when Stripe says
`Stripe-Should-Retry: true`. What is still failing after that is a TransientBillingError (the
platform retries the event); a request Stripe refuses for good is a PermanentBillingError, and one
naming an object Stripe does not have (`resource_missing`) is its subclass ResourceMissing.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import stripe

from sbt_billing.domain.errors import (
    ConfigurationError,
    PermanentBillingError,
    ResourceMissing,
    TransientBillingError,
)

RATE_LIMIT_MAX_PAUSE = 2.0  # seconds: the longest single wait after a 429
RATE_LIMIT_RESERVE_SECONDS = 8.0  # of an invocation's time, kept for the work after the wait
RATE_LIMIT_MAX_RETRIES = 20  # however much time is left

# When the current invocation must be done (time.monotonic()), set per invocation by `invocation_end`.
_invocation_end: ContextVar[float | None] = ContextVar("invocation_end", default=None)


@contextmanager
def invocation_end(seconds_left: float) -> Iterator[None]:
    """Within the block, Stripe calls may wait out rate limits while `seconds_left` (the invocation's
    remaining time, from now) leaves RATE_LIMIT_RESERVE_SECONDS for what follows."""
    token = _invocation_end.set(time.monotonic() + seconds_left)
    try:
        yield
    finally:
        _invocation_end.reset(token)


class SessionExpired(Exception):
    """The meter event session's token is no longer valid: a new session is needed."""


def call[T](request: Callable[[], T], rate_limit_retries: int, sleep: Callable[[float], None]) -> T:
    """`request()`, its rate limits waited out, its errors translated into the domain's."""
    attempt = 0
    while True:
        try:
            return request()
        except stripe.RateLimitError as error:
            # Stripe's SDK leaves rate limits to the integration: wait, doubling (jittered, so that
            # concurrent invocations spread out), while the invocation has time to spare; without
            # a known end, a fixed number of times. Then the platform retries the event.
            pause = min(RATE_LIMIT_MAX_PAUSE, 0.5 * 2**attempt) * random.uniform(0.5, 1.0)  # noqa: S311
            until = _invocation_end.get()
            if until is None:
                give_up = attempt >= rate_limit_retries
            else:
                late = time.monotonic() + pause + RATE_LIMIT_RESERVE_SECONDS > until
                give_up = late or attempt >= RATE_LIMIT_MAX_RETRIES
            if give_up:
                raise TransientBillingError(_describe(error)) from None
            sleep(pause)
            attempt += 1
            continue
        except (stripe.APIConnectionError, stripe.APIError) as error:
            raise TransientBillingError(_describe(error)) from None
        except stripe.TemporarySessionExpiredError:
            raise SessionExpired from None
        except (stripe.AuthenticationError, stripe.PermissionError) as error:
            raise ConfigurationError(_describe(error)) from None
        except stripe.IdempotencyError as error:
            if error.http_status == 409:
                raise TransientBillingError(_describe(error)) from None
            raise PermanentBillingError(_describe(error)) from None
        except stripe.StripeError as error:
            status = error.http_status or 0
            if status >= 500 or status == 409:
                raise TransientBillingError(_describe(error)) from None
            if getattr(error, "code", None) == "resource_missing":
                raise ResourceMissing(_describe(error)) from None
            raise PermanentBillingError(_describe(error)) from None


def _describe(error: stripe.StripeError) -> str:
    """Stripe's own words, without a key or an email address they may quote."""
    code = getattr(error, "code", None)
    parts = [type(error).__name__]
    if error.http_status:
        parts.append(str(error.http_status))
    if code:
        parts.append(str(code))
    message = error.user_message or (error.error.message if error.error else None) or ""
    return " ".join(parts) + (f": {_redact(message)}" if message else "")


def _redact(message: str) -> str:
    """Stripe's message without what it may quote back: keys, and email addresses (a refused email
    is named in its error)."""
    words = []
    for word in message.split():
        words.append("[email]" if "@" in word else _KEY.sub(lambda key: key.group()[:8] + "…", word))
    return " ".join(words)


_KEY = re.compile(r"\b(?:sk|rk|whsec)_\w+")
