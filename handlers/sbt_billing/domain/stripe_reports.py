"""Stripe's facts, applied to the tenant's account: ownership, ordering, consequences. (The delivery's
signature is checked and its body parsed before, by the webhook's entry point.)

Only the tenant's own objects are facts about it. An event of another mode than the key's (`livemode`)
or of a connected account (`account`) is nobody's here. Once the account records its customer and
subscription, a subscription, invoice or customer event counts only for those ids: an add-on
subscription made in the Dashboard on the tenant's customer, or another customer's objects carrying
a copied `metadata.tenantId`, are acknowledged and counted as foreign, never applied. Before the
account records them, an event is recorded (the gate shows it) when its customer's own metadata names
the tenant, and nothing from it is merged into the tenant's desired state; the gate then trusts a
reported subscription only while it is the one the account records (billing_state.py).

Stripe is the source of truth for what it reports. A webhook records its object in the account's
`reported` part (written only here), each part stamped with the event's `created` and id, so that:

- a duplicate (same event id) or an older event (earlier `created`) changes nothing;
- two events of the same second are ordered by re-fetching the subscription from Stripe, and by
  the invoice's own progression (open < uncollectible < paid) for invoices;
- an event for a tenant whose record does not exist yet creates a PENDING account holding only the
  report: the lifecycle opens the account as usual when provisioning arrives, and keeps the report.

A change made in Stripe by someone else (the dashboard, the customer portal) also becomes a fact of
the tenant's desired state, stamped with the event's time, and is marked applied, so that the
lifecycle does not push it back. Echoes of the lifecycle's own writes (their idempotency key starts
with `sbt-billing:`) confirm what was applied and are not merged again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import cache
from typing import Any

from sbt_billing.domain.account_writes import Write, write_merged
from sbt_billing.domain.catalogue import TierPlan, tier_for_price
from sbt_billing.domain.errors import ConfigurationError, InvalidEvent
from sbt_billing.domain.frozen import Frozen
from sbt_billing.domain.gate import (
    GOOD_STANDING,
    GatePolicy,
    billing_state,
    decide,
    lapsed_for_nonpayment,
    payment_method,
    reported_subscription,
)
from sbt_billing.domain.models import (
    Account,
    AccountStatus,
    Address,
    CustomerDetails,
    InvoiceFact,
    PaymentState,
    ReportedInvoice,
    ReportedPayment,
    ReportedSubscription,
    StripeReport,
    StripeStamp,
    SubscriptionFact,
    TenantFacts,
)
from sbt_billing.domain.ports import AccountStore, EventPublisher, LifecycleInbox, StripeLookup
from sbt_billing.domain.published import (
    ACTIVATE_REQUEST,
    BILLING_FAILURE,
    BILLING_SUCCESS,
    DEACTIVATE_REQUEST,
    TENANT_BILLING_UPDATED,
)
from sbt_billing.domain.results import Result
from sbt_billing.domain.stripe_events import StripeEvent
from sbt_billing.domain.stripe_json import from_epoch, invoice_fact, object_id, text
from sbt_billing.domain.stripe_self_service import (
    CHECKOUT_EVENTS,
    GIVE_PAYMENT_METHOD,
    SCHEDULE_EVENTS,
    SELF_SERVICE_EVENTS,
    TRIAL_EVENTS,
    checkout_completed,
    customer_payment_method,
    schedule_reported,
    subscription_changes,
    trial_will_end,
)

CUSTOMER_EVENTS = frozenset({"customer.updated", "customer.deleted"})
SUBSCRIPTION_EVENTS = frozenset(
    {"customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted"}
)
INVOICE_EVENTS = frozenset(
    {
        "invoice.paid",
        "invoice.payment_failed",
        "invoice.payment_action_required",
        "invoice.finalized",
        "invoice.marked_uncollectible",
    }
)
HANDLED_EVENTS = CUSTOMER_EVENTS | SUBSCRIPTION_EVENTS | INVOICE_EVENTS | SELF_SERVICE_EVENTS

_INVOICE_PROGRESS = {"draft": 0, "open": 1, "uncollectible": 2, "paid": 3, "void": 3}
# Within one second: a payment needing the customer is more than a failure (Stripe sends both).
_PAYMENT_PROGRESS = {
    PaymentState.FAILED: 0,
    PaymentState.ACTION_REQUIRED: 1,
    PaymentState.UNCOLLECTIBLE: 2,
    PaymentState.PAID: 3,
}


# -- the processor --------------------------------------------------------------------------------


class WebhookPolicy(Frozen):
    gate: GatePolicy
    livemode: bool  # the mode of the deployment's Stripe key: only events of that mode are ours
    publish_deactivate: bool = False
    publish_activate: bool = False
    publish_billing_updates: bool = True


class WebhookOutcome(Frozen):
    event_id: str
    event_type: str
    result: Result
    tenant_id: str | None = None
    reason: str | None = None
    published: tuple[str, ...] = ()
    foreign: bool = False  # about an object that is not the tenant's own: acknowledged, not applied

    def as_response(self) -> dict[str, str]:
        body = {
            "received": "true",
            "eventId": self.event_id,
            "eventType": self.event_type,
            "result": self.result.value,
        }
        if self.reason:
            body["reason"] = self.reason
        return body


Publication = tuple[str, dict[str, object]]
Change = Callable[[Account], tuple[Account, list[Publication]] | None]


class WebhookProcessor:
    def __init__(
        self,
        store: AccountStore,
        publisher: EventPublisher,
        lookup: StripeLookup,
        catalogue: Mapping[str, TierPlan],
        policy: WebhookPolicy,
        inbox: LifecycleInbox | None = None,
    ) -> None:
        self._inbox = inbox
        self._store = store
        self._publisher = publisher
        self._lookup = lookup
        self._catalogue = catalogue
        self._policy = policy

    def apply(self, event: StripeEvent) -> WebhookOutcome:
        def outcome(result: Result, tenant: str | None = None, reason: str | None = None) -> WebhookOutcome:
            return WebhookOutcome(
                event_id=event.id, event_type=event.type, result=result, tenant_id=tenant, reason=reason
            )

        if event.type not in HANDLED_EVENTS:
            return outcome(Result.IGNORED, reason="event type not handled")
        if event.account is not None:
            return _foreign(event, None, "an event of a connected account")
        if event.livemode is not self._policy.livemode:
            return _foreign(event, None, "an event of the other mode than the Stripe key's")
        obj = event.object
        if not isinstance(obj.get("id"), str):
            raise InvalidEvent("data.object.id", "is required")
        customer_tenant = cache(self._lookup.tenant_of_customer)  # one read per customer and event
        tenant_id = self._tenant_of(event, customer_tenant)
        if tenant_id is None:
            return outcome(Result.IGNORED, reason="the object names no tenantId")
        if event.type in CUSTOMER_EVENTS:
            change: Change = lambda account: self._customer(event, account)  # noqa: E731
        elif event.type in SUBSCRIPTION_EVENTS:
            change = lambda account: self._subscription(event, account)  # noqa: E731
        elif event.type in CHECKOUT_EVENTS:
            change = lambda account: checkout_completed(event, account, self._lookup)  # noqa: E731
        elif event.type in SCHEDULE_EVENTS:
            change = lambda account: schedule_reported(event, account, self._catalogue, self._lookup)  # noqa: E731
        elif event.type in TRIAL_EVENTS:
            change = lambda account: self._trial_will_end(event, account)  # noqa: E731
        else:
            change = lambda account: self._invoice(event, account)  # noqa: E731
        return self._run(event, tenant_id, change, customer_tenant)

    # -- ownership ---------------------------------------------------------------------------------

    @staticmethod
    def _not_ours(
        event: StripeEvent, account: Account, customer_tenant: Callable[[str], str | None]
    ) -> str | None:
        """Why the event's object is not the account's own, or None when it is, or may be: before
        the account records its customer, when the customer's own metadata names the tenant."""
        obj = event.object
        if event.type in CUSTOMER_EVENTS:
            customer, subscription = text(obj["id"]), None
        elif event.type in SUBSCRIPTION_EVENTS | TRIAL_EVENTS:
            customer, subscription = object_id(obj.get("customer")), text(obj["id"])
        else:
            customer, subscription = object_id(obj.get("customer")), _invoice_subscription(obj)
        if account.customer_id is not None and customer != account.customer_id:
            return "not the customer the account records"
        if account.subscription_id is not None and subscription not in (None, account.subscription_id):
            return "not the subscription the account records"
        if (
            account.customer_id is None
            and event.type not in CUSTOMER_EVENTS
            and (customer is None or customer_tenant(customer) != account.tenant_id)
        ):
            return "its customer's metadata does not name the tenant"
        return None

    # -- record ------------------------------------------------------------------------------------

    def _run(
        self,
        event: StripeEvent,
        tenant_id: str,
        change: Change,
        customer_tenant: Callable[[str], str | None],
    ) -> WebhookOutcome:
        published: list[str] = []

        def step(current: Account | None) -> WebhookOutcome | Write[WebhookOutcome]:
            base = current or Account(tenant_id=tenant_id)  # a webhook before the record: PENDING
            foreign = self._not_ours(event, base, customer_tenant)
            if foreign is not None:
                return _foreign(event, tenant_id, foreign)
            changed = change(base)
            if changed is None:
                return WebhookOutcome(
                    event_id=event.id,
                    event_type=event.type,
                    result=Result.UNCHANGED,
                    tenant_id=tenant_id,
                    reason="a duplicate or an older event",
                )
            account, publications = changed
            account, consequences = self._consequences(base, account, event)
            if current is not None and account == current and not publications:
                return WebhookOutcome(
                    event_id=event.id, event_type=event.type, result=Result.UNCHANGED, tenant_id=tenant_id
                )
            # Published before the write that records the event: an event may be repeated, never lost.
            for detail_type, detail in [*publications, *consequences]:
                key = f"{detail_type}:{json.dumps(detail, sort_keys=True, default=str)}"
                if key not in published:
                    self._emit(detail_type, detail)
                    published.append(key)
            result = Result.APPLIED if current is not None else Result.RECORDED
            return Write(
                account,
                lambda _: WebhookOutcome(
                    event_id=event.id,
                    event_type=event.type,
                    result=result,
                    tenant_id=tenant_id,
                    published=tuple(key.split(":", 1)[0] for key in published),
                ),
            )

        return write_merged(self._store, self._store.get(tenant_id), step)

    def _emit(self, detail_type: str, detail: dict[str, object]) -> None:
        """An event on the bus; or a payment method the tenant gave, handed to the lifecycle."""
        if detail_type != GIVE_PAYMENT_METHOD:
            self._publisher.publish(detail_type, detail)
            return
        if self._inbox is None:
            raise ConfigurationError("this webhook has no way to hand a payment method to the lifecycle")
        at = detail["at"]
        assert isinstance(at, datetime)
        self._inbox.payment_method_given(
            str(detail["tenantId"]), str(detail["paymentMethod"]), at, str(detail["eventId"])
        )

    @staticmethod
    def _tenant_of(event: StripeEvent, customer_tenant: Callable[[str], str | None]) -> str | None:
        obj = event.object
        candidates = [_path(obj, "metadata", "tenantId")]
        if event.type in INVOICE_EVENTS:
            candidates += [
                _path(obj, "parent", "subscription_details", "metadata", "tenantId"),
                _path(obj, "subscription_details", "metadata", "tenantId"),
            ]
        for candidate in candidates:
            if isinstance(candidate, str) and candidate.strip():
                return candidate.strip()
        customer = object_id(obj.get("customer"))
        if event.type not in CUSTOMER_EVENTS and customer is not None:
            return customer_tenant(customer)
        return None

    # -- customers -----------------------------------------------------------------------------------

    def _customer(self, event: StripeEvent, account: Account) -> tuple[Account, list[Publication]] | None:
        report = account.reported or StripeReport()
        stamp = event.stamp()
        obj = event.object
        customer_id = str(obj["id"])
        # The account's own customer (known) or a customer that may be (not yet known): only the former
        # is merged into the desired state; the latter is recorded.
        ours = account.customer_id == customer_id
        if not _newer(stamp, report.customer if report.customer_id == customer_id else None):
            return None
        report = _of_customer(report, customer_id).model_copy(update={"customer": stamp})
        if event.type == "customer.deleted" or obj.get("deleted") is True:
            report = report.model_copy(update={"customer_deleted": True})
            return account.model_copy(update={"reported": report}), []
        updated = account.model_copy(update={"reported": report})
        if ours and not event.is_echo() and account.status is not AccountStatus.CLOSED:
            updated = self._merge_details(updated, _details(obj), stamp.at)
        return customer_payment_method(event, updated)

    @staticmethod
    def _merge_details(account: Account, details: CustomerDetails, at: datetime) -> Account:
        """Stripe's details as a fact, for the fields where they differ from the desired ones."""
        desired = account.desired.details()
        news = {
            field: getattr(details, field)
            for field in ("name", "email", "address")
            if getattr(details, field) is not None and getattr(details, field) != getattr(desired, field)
        }
        if news:
            facts = TenantFacts(tenant_id=account.tenant_id, occurred_at=at, **news)
            account = account.model_copy(update={"desired": account.desired.merge(facts)})
        if account.customer_id is not None and account.desired.details() == details:
            account = account.model_copy(update={"applied_details_digest": details.digest()})
        return account

    # -- subscriptions -------------------------------------------------------------------------------

    def _subscription(self, event: StripeEvent, account: Account) -> tuple[Account, list[Publication]] | None:
        report = account.reported or StripeReport()
        stamp = event.stamp()
        stored = report.subscription
        if stored is not None and account.subscription_id not in (None, stored.value.subscription_id):
            stored = None  # recorded before the account knew its subscription, and not it
        previous = stored.stamp if stored else None
        if not _newer(stamp, previous):
            return None
        obj: Mapping[str, Any] = event.object
        if previous is not None and previous.at == stamp.at:
            # Two facts in the same second: Stripe's current object decides.
            obj = self._lookup.subscription_object(str(obj["id"])) or obj
        fact = self._subscription_fact(obj)
        known = stored.value if stored is not None else None
        report = _of_customer(report, fact.customer_id).model_copy(
            update={"subscription": ReportedSubscription(value=fact, stamp=stamp)}
        )
        updated = account.model_copy(update={"reported": report})
        if account.subscription_id == fact.subscription_id:
            updated = updated.model_copy(update={"subscription_status": fact.status})
            if (
                fact.tier is not None
                and fact.tier != account.applied_tier
                and fact.status not in ("canceled", "incomplete_expired")
                and not event.is_echo()
                and account.status is not AccountStatus.CLOSED
            ):
                # The plan was changed in Stripe: a fact of the tenant's tier, already applied.
                facts = TenantFacts(tenant_id=account.tenant_id, tier=fact.tier, occurred_at=stamp.at)
                desired = updated.desired.merge(facts)
                updated = updated.model_copy(update={"desired": desired})
                if desired.tier_value == fact.tier:
                    updated = updated.model_copy(
                        update={"applied_tier": fact.tier, "price_id": fact.price_id}
                    )
            return subscription_changes(account, updated, fact, event, known)
        return updated, []

    def _subscription_fact(self, obj: Mapping[str, Any]) -> SubscriptionFact:
        if not isinstance(obj.get("status"), str):
            raise InvalidEvent("data.object.status", "is required")
        items = _path(obj, "items", "data")
        item: Mapping[str, Any] = items[0] if isinstance(items, list) and items else {}
        price = item.get("price")
        price_id = price.get("id") if isinstance(price, Mapping) else price
        lookup_key = price.get("lookup_key") if isinstance(price, Mapping) else None
        return SubscriptionFact(
            subscription_id=str(obj["id"]),
            customer_id=text(obj.get("customer")),
            status=str(obj["status"]),
            price_id=text(price_id),
            tier=tier_for_price(self._catalogue, text(price_id), text(lookup_key)),
            current_period_start=from_epoch(
                item.get("current_period_start") or obj.get("current_period_start")
            ),
            current_period_end=from_epoch(item.get("current_period_end") or obj.get("current_period_end")),
            cancel_at_period_end=bool(obj.get("cancel_at_period_end")),
            cancellation_reason=text(_path(obj, "cancellation_details", "reason")),
            schedule_id=object_id(obj.get("schedule")),
            trial_end=from_epoch(obj.get("trial_end")),
        )

    def _trial_will_end(
        self, event: StripeEvent, account: Account
    ) -> tuple[Account, list[Publication]] | None:
        """Three days before the trial ends (Stripe's notice): the application may prompt for a card."""
        if account.subscription_id not in (None, text(event.object["id"])):
            return None
        return account, trial_will_end(event, account, has_payment_method=payment_method(account) is not None)

    # -- invoices ------------------------------------------------------------------------------------

    def _invoice(self, event: StripeEvent, account: Account) -> tuple[Account, list[Publication]] | None:
        report = account.reported or StripeReport()
        stamp = event.stamp()
        invoice = invoice_fact(event.object)
        stored = report.invoice
        seen = {part.stamp.event_id for part in (stored, report.payment) if part is not None}
        if stamp.event_id in seen:
            return None  # a duplicate
        report = _of_customer(report, object_id(event.object.get("customer")))
        changes: dict[str, Any] = {}
        if stored is None or _later_invoice(invoice, stamp, stored):
            changes["invoice"] = ReportedInvoice(value=invoice, stamp=stamp)
        payment = {
            "invoice.paid": PaymentState.PAID,
            "invoice.payment_failed": PaymentState.FAILED,
            "invoice.payment_action_required": PaymentState.ACTION_REQUIRED,
            "invoice.marked_uncollectible": PaymentState.UNCOLLECTIBLE,
        }.get(event.type)
        publications: list[Publication] = []
        if payment is not None:
            known = report.payment
            same_invoice = known is not None and known.invoice_id == invoice.invoice_id
            if known is None or (stamp.at, _PAYMENT_PROGRESS[payment]) > (
                known.stamp.at,
                _PAYMENT_PROGRESS[known.state],
            ):
                changes["payment"] = ReportedPayment(
                    state=payment,
                    invoice_id=invoice.invoice_id,
                    stamp=stamp,
                    hosted_invoice_url=invoice.hosted_invoice_url,
                )
            elif same_invoice:
                return None  # superseded: this invoice has a later outcome already
            publications.append(self._payment_event(account, event, invoice, payment))
        elif "invoice" not in changes:
            return None
        return account.model_copy(update={"reported": report.model_copy(update=changes)}), publications

    @staticmethod
    def _payment_event(
        account: Account, event: StripeEvent, invoice: InvoiceFact, payment: PaymentState
    ) -> Publication:
        detail: dict[str, object] = {
            "tenantId": account.tenant_id,
            "operation": {
                PaymentState.PAID: "invoice_paid",
                PaymentState.FAILED: "invoice_payment_failed",
                PaymentState.ACTION_REQUIRED: "invoice_payment_action_required",
                PaymentState.UNCOLLECTIBLE: "invoice_marked_uncollectible",
            }[payment],
            "invoiceId": invoice.invoice_id,
            "amountDue": invoice.amount_due,
            "amountPaid": invoice.amount_paid,
            "stripeEventId": event.id,
        }
        for key, value in (
            ("invoiceNumber", invoice.number),
            ("currency", invoice.currency),
            ("customerId", text(event.object.get("customer"))),
            ("subscriptionId", account.subscription_id),
        ):
            if value is not None:
                detail[key] = value
        if payment is not PaymentState.PAID:
            detail["attemptCount"] = invoice.attempt_count
        return (BILLING_SUCCESS if payment is PaymentState.PAID else BILLING_FAILURE), detail

    # -- consequences ----------------------------------------------------------------------------------

    def _consequences(
        self, before: Account, after: Account, event: StripeEvent
    ) -> tuple[Account, list[Publication]]:
        """What the change means for the tenant: access suspended or restored, the new billing view."""
        publications: list[Publication] = []
        report = after.reported or StripeReport()
        state, _ = billing_state(after)
        detail: dict[str, object] = {"tenantId": after.tenant_id, "stripeEventId": event.id}
        if self._policy.publish_deactivate and not report.suspended and lapsed_for_nonpayment(after):
            report = report.model_copy(update={"suspended": True})
            publications.append(
                (DEACTIVATE_REQUEST, {**detail, "reason": "nonpayment", "state": state.value})
            )
        elif report.suspended and state in GOOD_STANDING:
            report = report.model_copy(update={"suspended": False})
            if self._policy.publish_activate:
                publications.append((ACTIVATE_REQUEST, {**detail, "reason": "payment_recovered"}))
        if after.reported is not None:
            after = after.model_copy(update={"reported": report})
        if self._policy.publish_billing_updates:
            old, new = _summary(before, self._policy.gate), _summary(after, self._policy.gate)
            if old != new:
                publications.append((TENANT_BILLING_UPDATED, {**detail, **new}))
        return after, publications


def _summary(account: Account, policy: GatePolicy) -> dict[str, object]:
    """What the application reacts to: the gate, the plan, the subscription's status and period."""
    gate = decide(account, policy)
    subscription = reported_subscription(account)
    summary: dict[str, object] = {
        "state": gate.state.value,
        "allowed": gate.allowed,
        "reasons": list(gate.reasons),
    }
    tier = (subscription.tier if subscription else None) or account.applied_tier
    for key, value in (
        ("tier", tier),
        ("subscriptionStatus", subscription.status if subscription else account.subscription_status),
        ("priceId", subscription.price_id if subscription else account.price_id),
        (
            "currentPeriodEnd",
            subscription.current_period_end.isoformat()
            if subscription and subscription.current_period_end
            else None,
        ),
    ):
        if value is not None:
            summary[key] = value
    return summary


# -- helpers --------------------------------------------------------------------------------------------


def _newer(stamp: StripeStamp, previous: StripeStamp | None) -> bool:
    """Not a duplicate and not older than what was applied (same second: the caller decides)."""
    if previous is None:
        return True
    return stamp.event_id != previous.event_id and stamp.at >= previous.at


def _later_invoice(invoice: InvoiceFact, stamp: StripeStamp, stored: ReportedInvoice) -> bool:
    """The latest invoice is the one created last; one invoice moves forward (open, paid...)."""
    if invoice.invoice_id != stored.value.invoice_id:
        mine, theirs = invoice.created, stored.value.created
        return mine is not None and (theirs is None or mine >= theirs)
    progress = _INVOICE_PROGRESS.get(invoice.status or "", 0), invoice.attempt_count
    stored_progress = _INVOICE_PROGRESS.get(stored.value.status or "", 0), stored.value.attempt_count
    return (stamp.at, progress) > (stored.stamp.at, stored_progress)


def _details(obj: Mapping[str, Any]) -> CustomerDetails:
    address = obj.get("address")
    return CustomerDetails(
        name=text(obj.get("name")),
        email=text(obj.get("email")),
        address=Address.model_validate(
            {key: address.get(key) for key in Address.model_fields if isinstance(address.get(key), str)}
        )
        if isinstance(address, Mapping)
        else None,
    )


def _foreign(event: StripeEvent, tenant_id: str | None, reason: str) -> WebhookOutcome:
    return WebhookOutcome(
        event_id=event.id,
        event_type=event.type,
        result=Result.IGNORED,
        tenant_id=tenant_id,
        reason=f"foreign: {reason}",
        foreign=True,
    )


def _of_customer(report: StripeReport, customer_id: str | None) -> StripeReport:
    """The report about `customer_id` (None: the customer it names already). A deletion reported for
    another customer, recorded before the account knew its own, is not this one's."""
    if customer_id is None or customer_id == report.customer_id:
        return report
    return report.model_copy(update={"customer_id": customer_id, "customer_deleted": False})


def _invoice_subscription(obj: Mapping[str, Any]) -> str | None:
    """The subscription an invoice bills (the 2025 API's `parent`, or the older top-level field)."""
    return object_id(_path(obj, "parent", "subscription_details", "subscription")) or object_id(
        obj.get("subscription")
    )


def _path(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj
