"""What the domain needs from the outside world, by role. Adapters implement these with SDKs;
tests implement them with in-memory doubles."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # named in signatures only: importing the ports builds none of the values they carry
    from sbt_billing.domain.drift import ObservedSubscription
    from sbt_billing.domain.models import (
        Account,
        CustomerDetails,
        Facts,
        StripeStamp,
    )
    from sbt_billing.domain.plan_timing import PriceTerms, ScheduledPlan, ScheduledPlanChange
    from sbt_billing.domain.reconcile_state import EventWindow, PassState
    from sbt_billing.domain.usage_values import MeterEvent, MeterStatus, UsageRecord
    from sbt_billing.domain.values import (
        AccountRef,
        Page,
        PlanChange,
        PlanPreview,
        PlanPrices,
        SubscriptionState,
    )


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

    def find_subscription(
        self, customer_id: str, prices: PlanPrices | None = None
    ) -> SubscriptionState | None:
        """The customer's subscription that is not yet cancelled, if any (items told apart by `prices`)."""
        ...

    def create_customer(self, tenant_id: str, details: CustomerDetails, idempotency_key: str) -> str: ...

    def update_customer(self, customer_id: str, details: CustomerDetails, idempotency_key: str) -> None: ...

    def link_customer(self, customer_id: str, tenant_id: str, idempotency_key: str) -> None:
        """Makes an existing customer the tenant's (its metadata.tenantId); refuses (PermanentBillingError)
        a customer that is deleted or names another tenant."""
        ...

    def create_subscription(
        self, tenant_id: str, customer_id: str, prices: PlanPrices, seat_quantity: int, idempotency_key: str
    ) -> SubscriptionState: ...

    def change_plan(self, change: PlanChange, idempotency_key: str) -> SubscriptionState:
        """Swaps the base price (and adds, re-prices or removes the seat item) in one update. Where the
        change is invoiced at once and charged automatically, Stripe keeps it pending until the invoice
        is paid (`pending_update`): a failed payment leaves the plan as it was."""
        ...

    def subscription_state(self, subscription_id: str, prices: PlanPrices) -> SubscriptionState | None:
        """The subscription as Stripe holds it now (items told apart by `prices`), None if it is gone."""
        ...

    def preview_change(self, customer_id: str, change: PlanChange) -> PlanPreview:
        """Stripe's invoice preview of `change` (its proration_date set), writing nothing."""
        ...

    def price_terms(self, price_id: str) -> PriceTerms:
        """What the price bills per interval (cached per container: prices do not change amounts)."""
        ...

    def schedule_plan_change(self, change: ScheduledPlanChange, idempotency_key: str) -> ScheduledPlan:
        """Moves the subscription to the change's prices when its current period ends, with its
        subscription schedule (made from the subscription if it has none live): the current phase
        until then, the new prices after, then released. A live schedule's later phases are replaced."""
        ...

    def release_schedule(self, schedule_id: str, idempotency_key: str) -> None:
        """Detaches the schedule from its subscription, which keeps its items as they are now (the
        scheduled change is withdrawn); a schedule no longer live is left as it is."""
        ...

    def use_payment_method(
        self, customer_id: str, subscription_id: str | None, payment_method_id: str, idempotency_key: str
    ) -> None:
        """Makes the payment method the customer's default for invoices and, with a subscription, moves
        it to charging automatically."""
        ...

    def cancel_subscription(self, subscription_id: str, idempotency_key: str) -> str:
        """Cancels as the deployment's policy says; returns the subscription's status after."""
        ...

    def cancel_unbilled(self, subscription_id: str, idempotency_key: str) -> str:
        """Cancels at once without a final invoice or prorations and voids the subscription's open
        invoices: the tenant was never served. Returns the subscription's status."""
        ...

    def close_customer(self, customer_id: str, closed_at: datetime, idempotency_key: str) -> bool:
        """Marks the customer offboarded or deletes it, per policy; True when it was deleted."""
        ...

    def item_quantity(self, item_id: str) -> int | None:
        """The subscription item's quantity, or None when the item no longer exists."""
        ...

    def set_quantity(self, item_id: str, quantity: int, idempotency_key: str) -> bool:
        """Sets a licensed item's quantity (prorated per policy); False when the item no longer exists."""
        ...

    def send_meter_events(self, events: Sequence[MeterEvent]) -> None:
        """Sends usage to Stripe's meters, batched; Stripe ignores an identifier it has seen."""
        ...


class SeatLedger(Protocol):
    """A tenant's users (one record per user, last fact wins) and the coalescing of seat syncs."""

    def record_user(self, tenant_id: str, user_id: str, present: bool, stamp: str) -> bool:
        """Records the fact; True when it changed the user's presence or stamp (False: old or duplicate)."""
        ...

    def count(self, tenant_id: str) -> int: ...

    def claim_sync(self, tenant_id: str, changed: bool) -> bool:
        """Notes a change (changed) and claims the scheduling of a sync; True when none was scheduled."""
        ...

    def release_claim(self, tenant_id: str) -> None:
        """Undoes claim_sync when the sync could not be scheduled."""
        ...

    def sync_version(self, tenant_id: str) -> tuple[int, int | None, str | None]:
        """(version of the users' changes, last quantity applied, item it was applied to)."""
        ...

    def sync_scheduled(self, tenant_id: str) -> bool:
        """Whether a seat sync is scheduled (users changed, their count not yet applied)."""
        ...

    def finish_sync(self, tenant_id: str, version: int, quantity: int | None, item_id: str | None) -> bool:
        """Records what a sync applied and ends it, if no change came since `version` (else False)."""
        ...


class SyncScheduler(Protocol):
    def schedule(self, tenant_id: str, delay_seconds: int) -> None: ...


class UsageOutbox(Protocol):
    """Usage kept until Stripe has it: added once per identifier, sent, or rejected with a reason."""

    def add(self, records: Sequence[UsageRecord]) -> list[UsageRecord]:
        """Keeps the records not seen before; returns those."""
        ...

    def pending(self, tenant_id: str) -> list[UsageRecord]: ...

    def pending_tenants(self) -> list[str]: ...

    def mark_sent(self, records: Sequence[UsageRecord]) -> None: ...

    def mark_rejected(self, record: UsageRecord, reason: str) -> bool:
        """Records the rejection; False when the record was already rejected (nothing changed)."""
        ...

    def find(self, identifier: str) -> UsageRecord | None:
        """The record Stripe knows by `identifier` (its meter event identifier), whatever its tenant."""
        ...


class MeterDirectory(Protocol):
    def meter_states(self, event_names: Sequence[str]) -> dict[str, MeterStatus]:
        """Whether Stripe has a usable meter for each event name."""
        ...


class EventPublisher(Protocol):
    def publish(self, detail_type: str, detail: Mapping[str, object]) -> None: ...


class Clock(Protocol):
    def now(self) -> datetime: ...


class RegistrationStore(Protocol):
    """SBT's registration ids, each linked to its tenant by the onboarding request, and the facts of
    provisioning events that named a registration before its link was known."""

    def link(self, registration_id: str, tenant_id: str) -> Sequence[Facts]:
        """Links the registration to its tenant; returns the facts kept under it so far (oldest first)."""
        ...

    def park(self, registration_id: str, facts: Facts) -> str | None:
        """The tenant the registration is linked to; when none is yet, keeps `facts` under the
        registration (once, however often they come) and returns None. Atomic with `link`: a fact
        is either kept for the link to return or answered with the tenant."""
        ...


class StripeLookup(Protocol):
    """The few reads a webhook may need from Stripe (never a write)."""

    def tenant_of_customer(self, customer_id: str) -> str | None:
        """metadata.tenantId of the customer, if it has one."""
        ...

    def subscription_object(self, subscription_id: str) -> Mapping[str, Any] | None:
        """The subscription as Stripe holds it now (for two events of the same second)."""
        ...

    def setup_intent_payment_method(self, setup_intent_id: str) -> str | None:
        """The payment method a succeeded SetupIntent (a completed Checkout in setup mode) saved."""
        ...

    def price_lookup_key(self, price_id: str) -> str | None:
        """The price's lookup key (a schedule's phases name prices by id only)."""
        ...


class LifecycleInbox(Protocol):
    """Facts the webhook hands to the lifecycle, which alone writes to Stripe (the webhook's key may only
    read): each is applied as an event of the tenant update function."""

    def payment_method_given(
        self, tenant_id: str, payment_method_id: str, at: datetime, event_id: str
    ) -> None: ...


# -- reconciling and adopting ---------------------------------------------------------------------------


class StripeListings(Protocol):
    """Stripe read a page at a time (100 objects a request), for reconciling and adopting."""

    def subscriptions(self, after: str | None) -> Page[ObservedSubscription]:
        """Every subscription, whatever its status, newest first, its customer expanded."""
        ...

    def observe_subscription(self, subscription_id: str) -> ObservedSubscription | None:
        """One subscription, its customer expanded; None when Stripe has none by that id."""
        ...

    def events(
        self, window: EventWindow, after: str | None = None, before: str | None = None
    ) -> Page[Mapping[str, Any]]:
        """Stripe's events of the types the webhook handles created in the window (for an UNDELIVERED
        window, only those Stripe has not delivered to every endpoint), newest first: the page older
        than the event `after`, or the page newer than the event `before` (`has_more`: more that way)."""
        ...


class AccountDirectory(Protocol):
    """The accounts read many at a time (a reconcile run's view of the account store)."""

    def get_many(self, tenant_ids: Sequence[str]) -> dict[str, Account]:
        """The accounts of these tenants (up to 100) that exist, as last written."""
        ...

    def refs(self, after: str | None, limit: int) -> Page[AccountRef]:
        """Up to `limit` accounts after the tenant `after`, in the store's own order: their references."""
        ...


class AppliedMarks(Protocol):
    """The newest Stripe event applied (by the webhook or a replay): where a replay starts."""

    def applied_mark(self) -> StripeStamp | None: ...

    def advance_applied_mark(self, stamp: StripeStamp) -> None:
        """Moves the mark to `stamp` if it is newer (by `created`) than the mark."""
        ...


class ReconcileStore(AppliedMarks, Protocol):
    """Where reconciling keeps its place: the pass, the subscriptions its listing showed, and the last
    Stripe event applied (by the webhook or a replay)."""

    def load_pass(self) -> PassState | None: ...

    def save_pass(self, state: PassState, expected_revision: int | None) -> PassState:
        """Writes the pass if its stored revision is still `expected_revision` (None: there is none);
        raises RevisionConflict otherwise. Returns the pass as written."""
        ...

    def add_seen(self, pass_id: str, page: int, subscription_ids: Sequence[str]) -> None: ...

    def seen(self, pass_id: str, pages: int) -> set[str]: ...
