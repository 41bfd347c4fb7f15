"""When a tier change takes effect. An upgrade applies at once; with DOWNGRADE_AT=period_end a change to a
cheaper tier (by the amount its price bills per interval, brought to a month) waits for the end of the
period the tenant has paid for, as a subscription schedule's next phase."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sbt_billing.domain.frozen import Frozen

# How many months one interval of each unit is (Stripe's recurring intervals).
_MONTHS = {"day": Decimal(12) / 365, "week": Decimal(12) / 52, "month": Decimal(1), "year": Decimal(12)}


class PriceTerms(Frozen):
    """What a recurring price bills: its amount per interval, and the product it sells."""

    price_id: str
    amount: int | None  # unit amount in the currency's smallest unit (None: not a flat amount)
    currency: str
    interval: str | None = None
    interval_count: int = 1
    product: str | None = None

    def per_month(self) -> Decimal | None:
        months = _MONTHS.get(self.interval or "")
        if self.amount is None or months is None or self.interval_count < 1:
            return None
        return Decimal(self.amount) / (months * self.interval_count)


def is_downgrade(target: PriceTerms, current: PriceTerms) -> bool:
    """Whether moving from `current` to `target` lowers what the tenant pays per month."""
    after, before = target.per_month(), current.per_month()
    return after is not None and before is not None and after < before


class ScheduledPlanChange(Frozen):
    """The subscription's items moved to a tier's prices when its current period ends."""

    tenant_id: str
    tier: str
    subscription_id: str
    from_base: str  # the base price billed now
    to_base: str
    from_seat: str | None = None  # the seat price billed now, if any
    to_seat: str | None = None  # the tier's seat price, if it has one
    seat_quantity: int = 0  # for a seat item the change adds


class ScheduledPlan(Frozen):
    """Stripe's schedule for the change: its id and when the change takes effect."""

    schedule_id: str
    at: datetime
