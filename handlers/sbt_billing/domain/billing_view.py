"""The tenant's billing as the billing API's full read shows it: the account, then what Stripe holds now
(customer, subscription, next invoice, a page of invoices, seats and this period's usage)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from sbt_billing.domain.catalogue import TierPlan, tier_for_price
from sbt_billing.domain.frozen import Frozen
from sbt_billing.domain.gate import (
    GateDecision,
    GatePolicy,
    customer_deleted,
    decide,
    payment_action,
    payment_method,
    reported_subscription,
)
from sbt_billing.domain.models import Account, Address, InvoiceFact, ScheduledChange
from sbt_billing.domain.ports import AccountStore
from sbt_billing.domain.values import InvoiceAmount


class CustomerView(Frozen):
    customer_id: str | None  # None: not in Stripe yet
    name: str | None = None
    email: str | None = None
    address: Address | None = None


class PriceView(Frozen):
    price_id: str
    lookup_key: str | None = None
    amount: int | None = None  # in the currency's smallest unit
    currency: str | None = None
    interval: str | None = None
    interval_count: int | None = None


class SubscriptionView(Frozen):
    subscription_id: str
    status: str
    price: PriceView | None = None
    quantity: int | None = None
    current_period_start: datetime | None = None
    current_period_end: datetime | None = None
    cancel_at_period_end: bool = False


# The next invoice, as Stripe's preview gives it.
UpcomingInvoice = InvoiceAmount


# An invoice as the API lists it is the invoice as a webhook reports it.
InvoiceSummary = InvoiceFact


class InvoicePage(Frozen):
    invoices: tuple[InvoiceSummary, ...] = ()
    has_more: bool = False

    @property
    def next_cursor(self) -> str | None:
        return self.invoices[-1].invoice_id if self.has_more and self.invoices else None


class SeatsView(Frozen):
    users: int  # the tenant's users as this service counts them
    quantity: int | None  # the per-seat item's quantity in Stripe (None: the plan has no seat price)


class MeterUsage(Frozen):
    usage_name: str
    event_name: str
    total: float  # the meter's aggregate for the customer since the period started
    since: datetime


class BillingReader(Protocol):
    """Stripe's current objects, read-only."""

    def item_quantity(self, item_id: str) -> int | None: ...

    def meter_totals(
        self, customer_id: str, event_names: Sequence[str], start: datetime, end: datetime
    ) -> dict[str, float]: ...

    def customer(self, customer_id: str) -> CustomerView | None: ...

    def subscription(self, subscription_id: str) -> SubscriptionView | None: ...

    def upcoming_invoice(self, customer_id: str, subscription_id: str) -> UpcomingInvoice | None: ...

    def invoices(self, customer_id: str, limit: int, starting_after: str | None) -> InvoicePage: ...


class Plan(Frozen):
    tier: str | None
    price: PriceView | None = None
    quantity: int | None = None


@dataclass(frozen=True)
class BillingServices:
    """What the routes need; the reader is made on first use, so the gate never touches Stripe."""

    store: AccountStore
    reader: Callable[[], BillingReader]
    catalogue: Mapping[str, TierPlan]
    gate: GatePolicy
    seat_count: Callable[[str], int] | None = None  # None: seats are not deployed
    meters: Mapping[str, str] = field(default_factory=dict)  # usage name -> meter event name


class PaymentAction(Frozen):
    """A payment that needs the customer (authentication): where the customer completes it."""

    invoice_id: str
    hosted_invoice_url: str | None = None


class TenantBilling(Frozen):
    tenant_id: str
    gate: GateDecision
    customer: CustomerView | None
    plan: Plan | None
    subscription: SubscriptionView | None
    next_invoice: UpcomingInvoice | None
    invoices: InvoicePage
    seats: SeatsView | None = None
    usage: tuple[MeterUsage, ...] = ()
    has_payment_method: bool = False
    payment_action_required: PaymentAction | None = None
    scheduled_change: ScheduledChange | None = None


def read_billing(
    account: Account,
    reader: BillingReader,
    catalogue: Mapping[str, TierPlan],
    policy: GatePolicy,
    limit: int,
    starting_after: str | None,
    seat_count: Callable[[str], int] | None = None,
    meters: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> TenantBilling:
    """The account's gate with Stripe's customer, subscription, next invoice and a page of invoices.
    An account Stripe does not hold yet answers with what the facts say (customer details, tier)."""
    reported = account.reported
    customer_id = account.customer_id or (reported.customer_id if reported else None)
    own = reported_subscription(account)
    subscription_id = account.subscription_id or (own.subscription_id if own else None)
    deleted = account.customer_deleted or customer_deleted(account)
    customer = reader.customer(customer_id) if customer_id and not deleted else None
    if customer is None and customer_id is None:
        # Nothing in Stripe yet: the details the facts name, without an id.
        details = account.desired.details()
        customer = CustomerView(
            customer_id=None, name=details.name, email=details.email, address=details.address
        )
    subscription = reader.subscription(subscription_id) if subscription_id else None
    next_invoice = None
    if (
        customer_id
        and subscription is not None
        and subscription.status not in ("canceled", "incomplete_expired")
    ):
        next_invoice = reader.upcoming_invoice(customer_id, subscription.subscription_id)
    page = reader.invoices(customer_id, limit, starting_after) if customer_id else InvoicePage()
    if subscription is not None and subscription.price is not None:
        price = subscription.price
        tier = tier_for_price(catalogue, price.price_id, price.lookup_key)
        plan: Plan | None = Plan(tier=tier, price=price, quantity=subscription.quantity)
    else:
        tier = account.applied_tier or account.desired.tier_value
        plan = Plan(tier=tier) if tier else None
    seats = None
    if seat_count is not None:
        quantity = reader.item_quantity(account.seat_item_id) if account.seat_item_id else None
        seats = SeatsView(users=seat_count(account.tenant_id), quantity=quantity)
    usage: tuple[MeterUsage, ...] = ()
    if meters and customer_id and subscription is not None and subscription.current_period_start:
        since = subscription.current_period_start
        totals = reader.meter_totals(customer_id, list(meters.values()), since, now or datetime.now(UTC))
        usage = tuple(
            MeterUsage(usage_name=name, event_name=event, total=totals.get(event, 0.0), since=since)
            for name, event in sorted(meters.items())
        )
    gate = decide(account, policy)
    action = payment_action(account)
    return TenantBilling(
        tenant_id=account.tenant_id,
        gate=gate,
        customer=customer,
        plan=plan,
        subscription=subscription,
        next_invoice=next_invoice,
        invoices=page,
        seats=seats,
        usage=usage,
        has_payment_method=payment_method(account) is not None,
        payment_action_required=PaymentAction(
            invoice_id=action.invoice_id, hosted_invoice_url=action.hosted_invoice_url
        )
        if action is not None
        else None,
        scheduled_change=gate.scheduled_change,
    )
