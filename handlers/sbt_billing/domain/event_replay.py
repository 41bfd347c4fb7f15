"""Stripe's events the webhook missed, replayed through the webhook's own processor, so that a
disabled endpoint or a lost delivery heals by itself.

Each reconcile pass replays two windows of events of the types the webhook handles:

- AFTER_MARK: every event created since the last one applied (the mark, which the webhook moves on
  each event it applies and a completed replay moves too), less OVERLAP, since Stripe delivers events
  in no particular order. This heals an endpoint that was disabled or failing: everything after the
  moment it stopped. With a healthy webhook the window holds the last few minutes: one request.
- UNDELIVERED: the events Stripe has not delivered to every endpoint (`delivery_success=false`)
  since the previous pass: a single delivery lost behind later ones that did arrive.

Stripe keeps events for 30 days, so neither window reaches further back. Events are applied through
the webhook's idempotent path (the same idempotency records and the same processor): one the webhook
applied changes nothing, and the webhook's later delivery of one the replay applied changes nothing.
The processor orders facts by their own times, so replaying a page newest first would converge too;
each page is applied oldest first all the same.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import ValidationError

from sbt_billing.domain.models import StripeStamp
from sbt_billing.domain.ports import StripeListings
from sbt_billing.domain.reconcile_state import EventWindow, PassState, Tally, WindowKind
from sbt_billing.domain.stripe_events import StripeEvent

RETENTION = timedelta(days=30)  # how long Stripe keeps events
RETENTION_MARGIN = timedelta(hours=1)  # not asked for right at the edge of what Stripe still has
OVERLAP = timedelta(
    minutes=10
)  # deliveries are unordered: an event a little older than the mark may be missing


class Replayed(StrEnum):
    APPLIED = "applied"  # applied now
    UNCHANGED = "unchanged"  # applied before (by the webhook or an earlier replay), or nothing to change
    IN_FLIGHT = "in_flight"  # the webhook is applying it at this moment
    REJECTED = "rejected"  # cannot be applied as it is (counted; replaying it again changes nothing)


ApplyEvent = Callable[[StripeEvent], Replayed]


def replay_windows(
    now: datetime, mark: StripeStamp | None, previous: PassState | None
) -> tuple[EventWindow, ...]:
    """The windows a pass starting `now` replays."""
    oldest = now - RETENTION + RETENTION_MARGIN
    after_mark = max(oldest, mark.at - OVERLAP) if mark is not None else oldest
    undelivered = oldest
    if previous is not None:
        window = previous.window(WindowKind.UNDELIVERED)
        if window is not None:
            # From where the previous pass's replay reached; from where it started if it never finished.
            undelivered = max(oldest, (window.until if window.done else window.since) - OVERLAP)
    return (
        EventWindow(kind=WindowKind.AFTER_MARK, since=after_mark, until=now),
        EventWindow(kind=WindowKind.UNDELIVERED, since=undelivered, until=now),
    )


def replay_page(
    window: EventWindow, listings: StripeListings, apply: ApplyEvent, tally: Tally
) -> EventWindow:
    """One page of the window's events applied (oldest first); the window as it then stands."""
    page = listings.events(window, window.cursor)
    tally.add("stripe_requests")
    tally.add("events_listed", len(page.items))
    newest = window.newest
    for raw in reversed(page.items):
        try:
            event = StripeEvent.model_validate(raw)
        except ValidationError:
            tally.add(f"events_{Replayed.REJECTED.value}")
            continue
        tally.add(f"events_{apply(event).value}")
        stamp = event.stamp()
        if newest is None or stamp.at > newest.at:
            newest = stamp
    cursor = str(page.items[-1].get("id")) if page.items else window.cursor
    return window.model_copy(update={"cursor": cursor, "newest": newest, "done": not page.has_more})
