"""What the tenant does in Stripe's hosted pages (Checkout, the customer portal) and Stripe's own clock
(a schedule's phase, a trial about to end), as the webhook applies it to the account.

- A payment method the tenant gave (a completed Checkout in setup mode, or the portal making a card the
  customer's default) is recorded as Stripe's report (the gate's `payment_method_required` lifts at
  once) and handed to the lifecycle, which alone writes to Stripe: it makes the card the customer's
  default for invoices and moves the subscription to charging automatically.
- A change made in Stripe (a plan, a cancellation, a card: the portal or the Dashboard) is published on
  the SBT bus as `sbt_aws_billingSuccess` with the operation named, the new tier and status, so that
  the control plane and the application can act on it. The lifecycle's own writes (their echoes) are
  not: the lifecycle publishes them itself.
- A scheduled tier change: the lifecycle's (its schedule's id in the account) ends when Stripe moves
  the subscription to its tier (`scheduled_plan_change_applied`) or the schedule ends without it; one
  made in Stripe (the portal's period-end downgrade) is reported from its schedule's next phase.
- `customer.subscription.trial_will_end` becomes `sbt_aws_tenantTrialWillEnd`, so the application can
  prompt the tenant for a card.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from sbt_billing.domain.catalogue import TierPlan, tier_for_price
from sbt_billing.domain.models import (
    ENDED,
    LIVE_SCHEDULES,
    Account,
    AccountStatus,
    ReportedPaymentMethod,
    ReportedSchedule,
    ScheduledChange,
    StripeReport,
    SubscriptionFact,
)
from sbt_billing.domain.published import BILLING_SUCCESS, TRIAL_WILL_END
from sbt_billing.domain.stripe_events import StripeEvent
from sbt_billing.domain.stripe_json import object_id

CHECKOUT_EVENTS = frozenset({"checkout.session.completed"})
SCHEDULE_EVENTS = frozenset(
    {
        "subscription_schedule.created",
        "subscription_schedule.updated",
        "subscription_schedule.released",
        "subscription_schedule.canceled",
        "subscription_schedule.completed",
        "subscription_schedule.aborted",
    }
)
TRIAL_EVENTS = frozenset({"customer.subscription.trial_will_end"})
SELF_SERVICE_EVENTS = CHECKOUT_EVENTS | SCHEDULE_EVENTS | TRIAL_EVENTS

# Not an event on the bus: the payment method handed to the lifecycle (the tenant update function).
GIVE_PAYMENT_METHOD = "lifecycle:payment_method"

Publication = tuple[str, dict[str, object]]


class PaymentMethodLookup(Protocol):
    def setup_intent_payment_method(self, setup_intent_id: str) -> str | None: ...


class PriceLookup(Protocol):
    def price_lookup_key(self, price_id: str) -> str | None: ...


# -- payment methods --------------------------------------------------------------------------------


def checkout_completed(
    event: StripeEvent, account: Account, lookup: PaymentMethodLookup
) -> tuple[Account, list[Publication]] | None:
    """A Checkout Session in setup mode the tenant completed: the card its SetupIntent saved."""
    obj = event.object
    if obj.get("mode") != "setup" or obj.get("status") != "complete":
        return None
    setup_intent = object_id(obj.get("setup_intent"))
    payment_method = lookup.setup_intent_payment_method(setup_intent) if setup_intent else None
    if payment_method is None:
        return None
    return payment_method_reported(event, account, payment_method, source="checkout")


def customer_payment_method(event: StripeEvent, account: Account) -> tuple[Account, list[Publication]]:
    """The customer's default payment method for invoices, as a customer event reports it (the portal
    sets it when the tenant updates the card, as may the Dashboard; the lifecycle sets it after
    Checkout)."""
    settings = event.object.get("invoice_settings")
    if event.type != "customer.updated" or not isinstance(settings, Mapping):
        return account, []
    if "default_payment_method" not in settings:
        return account, []
    default = object_id(settings.get("default_payment_method"))
    changed = payment_method_reported(event, account, default, source="customer")
    return changed or (account, [])


def payment_method_reported(
    event: StripeEvent, account: Account, payment_method: str | None, source: str
) -> tuple[Account, list[Publication]] | None:
    """Records the payment method (None: removed) if the event is the latest word on it; one the tenant
    gave (not the lifecycle's own echo) goes to the lifecycle and is announced."""
    report = account.reported or StripeReport()
    stamp = event.stamp()
    stored = report.payment_method
    if stored is None and payment_method is None:
        return None  # nothing given, nothing known
    if stored is not None and (
        stamp.event_id == stored.stamp.event_id
        or stamp.at < stored.stamp.at
        or (payment_method is None and stamp.at == stored.stamp.at)  # a removal must come later
        or stored.payment_method_id == payment_method
    ):
        return None
    recorded = ReportedPaymentMethod(payment_method_id=payment_method, stamp=stamp)
    obj = event.object
    customer = object_id(obj) if obj.get("object") == "customer" else object_id(obj.get("customer"))
    if customer is not None and customer != report.customer_id:
        report = report.model_copy(update={"customer_id": customer, "customer_deleted": False})
    updated = account.model_copy(update={"reported": report.model_copy(update={"payment_method": recorded})})
    publications: list[Publication] = []
    if (
        payment_method is not None
        and not event.is_echo()
        and payment_method != account.applied_payment_method
        and account.status is not AccountStatus.CLOSED
        and account.desired.closed is None
    ):
        publications.append(
            (
                GIVE_PAYMENT_METHOD,
                {
                    "tenantId": account.tenant_id,
                    "paymentMethod": payment_method,
                    "at": stamp.at,
                    "eventId": event.id,
                },
            )
        )
        publications.append(stripe_change(updated, event, "payment_method_updated", {"via": source}))
    return updated, publications


# -- changes made in Stripe -----------------------------------------------------------------------------


def subscription_changes(
    before: Account,
    after: Account,
    fact: SubscriptionFact,
    event: StripeEvent,
    previous: SubscriptionFact | None,
) -> tuple[Account, list[Publication]]:
    """What a report of the account's own subscription means beyond its state: a scheduled change that
    took effect (or that Stripe's schedule no longer holds), and a change made in Stripe, announced."""
    if after.subscription_id not in (None, fact.subscription_id):
        return after, []
    live = fact.status not in ENDED
    scheduled = after.scheduled_change
    applied_now = (
        scheduled is not None
        and live
        and fact.tier == scheduled.tier
        and (scheduled.since is None or event.stamp().at >= scheduled.since)
    )
    if applied_now:
        after = after.model_copy(update={"scheduled_change": None})
    report = after.reported
    reported = report.schedule if report is not None else None
    if (
        report is not None
        and reported is not None
        and reported.change is not None
        and fact.tier == reported.change.tier
    ):
        done = reported.model_copy(update={"change": None})
        after = after.model_copy(update={"reported": report.model_copy(update={"schedule": done})})
    if event.is_echo():
        return after, []
    publications: list[Publication] = []
    if fact.tier is not None and live and fact.tier != before.applied_tier:
        operation = (
            "scheduled_plan_change_applied" if applied_now or _was_reported(before, fact) else "plan_changed"
        )
        publications.append(stripe_change(after, event, operation, {"tier": fact.tier}))
    if previous is not None and previous.status not in ENDED and not live:
        publications.append(stripe_change(after, event, "subscription_canceled", {}))
    elif previous is not None and live and previous.cancel_at_period_end != fact.cancel_at_period_end:
        operation = "cancellation_scheduled" if fact.cancel_at_period_end else "cancellation_withdrawn"
        publications.append(stripe_change(after, event, operation, {}))
    return after, publications


def _was_reported(account: Account, fact: SubscriptionFact) -> bool:
    report = account.reported
    change = report.schedule.change if report is not None and report.schedule is not None else None
    return change is not None and change.tier == fact.tier


def stripe_change(
    account: Account, event: StripeEvent, operation: str, extra: dict[str, object]
) -> Publication:
    """`sbt_aws_billingSuccess` for a change made in Stripe: the operation, the tier and status now."""
    report = account.reported
    subscription = report.subscription.value if report is not None and report.subscription else None
    detail: dict[str, object] = {
        "tenantId": account.tenant_id,
        "operation": operation,
        "origin": "stripe",
        "accountStatus": account.status.value,
        "stripeEventId": event.id,
    }
    for key, value in (
        ("customerId", account.customer_id or (report.customer_id if report else None)),
        (
            "subscriptionId",
            account.subscription_id or (subscription.subscription_id if subscription else None),
        ),
        ("subscriptionStatus", subscription.status if subscription else account.subscription_status),
        ("tier", (subscription.tier if subscription else None) or account.applied_tier),
    ):
        if value is not None:
            detail[key] = value
    detail.update(extra)
    return BILLING_SUCCESS, detail


# -- schedules ----------------------------------------------------------------------------------------


def schedule_reported(
    event: StripeEvent, account: Account, catalogue: Mapping[str, TierPlan], lookup: PriceLookup
) -> tuple[Account, list[Publication]] | None:
    """A subscription schedule's event. The lifecycle's own schedule is the lifecycle's to describe: an
    end of it (released, canceled, completed) ends the account's scheduled change. Any other (the
    portal's period-end downgrade) is reported with the tier of its next phase."""
    obj = event.object
    schedule_id = str(obj["id"])
    ended = obj.get("status") not in LIVE_SCHEDULES
    stamp = event.stamp()
    updated = account
    own = account.scheduled_change is not None and account.scheduled_change.schedule_id == schedule_id
    if own and ended:
        updated = updated.model_copy(update={"scheduled_change": None})
    report = updated.reported or StripeReport()
    stored = report.schedule
    if stored is not None and (
        stored.stamp.event_id == stamp.event_id
        or stamp.at < stored.stamp.at
        or (stamp.at == stored.stamp.at and stored.schedule_id == schedule_id and stored.ended and not ended)
    ):
        return (updated, []) if updated != account else None
    change = None if ended or own else _next_phase(obj, schedule_id, catalogue, lookup)
    recorded = ReportedSchedule(schedule_id=schedule_id, change=change, stamp=stamp, ended=ended)
    return updated.model_copy(update={"reported": report.model_copy(update={"schedule": recorded})}), []


def _next_phase(
    obj: Mapping[str, Any], schedule_id: str, catalogue: Mapping[str, TierPlan], lookup: PriceLookup
) -> ScheduledChange | None:
    current = obj.get("current_phase")
    phases = obj.get("phases")
    if not isinstance(current, Mapping) or not isinstance(phases, list):
        return None
    end = current.get("end_date")
    if not isinstance(end, int):
        return None
    following = [phase for phase in phases if isinstance(phase, Mapping) and phase.get("start_date") == end]
    if not following:
        return None
    for item in following[0].get("items") or []:
        price = object_id(item.get("price")) if isinstance(item, Mapping) else None
        if price is None:
            continue
        tier = tier_for_price(catalogue, price, lookup.price_lookup_key(price))
        if tier is not None:
            return ScheduledChange(
                tier=tier, at=datetime.fromtimestamp(end, UTC), schedule_id=schedule_id, price_id=price
            )
    return None


# -- trials -------------------------------------------------------------------------------------------


def trial_will_end(event: StripeEvent, account: Account, has_payment_method: bool) -> list[Publication]:
    obj = event.object
    detail: dict[str, object] = {
        "tenantId": account.tenant_id,
        "subscriptionId": str(obj["id"]),
        "hasPaymentMethod": has_payment_method,
        "stripeEventId": event.id,
    }
    trial_end = obj.get("trial_end")
    if isinstance(trial_end, int) and not isinstance(trial_end, bool):
        detail["trialEnd"] = datetime.fromtimestamp(trial_end, UTC).isoformat()
    return [(TRIAL_WILL_END, detail)]
