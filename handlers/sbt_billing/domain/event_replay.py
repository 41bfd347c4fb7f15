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
Events are applied oldest first, as Stripe made them (Stripe lists them newest first: a window longer
than a page is read back to its oldest page before it is applied forward from there).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from sbt_billing.domain.errors import ResourceMissing
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
    """One request's worth of the window: a page read back toward the oldest, or a page applied (oldest
    first). A window that fits one page is applied at once; a longer one costs the pages read back to
    its start as well, so that every event is applied in the order Stripe made them."""
    try:
        if window.ascending:
            page = listings.events(window, before=window.cursor)
        else:
            page = listings.events(window, after=window.cursor)
    except ResourceMissing:
        # The cursor's event passed Stripe's 30 days meanwhile: read the window again (what was applied
        # is applied once all the same).
        return window.model_copy(update={"cursor": None, "ascending": False})
    tally.add("stripe_requests")
    items = page.items
    newest = window.newest
    if items:
        newest = _newer(newest, items[0])  # each page's first is its newest
    if not window.ascending and page.has_more:
        # Not the oldest page yet: read on (nothing applied).
        return window.model_copy(update={"cursor": str(items[-1].get("id")), "newest": newest})
    tally.add("events_listed", len(items))
    for raw in reversed(items):
        try:
            event = StripeEvent.model_validate(raw)
        except ValidationError:
            tally.add(f"events_{Replayed.REJECTED.value}")
            continue
        tally.add(f"events_{apply(event).value}")
    first_page = not window.ascending and window.cursor is None
    if not items or first_page or (window.ascending and not page.has_more):
        return window.model_copy(update={"newest": newest, "done": True, "cursor": None})
    # The oldest page applied (or a page forward of it): on toward the newest.
    return window.model_copy(update={"cursor": str(items[0].get("id")), "ascending": True, "newest": newest})


def _newer(known: StripeStamp | None, raw: Mapping[str, Any]) -> StripeStamp | None:
    created, event_id = raw.get("created"), raw.get("id")
    if not isinstance(created, int) or not isinstance(event_id, str):
        return known
    stamp = StripeStamp(at=datetime.fromtimestamp(created, UTC), event_id=event_id)
    return stamp if known is None or stamp.at > known.at else known
