"""In-memory doubles of the domain's ports, for unit tests with no sockets."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from threading import RLock

from sbt_billing.errors import RevisionConflict
from sbt_billing.models import Account, CustomerDetails
from sbt_billing.ports import SubscriptionState


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


@dataclass
class FakeStripe:
    """Enough of Stripe for the domain: objects, idempotency keys replayed, calls counted."""

    prices: dict[str, str] = field(
        default_factory=lambda: {"basic_key": "price_basic", "premium_key": "price_premium"}
    )
    customers: dict[str, FakeCustomer] = field(default_factory=dict)
    subscriptions: dict[str, FakeSubscription] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    replays: dict[str, object] = field(default_factory=dict)
    fail_next: dict[str, Exception] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids)}"

    def _write(self, name: str, key: str, action: object) -> object:
        if name in self.fail_next:
            raise self.fail_next.pop(name)
        if key in self.replays:
            return self.replays[key]
        self.calls.append(name)
        result = action() if callable(action) else action
        self.replays[key] = result
        return result

    def writes(self, name: str | None = None) -> int:
        return len([call for call in self.calls if name is None or call == name])


class FakeBillingGateway:
    def __init__(self, stripe: FakeStripe) -> None:
        self.stripe = stripe

    def price_for(self, lookup_key_or_id: str) -> str:
        return self.stripe.prices[lookup_key_or_id]

    def find_customer(self, tenant_id: str) -> str | None:
        live = [c.id for c in self.stripe.customers.values() if c.tenant_id == tenant_id and not c.deleted]
        return live[0] if live else None

    def find_subscription(self, customer_id: str) -> SubscriptionState | None:
        for sub in self.stripe.subscriptions.values():
            if sub.customer_id == customer_id and sub.status != "canceled":
                return SubscriptionState(
                    subscription_id=sub.id, item_id=sub.item_id, status=sub.status, price_id=sub.price_id
                )
        return None

    def create_customer(self, tenant_id: str, details: CustomerDetails, idempotency_key: str) -> str:
        def create() -> str:
            customer = FakeCustomer(self.stripe._new_id("cus"), tenant_id, details)
            self.stripe.customers[customer.id] = customer
            return customer.id

        return str(self.stripe._write("create_customer", idempotency_key, create))

    def update_customer(self, customer_id: str, details: CustomerDetails, idempotency_key: str) -> None:
        def update() -> None:
            self.stripe.customers[customer_id].details = details

        self.stripe._write("update_customer", idempotency_key, update)

    def create_subscription(
        self, tenant_id: str, customer_id: str, price_id: str, idempotency_key: str
    ) -> SubscriptionState:
        def create() -> SubscriptionState:
            sub = FakeSubscription(
                self.stripe._new_id("sub"), self.stripe._new_id("si"), customer_id, price_id
            )
            self.stripe.subscriptions[sub.id] = sub
            return SubscriptionState(
                subscription_id=sub.id, item_id=sub.item_id, status=sub.status, price_id=price_id
            )

        result = self.stripe._write("create_subscription", idempotency_key, create)
        assert isinstance(result, SubscriptionState)
        return result

    def change_price(self, item_id: str, price_id: str, idempotency_key: str) -> None:
        def change() -> None:
            for sub in self.stripe.subscriptions.values():
                if sub.item_id == item_id:
                    sub.price_id = price_id

        self.stripe._write("change_price", idempotency_key, change)

    def cancel_subscription(self, subscription_id: str, idempotency_key: str) -> str:
        def cancel() -> str:
            self.stripe.subscriptions[subscription_id].status = "canceled"
            return "canceled"

        return str(self.stripe._write("cancel_subscription", idempotency_key, cancel))

    def close_customer(self, customer_id: str, closed_at: datetime, idempotency_key: str) -> bool:
        def close() -> bool:
            self.stripe.customers[customer_id].offboarded = True
            return False

        return bool(self.stripe._write("close_customer", idempotency_key, close))


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
