"""The domain's vocabulary: frozen models of what we know about a tenant's billing account.

An account is two halves. What the facts say the tenant should have (`desired`: last-writer-wins
registers, one per field, each stamped with the time of the fact that set it, plus a terminal
`closed` tombstone) is merged by whoever receives an event. What Stripe has been made to hold
(`customer_id`, `subscription_id`, `applied_*`) is written only by the holder of the tenant's
lease, the one worker that drives Stripe for that tenant at a time.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from sbt_billing.domain.frozen import Frozen
from sbt_billing.domain.results import Operation, Result


class Address(Frozen):
    line1: str | None = None
    line2: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None


class CustomerDetails(Frozen):
    """What Stripe's customer object carries for a tenant."""

    name: str | None = None
    email: str | None = None
    address: Address | None = None

    def digest(self) -> str:
        return digest_of(self.model_dump(mode="json"))


class Stamp(Frozen):
    """When a fact was true. Ties on time are broken by the fact's digest, so every order converges."""

    at: datetime
    digest: str

    def newer_than(self, other: Stamp | None) -> bool:
        return other is None or (self.at, self.digest) > (other.at, other.digest)


class Facts(Frozen):
    """What one event (or one billing API request) says, before we know which tenant it is about (SBT's
    provisioning events name the registration, not the tenant). Absent fields say nothing (they do not
    clear). `proration_date` goes with `tier`: the moment a tier change is prorated from (the caller's
    preview's), instead of the moment Stripe receives it."""

    name: str | None = None
    email: str | None = None
    address: Address | None = None
    tier: str | None = None
    proration_date: datetime | None = None
    payment_method: str | None = None  # a Stripe PaymentMethod the tenant gave (Checkout, the portal)
    occurred_at: datetime
    open_requested: bool = False  # the event asks for the account to be opened (provisioned, onboarded)
    provisioning_failed: bool = False  # SBT could not provision the tenant: close it, unbilled

    def about(self, tenant_id: str) -> TenantFacts:
        return TenantFacts(tenant_id=tenant_id, **self.model_dump(exclude={"tenant_id"}))


class TenantFacts(Facts):
    """What one event says about a tenant."""

    tenant_id: str

    def stamp(self) -> Stamp:
        data = self.model_dump(mode="json")
        for optional in ("open_requested", "provisioning_failed", "proration_date", "payment_method"):
            if not data[optional]:
                del data[optional]  # the digest of a plain fact stays what it was before these fields
        return Stamp(at=self.occurred_at, digest=digest_of(data))


class StrRegister(Frozen):
    value: str
    stamp: Stamp


class AddressRegister(Frozen):
    value: Address
    stamp: Stamp


class TierRegister(StrRegister):
    proration_date: datetime | None = None  # prorate the change from then (None: when Stripe gets it)


class Desired(Frozen):
    """The state the latest facts describe, one last-writer-wins register per field."""

    name: StrRegister | None = None
    email: StrRegister | None = None
    address: AddressRegister | None = None
    tier: TierRegister | None = None
    payment_method: StrRegister | None = None  # the card the tenant gave last: invoices are charged to it
    closed: Stamp | None = None
    open_requested: Stamp | None = None  # an event asked for the account: once asked, it stays asked
    provisioning_failed: Stamp | None = None  # the close came from a failed provisioning: unbilled

    def merge(self, facts: TenantFacts) -> Desired:
        stamp = facts.stamp()
        changes: dict[str, Any] = {}
        if facts.open_requested and self.open_requested is None:
            changes["open_requested"] = stamp
        for field in ("name", "email", "payment_method"):
            value = getattr(facts, field)
            current: StrRegister | None = getattr(self, field)
            if value is not None and stamp.newer_than(current.stamp if current else None):
                changes[field] = StrRegister(value=value, stamp=stamp)
        if facts.tier is not None and stamp.newer_than(self.tier.stamp if self.tier else None):
            changes["tier"] = TierRegister(value=facts.tier, stamp=stamp, proration_date=facts.proration_date)
        if facts.address is not None and stamp.newer_than(self.address.stamp if self.address else None):
            changes["address"] = AddressRegister(value=facts.address, stamp=stamp)
        return self.model_copy(update=changes) if changes else self

    def close(self, stamp: Stamp, provisioning_failed: bool = False) -> Desired:
        """Offboarding is terminal (SBT never reuses a tenant id): the first close stands, and with it
        whether it came from a failed provisioning (then nothing is charged)."""
        if self.closed is not None:
            return self
        update: dict[str, Any] = {"closed": stamp}
        if provisioning_failed:
            update["provisioning_failed"] = stamp
        return self.model_copy(update=update)

    def details(self) -> CustomerDetails:
        return CustomerDetails(
            name=self.name.value if self.name else None,
            email=self.email.value if self.email else None,
            address=self.address.value if self.address else None,
        )

    @property
    def tier_value(self) -> str | None:
        return self.tier.value if self.tier else None

    @property
    def payment_method_value(self) -> str | None:
        return self.payment_method.value if self.payment_method else None


# A subscription in one of these Stripe statuses is over: nothing more is billed on it.
ENDED = frozenset({"canceled", "incomplete_expired"})
# A subscription schedule in one of these statuses still has phases to apply.
LIVE_SCHEDULES = frozenset({"not_started", "active"})


class AccountStatus(StrEnum):
    PENDING = "pending"  # facts arrived before the account was asked for (or its tier): nothing in Stripe yet
    OPENING = "opening"  # customer and subscription are being created
    OPEN = "open"  # customer and subscription exist; see subscription_status
    CLOSED = "closed"  # offboarded: subscription cancelled, customer marked or deleted (terminal)


class Adopted(Frozen):
    """An existing Stripe customer (and, if it has one on a tier's price, its subscription) that an
    account opens with instead of creating them: a tenant SBT had before billing was installed."""

    customer_id: str
    subscription_id: str | None = None


class OpeningSnapshot(Frozen):
    """The parameters the customer and subscription are created with, fixed when opening starts,
    so that every retry sends Stripe the same request under the same idempotency key. An adopted
    opening (`adopted`) links the existing customer and subscription instead of creating them.

    When Stripe refuses one of those creates for good (an email it will not take, an archived price),
    the snapshot is `refused`: the next fact about the tenant starts the opening again from the desired
    state it then has, as the next `generation`, whose creates go under keys of their own."""

    details: CustomerDetails
    tier: str
    price_id: str
    started_at: datetime
    seat_price_id: str | None = None
    seat_quantity: int = 0
    metered_price_ids: tuple[str, ...] = ()
    adopted: Adopted | None = None
    generation: int = 0
    refused: bool = False


class Lease(Frozen):
    """Who drives the tenant's Stripe account, until when at the latest (`expires_at`), and when the
    holder's invocation ends (`working_until`): until then a copy of a fact it is driving is in flight;
    after it, the holder is gone and its own delivery will be retried."""

    owner: str
    expires_at: datetime
    working_until: datetime | None = None


class StripeStamp(Frozen):
    """When Stripe reported a fact: its event's `created` (whole seconds) and the event's id."""

    at: datetime
    event_id: str


class SubscriptionFact(Frozen):
    """A subscription as a Stripe event (or a re-fetch) described it."""

    subscription_id: str
    customer_id: str | None = None
    status: str
    price_id: str | None = None
    tier: str | None = None  # the catalogue's tier for the price, None when the price is not in it
    current_period_start: datetime | None = None
    current_period_end: datetime | None = None
    cancel_at_period_end: bool = False
    cancellation_reason: str | None = None  # Stripe's cancellation_details.reason
    schedule_id: str | None = None  # the subscription schedule that manages it, if any
    trial_end: datetime | None = None


class InvoiceFact(Frozen):
    invoice_id: str
    number: str | None = None
    status: str | None = None
    amount_due: int = 0
    amount_paid: int = 0
    currency: str | None = None
    due_date: datetime | None = None
    hosted_invoice_url: str | None = None
    attempt_count: int = 0
    created: datetime | None = None


class PendingPlan(Frozen):
    """A tier change that Stripe keeps as a pending update until its invoice is paid (the payment
    made at once failed). It stands for the tier fact it was made for (`stamp`): that fact is not
    tried again automatically, so nothing loops or charges twice; a newer tier fact (a new request)
    tries anew. Paying the invoice makes Stripe apply the change, which the account then follows."""

    tier: str
    stamp: Stamp
    invoice: InvoiceFact | None = None  # the open invoice to pay (hosted_invoice_url)
    expires_at: datetime | None = None  # when Stripe drops the pending update if it is still unpaid


class PaymentState(StrEnum):
    PAID = "paid"
    FAILED = "failed"
    ACTION_REQUIRED = "action_required"  # the payment needs the customer (3-D Secure): hosted invoice page
    UNCOLLECTIBLE = "uncollectible"


class ScheduledChange(Frozen):
    """A tier change that takes effect later: a subscription schedule's next phase, at `at` (the current
    period's end). `stamp` is the tier fact it stands for (the lifecycle's own, None: made in Stripe);
    `since` is when that fact was true, so that Stripe's reports older than it do not end it."""

    tier: str
    at: datetime
    schedule_id: str
    price_id: str | None = None
    stamp: Stamp | None = None
    since: datetime | None = None


class ReportedSubscription(Frozen):
    value: SubscriptionFact
    stamp: StripeStamp


class ReportedInvoice(Frozen):
    value: InvoiceFact
    stamp: StripeStamp


class ReportedPayment(Frozen):
    state: PaymentState
    invoice_id: str
    stamp: StripeStamp
    hosted_invoice_url: str | None = None  # where the customer pays (or authenticates) it


class ReportedPaymentMethod(Frozen):
    """A payment method Stripe reported usable for the customer's invoices (None: removed)."""

    stamp: StripeStamp
    payment_method_id: str | None = None


class ReportedSchedule(Frozen):
    """The latest subscription schedule Stripe reported for the subscription, and the tier change its next
    phase makes (None: none is left, it has taken effect, or the schedule is the lifecycle's own)."""

    schedule_id: str
    stamp: StripeStamp
    change: ScheduledChange | None = None
    ended: bool = False  # released, canceled or completed


class StripeReport(Frozen):
    """What Stripe's webhooks reported about a tenant, each part stamped with the event that set it
    (so an older event never overwrites a newer one). Written only by the webhook, never by the
    lifecycle's lease holder: `Account.with_progress_of` leaves it as the latest writer left it."""

    customer_id: str | None = None
    customer: StripeStamp | None = None  # the last customer.* event applied
    customer_deleted: bool = False
    subscription: ReportedSubscription | None = None
    invoice: ReportedInvoice | None = None  # the latest invoice Stripe told us about
    payment: ReportedPayment | None = None  # the latest payment outcome
    payment_method: ReportedPaymentMethod | None = None  # the customer's usable payment method
    schedule: ReportedSchedule | None = None  # a schedule made in Stripe (the portal's period-end downgrade)
    suspended: bool = False  # a deactivateRequest went out for non-payment, no activateRequest since


class Account(Frozen):
    tenant_id: str
    revision: int = 0
    registration_id: str | None = None  # SBT's tenantRegistrationId, from the onboarding request
    status: AccountStatus = AccountStatus.PENDING
    desired: Desired = Field(default_factory=Desired)
    opening: OpeningSnapshot | None = None
    customer_id: str | None = None
    subscription_id: str | None = None
    subscription_item_id: str | None = None
    subscription_status: str | None = None
    price_id: str | None = None
    applied_tier: str | None = None
    applied_details_digest: str | None = None
    customer_deleted: bool = False
    closed_at: datetime | None = None
    last_fact_at: datetime | None = None
    lease: Lease | None = None
    seat_item_id: str | None = None  # the per-seat item, when the tier has a seat price
    seat_price_id: str | None = None
    metered_items: dict[str, str] = Field(default_factory=dict)  # metered price id -> item id
    pending_plan: PendingPlan | None = None  # a tier change waiting for its invoice to be paid
    plan_invoice_id: str | None = None  # the invoice the last tier change made (always_invoice)
    scheduled_change: ScheduledChange | None = None  # a downgrade waiting for the period's end
    applied_payment_method: str | None = None  # the customer's default for invoices, charged automatically
    reported: StripeReport | None = None  # Stripe's own facts, from webhooks

    def leased_to_other(self, owner: str, now: datetime) -> bool:
        return self.lease is not None and self.lease.owner != owner and self.lease.expires_at > now

    def needs_driving(self) -> bool:
        """Whether Stripe lags behind what the facts describe."""
        if self.status is AccountStatus.CLOSED:
            return False
        if self.desired.closed is not None:
            return self.status is not AccountStatus.PENDING or self.opening is not None
        if self.status is AccountStatus.PENDING:
            return False
        return (
            self.customer_id is None
            or self.subscription_id is None
            or (
                self.applied_tier != self.desired.tier_value
                and not self.plan_blocked()
                and not self.plan_scheduled()
            )
            or (self.applied_tier == self.desired.tier_value and self.scheduled_change is not None)
            or self.applied_details_digest != self.desired.details().digest()
            or self.applied_payment_method != self.desired.payment_method_value
        )

    def plan_blocked(self) -> bool:
        """Whether the desired tier is the very fact whose change waits for its invoice to be paid."""
        pending, tier = self.pending_plan, self.desired.tier
        return pending is not None and tier is not None and pending.stamp == tier.stamp

    def plan_scheduled(self) -> bool:
        """Whether the desired tier is the one a subscription schedule moves to at the period's end."""
        scheduled, tier = self.scheduled_change, self.desired.tier
        return scheduled is not None and tier is not None and scheduled.tier == tier.value

    def with_progress_of(self, driven: Account) -> Account:
        """This account (newer facts merged by others) carrying what the lease holder did in Stripe."""
        owned = {
            "status",
            "opening",
            "customer_id",
            "subscription_id",
            "subscription_item_id",
            "subscription_status",
            "price_id",
            "applied_tier",
            "applied_details_digest",
            "customer_deleted",
            "closed_at",
            "lease",
            "seat_item_id",
            "seat_price_id",
            "metered_items",
            "pending_plan",
            "plan_invoice_id",
            "scheduled_change",
            "applied_payment_method",
        }
        return self.model_copy(update={name: getattr(driven, name) for name in owned})


class Outcome(Frozen):
    tenant_id: str | None
    operation: Operation
    result: Result
    reason: str | None = None
    customer_id: str | None = None
    subscription_id: str | None = None
    subscription_status: str | None = None
    tier: str | None = None
    # What the billing API answers with, beside the result: the change's invoice (invoiced at once, or
    # waiting to be paid) and the account as this invocation left it.
    invoice: InvoiceFact | None = Field(default=None, exclude=True)
    account: Account | None = Field(default=None, exclude=True)

    def as_response(self) -> dict[str, str]:
        response = {
            key: str(value) for key, value in self.model_dump(mode="json").items() if value is not None
        }
        if self.invoice is not None:
            response["invoice_id"] = self.invoice.invoice_id
        return response


def digest_of(data: Any) -> str:
    encoded = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(encoded).hexdigest()[:32]
