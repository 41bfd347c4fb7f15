"""What the deployment sells: each tier's Stripe prices and each usage name's meter, and the rules that
read them. The settings parse the deployment's JSON into these; the domain only reads them."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from sbt_billing.domain.errors import InvalidEvent


class TierPlan(BaseModel):
    """What a tier costs: Stripe prices by lookup key (or by id when the value starts with `price_`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    price: Annotated[str, Field(min_length=1)]
    seat_price: str | None = None  # per-seat price: its item's quantity follows the tenant's user count


class UsageMeter(BaseModel):
    """Where a usage name goes in Stripe: a Billing Meter's event name, and optionally the metered price
    (by lookup key or id) that every subscription carries so that the meter's usage is invoiced.
    `max_value` bounds one record's value; `integer` refuses fractions (Stripe's meter events take
    decimal values, so fractions are allowed unless the meter says otherwise)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_name: Annotated[str, Field(min_length=1, max_length=100)]
    price: str | None = None
    max_value: Annotated[Decimal | None, Field(gt=0, allow_inf_nan=False)] = None
    integer: bool = False


def tier_plan(catalogue: Mapping[str, TierPlan], tier: str) -> TierPlan:
    """The catalogue's plan for `tier`; an unknown tier is a bad event (retrying cannot fix it)."""
    plan = catalogue.get(tier)
    if plan is None:
        known = ", ".join(sorted(catalogue))
        raise InvalidEvent("tier", f"unknown tier {tier!r}; the catalogue has {known}")
    return plan


def tier_for_price(
    catalogue: Mapping[str, TierPlan], price_id: str | None, lookup_key: str | None
) -> str | None:
    """The catalogue's tier whose price (a lookup key or a price id) names this price, if any."""
    for tier, plan in catalogue.items():
        if plan.price in {price_id, lookup_key} - {None}:
            return tier
    return None
