"""The billing gate: may this tenant provision or create resources now? From the account item alone.

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
trialing and past_due: past_due is the grace period while Stripe retries the payment). With
`REQUIRE_PAYMENT_METHOD`, a tenant is not allowed, whatever its state, until it has given a payment
method (reason `payment_method_required`): Stripe reported one usable for its invoices (Checkout, the
portal), or the lifecycle made one its default.

The decision also names a tier change waiting for the period's end (`scheduled_change`): the
lifecycle's own downgrade, or a schedule made in Stripe (the portal's).
"""

from __future__ import annotations

from dataclasses import dataclass

from sbt_billing.domain.billing_policy import BillingState
from sbt_billing.domain.frozen import Frozen
from sbt_billing.domain.models import (
    Account,
    AccountStatus,
    PaymentState,
    ReportedPayment,
    ScheduledChange,
    SubscriptionFact,
)
from sbt_billing.domain.ports import AccountStore

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
    require_payment_method: bool = False  # no provisioning until the tenant has given a payment method


class GateDecision(Frozen):
    state: BillingState
    allowed: bool
    reasons: tuple[str, ...]
    scheduled_change: ScheduledChange | None = None


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
    elif payment is not None and payment.state is PaymentState.ACTION_REQUIRED:
        reasons.append("payment_action_required")
    elif payment is not None and payment.state is PaymentState.UNCOLLECTIBLE:
        reasons.append("invoice_uncollectible")
    return state, tuple(reasons)


def payment_method(account: Account) -> str | None:
    """The tenant's payment method: Stripe's report (the freshest) first, else the one the lifecycle
    made the customer's default."""
    report = account.reported
    if (
        report is not None
        and report.payment_method is not None
        and account.customer_id
        in (
            None,
            report.customer_id,
        )
    ):
        return report.payment_method.payment_method_id
    return account.applied_payment_method or account.desired.payment_method_value


def payment_action(account: Account) -> ReportedPayment | None:
    """The payment waiting for the customer's action (authentication), if the latest one is."""
    payment = account.reported.payment if account.reported else None
    return payment if payment is not None and payment.state is PaymentState.ACTION_REQUIRED else None


def scheduled_change(account: Account) -> ScheduledChange | None:
    """The tier change waiting for the period's end: the lifecycle's own, else one made in Stripe."""
    if account.scheduled_change is not None:
        return account.scheduled_change
    reported = account.reported.schedule if account.reported else None
    own = reported_subscription(account)
    if reported is None or reported.change is None:
        return None
    if own is not None and own.schedule_id not in (None, reported.schedule_id):
        return None  # the subscription has moved on to another schedule
    current_tier = (own.tier if own else None) or account.applied_tier
    return reported.change if reported.change.tier != current_tier else None


def decide(account: Account, policy: GatePolicy) -> GateDecision:
    state, reasons = billing_state(account)
    allowed = state in policy.allowed_states
    if (
        policy.require_payment_method
        and state is not BillingState.OFFBOARDED
        and payment_method(account) is None
    ):
        reasons, allowed = (*reasons, "payment_method_required"), False
    return GateDecision(
        state=state, allowed=allowed, reasons=reasons, scheduled_change=scheduled_change(account)
    )


def lapsed_for_nonpayment(account: Account) -> bool:
    """Unpaid (or paused), or cancelled by Stripe because payments failed or were disputed."""
    state, _ = billing_state(account)
    if state is BillingState.UNPAID:
        return True
    if state is not BillingState.CANCELED:
        return False
    subscription = reported_subscription(account)
    return subscription is not None and subscription.cancellation_reason in NONPAYMENT_CANCELLATIONS


@dataclass(frozen=True)
class Gate:
    """The gate as the billing API serves it: one strongly-consistent read of the account."""

    store: AccountStore
    policy: GatePolicy

    def check(self, tenant_id: str) -> GateDecision | None:
        """The tenant's gate, or None when it has no billing account."""
        account = self.store.get(tenant_id)
        return decide(account, self.policy) if account is not None else None
