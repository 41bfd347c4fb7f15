"""What callers read about a tenant's billing: the gate (from the account item alone) and the full view.

The gate answers "may this tenant provision or create resources now?" from one strongly-consistent
read of the account: its state is derived from what the account records, Stripe's webhook-reported
subscription first (it is the freshest), the lifecycle's last known status otherwise. A report counts
only while it is about the account's own objects: once the account records its subscription (and
customer), a report of another one, recorded before they were known, is not the tenant's state.

| account                                              | state                              |
|------------------------------------------------------|------------------------------------|
| SBT's provisioning failed (closed unbilled)          | offboarded (provisioning_failed)   |
| closed, or an offboarding recorded                   | offboarded                         |
| Stripe reported the customer deleted                 | canceled                           |
| subscription active / trialing / past_due / unpaid   | the same                           |
| subscription paused (trial ended, no payment method) | unpaid                             |
| subscription canceled / incomplete_expired           | canceled                           |
| no subscription yet, or incomplete                   | unknown                            |

Whether a state is allowed is the deployment's choice (`GATE_ALLOWED_STATES`, by default active,
trialing and past_due: past_due is the grace period while Stripe retries the payment).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from .models import (
    Account,
    AccountStatus,
    Address,
    BillingState,
    Frozen,
    InvoiceFact,
    PaymentState,
    SubscriptionFact,
)
from .ports import AccountStore, InvoiceAmount
from .settings import TierPlan

_STATES_OF_STATUS = {
    "active": BillingState.ACTIVE,
    "trialing": BillingState.TRIALING,
    "past_due": BillingState.PAST_DUE,
    "unpaid": BillingState.UNPAID,
    "paused": BillingState.UNPAID,
    "canceled": BillingState.CANCELED,
    "incomplete_expired": BillingState.CANCELED,
}
NONPAYMENT_CANCELLATIONS = frozenset({"payment_failed", "payment_disputed"})
GOOD_STANDING = frozenset({BillingState.ACTIVE, BillingState.TRIALING})


class GatePolicy(Frozen):
    allowed_states: frozenset[BillingState]


class GateDecision(Frozen):
    state: BillingState
    allowed: bool
    reasons: tuple[str, ...]


def reported_subscription(account: Account) -> SubscriptionFact | None:
    """The subscription Stripe's webhooks reported, if it is the account's own (or the account does not
    know its own yet)."""
    reported = account.reported.subscription if account.reported else None
    if reported is None or account.subscription_id not in (None, reported.value.subscription_id):
        return None
    return reported.value


def customer_deleted(account: Account) -> bool:
    """Whether Stripe reported the account's own customer deleted (or, before the account knows its
    customer, the customer the report is about)."""
    reported = account.reported
    return (
        reported is not None
        and reported.customer_deleted
        and account.customer_id in (None, reported.customer_id)
    )


def subscription_status(account: Account) -> str | None:
    """Stripe's word first (webhooks), else what the lifecycle last recorded."""
    reported = reported_subscription(account)
    return reported.status if reported else account.subscription_status


def billing_state(account: Account) -> tuple[BillingState, tuple[str, ...]]:
    """The account's state and the reasons for it, as short machine-readable codes."""
    if account.desired.provisioning_failed is not None:
        return BillingState.OFFBOARDED, ("provisioning_failed",)
    if account.status is AccountStatus.CLOSED or account.desired.closed is not None:
        return BillingState.OFFBOARDED, ("offboarded",)
    reported = account.reported
    if customer_deleted(account):
        return BillingState.CANCELED, ("customer_deleted",)
    status = subscription_status(account)
    if status is None:
        return BillingState.UNKNOWN, (f"account_{account.status.value}",)
    state = _STATES_OF_STATUS.get(status, BillingState.UNKNOWN)
    reasons = [f"subscription_{status}"]
    subscription = reported_subscription(account)
    if subscription is not None:
        if state is BillingState.CANCELED and subscription.cancellation_reason:
            reasons.append(f"cancellation_{subscription.cancellation_reason}")
        if subscription.cancel_at_period_end and state is not BillingState.CANCELED:
            reasons.append("cancels_at_period_end")
    payment = reported.payment if reported else None
    if payment is not None and payment.state is PaymentState.FAILED:
        reasons.append("payment_failed")
    elif payment is not None and payment.state is PaymentState.UNCOLLECTIBLE:
        reasons.append("invoice_uncollectible")
    return state, tuple(reasons)


def decide(account: Account, policy: GatePolicy) -> GateDecision:
    state, reasons = billing_state(account)
    return GateDecision(state=state, allowed=state in policy.allowed_states, reasons=reasons)


def lapsed_for_nonpayment(account: Account) -> bool:
    """Unpaid (or paused), or cancelled by Stripe because payments failed or were disputed."""
    state, _ = billing_state(account)
    if state is BillingState.UNPAID:
        return True
    if state is not BillingState.CANCELED:
        return False
    subscription = reported_subscription(account)
    return subscription is not None and subscription.cancellation_reason in NONPAYMENT_CANCELLATIONS


def tier_for_price(
    catalogue: Mapping[str, TierPlan], price_id: str | None, lookup_key: str | None
) -> str | None:
    """The catalogue's tier whose price (a lookup key or a price id) names this price, if any."""
    for tier, plan in catalogue.items():
        if plan.price in {price_id, lookup_key} - {None}:
            return tier
    return None


# -- the full view (/billing): the account plus what Stripe holds now --------------------------------


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
    return TenantBilling(
        tenant_id=account.tenant_id,
        gate=decide(account, policy),
        customer=customer,
        plan=plan,
        subscription=subscription,
        next_invoice=next_invoice,
        invoices=page,
        seats=seats,
        usage=usage,
    )
