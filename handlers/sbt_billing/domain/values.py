"""The values the domain exchanges through its ports (the Stripe gateway's answers, usage records, pages
of a listing): in a module of their own, so that a function whose ports never carry them (the gate) does
not build them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import Field

from sbt_billing.domain.frozen import Frozen
from sbt_billing.domain.models import AccountStatus, InvoiceFact


class PlanPrices(Frozen):
    """The Stripe prices (ids) a subscription carries for a tier."""

    base: str
    seats: str | None = None
    metered: tuple[str, ...] = ()


class SubscriptionState(Frozen):
    subscription_id: str
    item_id: str  # the base price's item
    status: str
    price_id: str
    seat_item_id: str | None = None
    metered_items: dict[str, str] = Field(default_factory=dict)  # metered price id -> item id
    # After a plan change: the subscription's latest invoice when the change made one (billing reason
    # subscription_update), and whether Stripe kept the change pending until that invoice is paid.
    latest_invoice: InvoiceFact | None = None
    pending_update: bool = False
    pending_update_expires_at: datetime | None = None


class PlanChange(Frozen):
    """One update of a subscription's items toward a tier's prices."""

    subscription_id: str
    base_item_id: str
    base_price: str
    seat_item_id: str | None = None  # the current seat item, if any
    seat_price: str | None = None  # the target seat price, if the tier has one
    seat_quantity: int = 0  # for a seat item that the change adds
    proration_date: datetime | None = None  # prorate as of then (None: when Stripe gets the change)


class InvoiceAmount(Frozen):
    amount_due: int  # in the currency's smallest unit
    currency: str
    period_end: datetime | None = None


class PlanPreview(Frozen):
    """What a plan change would cost, from Stripe's invoice preview."""

    proration_date: datetime
    proration_behavior: str
    due_now: InvoiceAmount | None  # invoiced at once (proration behavior always_invoice), else None
    next_invoice: InvoiceAmount | None  # the next regular invoice after the change
    from_tier: str | None = None  # the tier the account is billed for now


@dataclass(frozen=True)
class Page[T]:
    """One page of a list read in pages: its items, and whether more follow."""

    items: tuple[T, ...]
    has_more: bool


class AccountRef(Frozen):
    """What a reconcile run reads of every account to tell which it must read whole."""

    tenant_id: str
    status: AccountStatus
    subscription_id: str | None = None
