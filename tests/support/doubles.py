"""In-memory doubles of the domain's ports, for unit tests with no sockets."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from threading import Lock, RLock

from sbt_billing.domain.billing_policy import DowngradeAt, OpenOn
from sbt_billing.domain.catalogue import TierPlan, UsageMeter
from sbt_billing.domain.errors import PermanentBillingError, RevisionConflict
from sbt_billing.domain.lifecycle import Lifecycle
from sbt_billing.domain.models import Account, CustomerDetails, Facts, InvoiceFact
from sbt_billing.domain.onboarding import Onboarding
from sbt_billing.domain.plan_timing import PriceTerms, ScheduledPlan, ScheduledPlanChange
from sbt_billing.domain.seats import Seats
from sbt_billing.domain.usage import Usage
from sbt_billing.domain.usage_values import MeterEvent, MeterStatus, UsageRecord
from sbt_billing.domain.values import InvoiceAmount, PlanChange, PlanPreview, PlanPrices, SubscriptionState


class InMemoryAccountStore:
    def __init__(self) -> None:
        self.items: dict[str, Account] = {}
        self.reads = 0
        self.writes = 0
        self._lock = RLock()

    def get(self, tenant_id: str) -> Account | None:
        with self._lock:
            self.reads += 1
            return self.items.get(tenant_id)

    def save(self, account: Account, expected_revision: int | None) -> Account:
        with self._lock:
            self.writes += 1
            current = self.items.get(account.tenant_id)
            stored_revision = current.revision if current else None
            if stored_revision != expected_revision:
                raise RevisionConflict(current)
            written = account.model_copy(
                update={"revision": 0 if expected_revision is None else expected_revision + 1}
            )
            self.items[account.tenant_id] = written
            return written


@dataclass
class FakeCustomer:
    id: str
    tenant_id: str
    details: CustomerDetails
    offboarded: bool = False
    deleted: bool = False


@dataclass
class FakeSubscription:
    id: str
    item_id: str
    customer_id: str
    price_id: str
    status: str = "active"
    seat_item_id: str | None = None
    seat_price_id: str | None = None
    seat_quantity: int = 0
    unbilled: bool = False  # cancelled without a final invoice, its open invoices voided
    pending_price: str | None = None  # a plan change Stripe keeps until its invoice is paid
    latest_invoice: InvoiceFact | None = None

    def state(self) -> SubscriptionState:
        return SubscriptionState(
            subscription_id=self.id,
            item_id=self.item_id,
            status=self.status,
            price_id=self.price_id,
            seat_item_id=self.seat_item_id,
            latest_invoice=self.latest_invoice,
            pending_update=self.pending_price is not None,
        )


@dataclass
class FakeStripe:
    """Enough of Stripe for the domain: objects, idempotency keys replayed, calls counted."""

    prices: dict[str, str] = field(
        default_factory=lambda: {
            "basic_key": "price_basic",
            "premium_key": "price_premium",
            "seat_key": "price_seat",
            "api_calls_key": "price_api_calls",
        }
    )
    meter_events: dict[str, MeterEvent] = field(default_factory=dict)
    meter_batches: list[int] = field(default_factory=list)
    meters: dict[str, MeterStatus] = field(default_factory=dict)  # event name -> state (default active)
    customers: dict[str, FakeCustomer] = field(default_factory=dict)
    subscriptions: dict[str, FakeSubscription] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    replays: dict[str, object] = field(default_factory=dict)
    replayed_params: dict[str, object] = field(default_factory=dict)  # what each key was first sent with
    fail_next: dict[str, Exception] = field(default_factory=dict)
    # Refused for good whenever they are sent, as Stripe refuses an email or an archived price (a refusal
    # is not kept under its idempotency key: the same request is refused again).
    refused_emails: set[str] = field(default_factory=set)
    refused_prices: set[str] = field(default_factory=set)
    searches: list[str] = field(default_factory=list)  # the tenants looked up by metadata.tenantId
    before_next: dict[str, Callable[[], object]] = field(default_factory=dict)  # runs as the call arrives
    invoice_changes: bool = False  # proration_behavior always_invoice: a change is invoiced at once
    payments_fail: bool = False  # ... and its payment fails: Stripe keeps the change pending
    plan_changes: list[PlanChange] = field(default_factory=list)
    previews: list[PlanChange] = field(default_factory=list)
    # What each price bills a month (price_terms), the subscription schedules made (id -> its change and
    # status) and the payment methods made a customer's default (customer -> method, charged subscription).
    amounts: dict[str, int] = field(
        default_factory=lambda: {"price_basic": 2900, "price_premium": 29900, "price_seat": 500}
    )
    schedules: dict[str, tuple[ScheduledPlanChange, str]] = field(default_factory=dict)
    defaults: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    period_end: datetime = datetime(2026, 12, 24, 12, 0, tzinfo=UTC)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids)}"

    def _write(self, name: str, key: str, action: object, params: object = None) -> object:
        """A write under an idempotency key: sent again, it replays the first answer; sent again with
        other parameters, Stripe refuses it (an idempotency error, for good)."""
        if name in self.before_next:
            self.before_next.pop(name)()
        if name in self.fail_next:
            raise self.fail_next.pop(name)
        if key in self.replays:
            if self.replayed_params.get(key) != params:
                raise PermanentBillingError(
                    "IdempotencyError 400: keys for idempotent requests can only be used with the same "
                    "parameters they were first used with"
                )
            return self.replays[key]
        self.calls.append(name)
        result = action() if callable(action) else action
        self.replays[key] = result
        self.replayed_params[key] = params
        return result

    def writes(self, name: str | None = None) -> int:
        return len([call for call in self.calls if name is None or call == name])

    def pay_latest_invoice(self, subscription_id: str) -> None:
        """The tenant pays the change's invoice: Stripe applies the pending change."""
        sub = self.subscriptions[subscription_id]
        if sub.pending_price is not None:
            sub.price_id, sub.pending_price = sub.pending_price, None
        if sub.latest_invoice is not None:
            sub.latest_invoice = sub.latest_invoice.model_copy(update={"status": "paid"})


class FakeBillingGateway:
    def __init__(self, stripe: FakeStripe) -> None:
        self.stripe = stripe

    def price_for(self, lookup_key_or_id: str) -> str:
        return self.stripe.prices[lookup_key_or_id]

    def find_customer(self, tenant_id: str) -> str | None:
        self.stripe.searches.append(tenant_id)
        live = [c.id for c in self.stripe.customers.values() if c.tenant_id == tenant_id and not c.deleted]
        return live[0] if live else None

    def find_subscription(
        self, customer_id: str, prices: PlanPrices | None = None
    ) -> SubscriptionState | None:
        for sub in self.stripe.subscriptions.values():
            if sub.customer_id == customer_id and sub.status != "canceled":
                return sub.state()
        return None

    def _refuse_email(self, details: CustomerDetails) -> None:
        if details.email in self.stripe.refused_emails:
            raise PermanentBillingError(
                "InvalidRequestError 400 email_invalid: Invalid email address: [email]"
            )

    def create_customer(self, tenant_id: str, details: CustomerDetails, idempotency_key: str) -> str:
        def create() -> str:
            self._refuse_email(details)
            customer = FakeCustomer(self.stripe._new_id("cus"), tenant_id, details)
            self.stripe.customers[customer.id] = customer
            return customer.id

        return str(self.stripe._write("create_customer", idempotency_key, create))

    def update_customer(self, customer_id: str, details: CustomerDetails, idempotency_key: str) -> None:
        def update() -> None:
            self._refuse_email(details)
            self.stripe.customers[customer_id].details = details

        self.stripe._write("update_customer", idempotency_key, update)

    def link_customer(self, customer_id: str, tenant_id: str, idempotency_key: str) -> None:
        def link() -> None:
            customer = self.stripe.customers[customer_id]
            if customer.tenant_id not in ("", tenant_id):
                raise PermanentBillingError("the customer names another tenant")
            customer.tenant_id = tenant_id

        self.stripe._write("link_customer", idempotency_key, link)

    def create_subscription(
        self, tenant_id: str, customer_id: str, prices: PlanPrices, seat_quantity: int, idempotency_key: str
    ) -> SubscriptionState:
        def create() -> SubscriptionState:
            if prices.base in self.stripe.refused_prices:
                raise PermanentBillingError(
                    "InvalidRequestError 400: The price specified is inactive. This field only accepts active prices."
                )
            sub = FakeSubscription(
                self.stripe._new_id("sub"), self.stripe._new_id("si"), customer_id, prices.base
            )
            if prices.seats:
                sub.seat_item_id = self.stripe._new_id("si")
                sub.seat_price_id, sub.seat_quantity = prices.seats, seat_quantity
            self.stripe.subscriptions[sub.id] = sub
            return sub.state()

        result = self.stripe._write("create_subscription", idempotency_key, create)
        assert isinstance(result, SubscriptionState)
        return result

    def change_plan(self, change: PlanChange, idempotency_key: str) -> SubscriptionState:
        def change_() -> SubscriptionState:
            self.stripe.plan_changes.append(change)
            sub = self.stripe.subscriptions[change.subscription_id]
            if self.stripe.invoice_changes:
                sub.latest_invoice = InvoiceFact(
                    invoice_id=self.stripe._new_id("in"),
                    status="open" if self.stripe.payments_fail else "paid",
                    amount_due=1000,
                    currency="usd",
                    hosted_invoice_url="https://invoice.test/i/1",
                )
                if self.stripe.payments_fail:
                    sub.pending_price = change.base_price
                    return sub.state()
            sub.price_id, sub.pending_price = change.base_price, None
            if change.seat_price and not sub.seat_item_id:
                sub.seat_item_id, sub.seat_quantity = self.stripe._new_id("si"), change.seat_quantity
            if not change.seat_price:
                sub.seat_item_id = None
            sub.seat_price_id = change.seat_price
            return sub.state()

        result = self.stripe._write("change_plan", idempotency_key, change_)
        assert isinstance(result, SubscriptionState)
        return result

    def subscription_state(self, subscription_id: str, prices: PlanPrices) -> SubscriptionState | None:
        self.stripe.calls.append("retrieve_subscription")
        sub = self.stripe.subscriptions.get(subscription_id)
        return sub.state() if sub else None

    def preview_change(self, customer_id: str, change: PlanChange) -> PlanPreview:
        assert change.proration_date is not None
        self.stripe.previews.append(change)
        return PlanPreview(
            proration_date=change.proration_date,
            proration_behavior="always_invoice" if self.stripe.invoice_changes else "create_prorations",
            due_now=InvoiceAmount(amount_due=1000, currency="usd") if self.stripe.invoice_changes else None,
            next_invoice=InvoiceAmount(amount_due=29900, currency="usd"),
        )

    def _seat_subscription(self, item_id: str) -> FakeSubscription | None:
        return next((s for s in self.stripe.subscriptions.values() if s.seat_item_id == item_id), None)

    def item_quantity(self, item_id: str) -> int | None:
        sub = self._seat_subscription(item_id)
        return sub.seat_quantity if sub else None

    def set_quantity(self, item_id: str, quantity: int, idempotency_key: str) -> bool:
        def set_() -> bool:
            sub = self._seat_subscription(item_id)
            if sub is None:
                return False
            sub.seat_quantity = quantity
            return True

        return bool(self.stripe._write("set_quantity", idempotency_key, set_))

    def meter_states(self, event_names: Sequence[str]) -> dict[str, MeterStatus]:
        return {name: self.stripe.meters.get(name, MeterStatus.ACTIVE) for name in event_names}

    def send_meter_events(self, events: Sequence[MeterEvent]) -> None:
        if "send_meter_events" in self.stripe.fail_next:
            raise self.stripe.fail_next.pop("send_meter_events")
        assert len(events) <= 100
        self.stripe.calls.append("send_meter_events")
        self.stripe.meter_batches.append(len(events))
        for event in events:
            self.stripe.meter_events.setdefault(event.identifier, event)

    def cancel_subscription(self, subscription_id: str, idempotency_key: str) -> str:
        def cancel() -> str:
            self.stripe.subscriptions[subscription_id].status = "canceled"
            return "canceled"

        return str(self.stripe._write("cancel_subscription", idempotency_key, cancel))

    def cancel_unbilled(self, subscription_id: str, idempotency_key: str) -> str:
        def cancel() -> str:
            self.stripe.subscriptions[subscription_id].status = "canceled"
            self.stripe.subscriptions[subscription_id].unbilled = True
            return "canceled"

        return str(self.stripe._write("cancel_unbilled", idempotency_key, cancel))

    def close_customer(self, customer_id: str, closed_at: datetime, idempotency_key: str) -> bool:
        def close() -> bool:
            self.stripe.customers[customer_id].offboarded = True
            return False

        return bool(self.stripe._write("close_customer", idempotency_key, close, params=closed_at))

    def price_terms(self, price_id: str) -> PriceTerms:
        return PriceTerms(
            price_id=price_id, amount=self.stripe.amounts[price_id], currency="usd", interval="month"
        )

    def schedule_plan_change(self, change: ScheduledPlanChange, idempotency_key: str) -> ScheduledPlan:
        def schedule() -> ScheduledPlan:
            live = [
                schedule_id
                for schedule_id, (made, status) in self.stripe.schedules.items()
                if made.subscription_id == change.subscription_id and status == "active"
            ]
            schedule_id = live[0] if live else self.stripe._new_id("sub_sched")
            self.stripe.schedules[schedule_id] = (change, "active")
            return ScheduledPlan(schedule_id=schedule_id, at=self.stripe.period_end)

        result = self.stripe._write("schedule_plan_change", idempotency_key, schedule)
        assert isinstance(result, ScheduledPlan)
        return result

    def release_schedule(self, schedule_id: str, idempotency_key: str) -> None:
        def release() -> None:
            change, _ = self.stripe.schedules[schedule_id]
            self.stripe.schedules[schedule_id] = (change, "released")

        self.stripe._write("release_schedule", idempotency_key, release)

    def use_payment_method(
        self, customer_id: str, subscription_id: str | None, payment_method_id: str, idempotency_key: str
    ) -> None:
        def use() -> None:
            self.stripe.defaults[customer_id] = (payment_method_id, subscription_id)

        self.stripe._write("use_payment_method", idempotency_key, use)


class RecordingPublisher:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, object]]] = []

    def publish(self, detail_type: str, detail: Mapping[str, object]) -> None:
        self.events.append((detail_type, dict(detail)))

    def of_type(self, detail_type: str) -> list[dict[str, object]]:
        return [detail for kind, detail in self.events if kind == detail_type]


class FixedClock:
    def __init__(self, at: datetime | None = None) -> None:
        self.at = at or datetime(2026, 11, 24, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


class InMemorySeatLedger:
    def __init__(self) -> None:
        self.users: dict[tuple[str, str], tuple[bool, str]] = {}
        self.version: dict[str, int] = {}
        self.scheduled: dict[str, bool] = {}
        self.applied: dict[str, tuple[int, str]] = {}
        self._lock = RLock()

    def record_user(self, tenant_id: str, user_id: str, present: bool, stamp: str) -> bool:
        with self._lock:
            old = self.users.get((tenant_id, user_id))
            if old is not None and old[1] >= stamp:
                return False
            self.users[(tenant_id, user_id)] = (present, stamp)
            return bool(old and old[0]) != present

    def count(self, tenant_id: str) -> int:
        with self._lock:
            return sum(
                1 for (tenant, _), (present, _) in self.users.items() if tenant == tenant_id and present
            )

    def claim_sync(self, tenant_id: str, changed: bool) -> bool:
        with self._lock:
            self.version[tenant_id] = self.version.get(tenant_id, 0) + (1 if changed else 0)
            claimed = not self.scheduled.get(tenant_id, False)
            self.scheduled[tenant_id] = True
            return claimed

    def release_claim(self, tenant_id: str) -> None:
        with self._lock:
            self.scheduled[tenant_id] = False

    def sync_version(self, tenant_id: str) -> tuple[int, int | None, str | None]:
        with self._lock:
            applied = self.applied.get(tenant_id)
            return (
                self.version.get(tenant_id, 0),
                applied[0] if applied else None,
                applied[1] if applied else None,
            )

    def finish_sync(self, tenant_id: str, version: int, quantity: int | None, item_id: str | None) -> bool:
        with self._lock:
            if quantity is not None and item_id:
                self.applied[tenant_id] = (quantity, item_id)
            if self.version.get(tenant_id, 0) != version:
                return False
            self.scheduled[tenant_id] = False
            return True


class RecordingScheduler:
    def __init__(self) -> None:
        self.scheduled: list[str] = []

    def schedule(self, tenant_id: str, delay_seconds: int) -> None:
        self.scheduled.append(tenant_id)


class InMemoryOutbox:
    def __init__(self) -> None:
        self.records: dict[str, tuple[UsageRecord, str, str | None]] = {}

    def add(self, records: Sequence[UsageRecord]) -> list[UsageRecord]:
        new = [r for r in records if r.identifier not in self.records]
        for record in new:
            self.records[record.identifier] = (record, "pending", None)
        return new

    def pending(self, tenant_id: str) -> list[UsageRecord]:
        return [r for r, state, _ in self.records.values() if state == "pending" and r.tenant_id == tenant_id]

    def pending_tenants(self) -> list[str]:
        return sorted({r.tenant_id for r, state, _ in self.records.values() if state == "pending"})

    def mark_sent(self, records: Sequence[UsageRecord]) -> None:
        for record in records:
            self.records[record.identifier] = (record, "sent", None)

    def mark_rejected(self, record: UsageRecord, reason: str) -> bool:
        known = self.records.get(record.identifier)
        if known is not None and known[1] == "rejected":
            return False
        self.records[record.identifier] = (record, "rejected", reason)
        return True

    def find(self, identifier: str) -> UsageRecord | None:
        known = self.records.get(identifier)
        return known[0] if known is not None else None

    def state(self, identifier: str) -> tuple[str, str | None]:
        _, state, reason = self.records[identifier]
        return state, reason

    def states(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for _, state, _ in self.records.values():
            counts[state] = counts.get(state, 0) + 1
        return counts


class InMemoryRegistrations:
    """Registration ids linked to tenants, and the facts kept under a registration before its link."""

    def __init__(self) -> None:
        self.tenants: dict[str, str] = {}
        self.kept: dict[str, dict[str, Facts]] = {}
        self._lock = Lock()

    def link(self, registration_id: str, tenant_id: str) -> list[Facts]:
        with self._lock:
            self.tenants.setdefault(registration_id, tenant_id)
            kept = self.kept.get(registration_id, {})
            return sorted(kept.values(), key=lambda facts: facts.occurred_at)

    def park(self, registration_id: str, facts: Facts) -> str | None:
        with self._lock:
            if registration_id in self.tenants:
                return self.tenants[registration_id]
            self.kept.setdefault(registration_id, {})[facts.model_dump_json()] = facts
            return None


class InMemoryBilling:
    """Every port of the domain in memory, wired together as the functions wire the real adapters."""

    def __init__(
        self,
        catalogue: Mapping[str, TierPlan],
        meters: Mapping[str, UsageMeter] | None = None,
        clock: FixedClock | None = None,
        seats_and_usage: bool = False,
        downgrade_at: DowngradeAt = DowngradeAt.IMMEDIATELY,
    ) -> None:
        self.downgrade_at = downgrade_at
        self.catalogue = catalogue
        self.meters = meters or {}
        self.store = InMemoryAccountStore()
        self.stripe = FakeStripe()
        self.publisher = RecordingPublisher()
        self.clock = clock or FixedClock()
        self.ledger = InMemorySeatLedger()
        self.scheduler = RecordingScheduler()
        self.outbox = InMemoryOutbox()
        gateway = FakeBillingGateway(self.stripe)
        self.seats = Seats(self.ledger, self.scheduler, self.store, gateway, delay_seconds=20)
        self.usage = Usage(self.outbox, self.store, gateway, self.publisher, self.clock, self.meters, gateway)
        self.registrations = InMemoryRegistrations()
        self._seats_and_usage = seats_and_usage

    def onboarding(self, open_on: OpenOn = OpenOn.PROVISION_SUCCESS) -> Onboarding:
        return Onboarding(self.lifecycle(), self.registrations, open_on)

    def lifecycle(self, owner: str | None = None, working_until: datetime | None = None) -> Lifecycle:
        wired = self._seats_and_usage
        return Lifecycle(
            self.store,
            FakeBillingGateway(self.stripe),
            self.publisher,
            self.clock,
            self.catalogue,
            120,
            owner=owner,
            working_until=working_until,
            metered_prices=[meter.price for meter in self.meters.values() if meter.price] if wired else (),
            seats=self.seats if wired else None,
            usage=self.usage if wired else None,
            downgrade_at=self.downgrade_at,
        )
