"""What the domain needs from the outside world, by role. Adapters implement these with SDKs;
tests implement them with in-memory doubles."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

from .models import Account, CustomerDetails, Frozen


class SubscriptionState(Frozen):
    subscription_id: str
    item_id: str
    status: str
    price_id: str


class AccountStore(Protocol):
    def get(self, tenant_id: str) -> Account | None:
        """The account as last written (strongly consistent), or None."""
        ...

    def save(self, account: Account, expected_revision: int | None) -> Account:
        """Writes `account` with revision expected_revision + 1 (or 0 when creating: expected None),
        only if the stored revision is still expected_revision. Raises RevisionConflict with the
        stored account otherwise. Returns the account as written."""
        ...


class BillingGateway(Protocol):
    """Stripe, as the domain sees it. Every write takes the idempotency key the domain derived."""

    def price_for(self, lookup_key_or_id: str) -> str: ...

    def find_customer(self, tenant_id: str) -> str | None:
        """The live customer whose metadata.tenantId is tenant_id, if any (Stripe's search)."""
        ...

    def find_subscription(self, customer_id: str) -> SubscriptionState | None:
        """The customer's subscription that is not yet cancelled, if any."""
        ...

    def create_customer(self, tenant_id: str, details: CustomerDetails, idempotency_key: str) -> str: ...

    def update_customer(self, customer_id: str, details: CustomerDetails, idempotency_key: str) -> None: ...

    def create_subscription(
        self, tenant_id: str, customer_id: str, price_id: str, idempotency_key: str
    ) -> SubscriptionState: ...

    def change_price(self, item_id: str, price_id: str, idempotency_key: str) -> None: ...

    def cancel_subscription(self, subscription_id: str, idempotency_key: str) -> str:
        """Cancels as the deployment's policy says; returns the subscription's status after."""
        ...

    def close_customer(self, customer_id: str, closed_at: datetime, idempotency_key: str) -> bool:
        """Marks the customer offboarded or deletes it, per policy; True when it was deleted."""
        ...


class EventPublisher(Protocol):
    def publish(self, detail_type: str, detail: Mapping[str, object]) -> None: ...


class Clock(Protocol):
    def now(self) -> datetime: ...
