"""Every Stripe call the product makes, and the one place Stripe's errors are translated.

Every request goes through the seam (stripe_seam.py), where Stripe's errors become the domain's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from datetime import UTC, datetime
from threading import Lock
from typing import TYPE_CHECKING, TypeVar

import stripe

from sbt_billing.adapters.pacing import Pacer
from sbt_billing.adapters.stripe_meters import StripeMeters
from sbt_billing.adapters.stripe_plans import StripePlans
from sbt_billing.adapters.stripe_seam import SessionExpired, call
from sbt_billing.domain.billing_policy import (
    BillingPolicy,
    CancellationMode,
    CollectionMode,
    CustomerOnDelete,
    ProrationBehavior,
)
from sbt_billing.domain.errors import PermanentBillingError, ResourceMissing
from sbt_billing.domain.models import CustomerDetails, digest_of
from sbt_billing.domain.plan_timing import PriceTerms
from sbt_billing.domain.stripe_json import from_epoch, invoice_fact, metadata_tenant
from sbt_billing.domain.usage_values import MeterEvent
from sbt_billing.domain.values import InvoiceAmount, PlanChange, PlanPreview, PlanPrices, SubscriptionState

if TYPE_CHECKING:
    from stripe.params import (
        CustomerCreateParams,
        CustomerCreateParamsAddress,
        CustomerUpdateParams,
        InvoiceCreatePreviewParamsSubscriptionDetails,
        SubscriptionCreateParams,
        SubscriptionCreateParamsItem,
        SubscriptionUpdateParams,
        SubscriptionUpdateParamsItem,
    )
    from stripe.params.v2.billing import MeterEventStreamCreateParams

T = TypeVar("T")

PRICE_CACHE_SECONDS = 300.0
SEARCH_LIMIT = 10  # candidates a recovery search reads (one tenant's customers: one, rarely more)
SESSION_MARGIN_SECONDS = 60.0


class StripeBillingGateway(StripePlans, StripeMeters):
    def __init__(
        self,
        client: stripe.StripeClient,
        policy: BillingPolicy | Callable[[], BillingPolicy],
        rate_limit_retries: int = 4,
        sleep: Callable[[float], None] = time.sleep,
        pacer: Pacer | None = None,
    ) -> None:
        self._client = client
        self._pacer = pacer  # every request (each retry of a 429 included) waits for its turn
        # A factory is called at the first request that needs the choices: a function that only reads
        # or sends usage never needs them (nor their settings).
        self._policy_source = policy
        self._rate_limit_retries = rate_limit_retries
        self._sleep = sleep
        self._prices: dict[str, tuple[str, float]] = {}
        self._prices_lock = Lock()
        self._terms: dict[str, PriceTerms] = {}
        self._terms_lock = Lock()
        self._session: tuple[str, float] | None = None

    def _policy(self) -> BillingPolicy:
        if not isinstance(self._policy_source, BillingPolicy):
            self._policy_source = self._policy_source()
        return self._policy_source

    # -- catalogue --------------------------------------------------------------------------------

    def price_for(self, lookup_key_or_id: str) -> str:
        """A price id for a lookup key, cached for a few minutes per container; ids pass through."""
        if lookup_key_or_id.startswith("price_"):
            return lookup_key_or_id
        now = time.monotonic()
        with self._prices_lock:
            cached = self._prices.get(lookup_key_or_id)
            if cached is not None and now - cached[1] < PRICE_CACHE_SECONDS:
                return cached[0]
        prices = self._call(
            lambda: self._client.v1.prices.list(params={"lookup_keys": [lookup_key_or_id], "active": True})
        )
        if not prices.data:
            raise PermanentBillingError(f"no active Stripe price has the lookup key {lookup_key_or_id!r}")
        price_id = prices.data[0].id
        with self._prices_lock:
            self._prices[lookup_key_or_id] = (price_id, now)
        self.remember_terms(prices.data[0])  # what it bills, without a read of its own later
        return price_id

    # -- customers --------------------------------------------------------------------------------

    def find_customer(self, tenant_id: str) -> str | None:
        """The customer whose metadata.tenantId is exactly `tenant_id` (what the search returns is only
        a candidate: its matching need not be exact), for recovering an interrupted opening."""
        query = f"metadata['tenantId']:'{_quoted(tenant_id)}'"
        found = self._call(
            lambda: self._client.v1.customers.search(params={"query": query, "limit": SEARCH_LIMIT})
        )
        exact = [
            customer.id
            for customer in found.data
            if metadata_tenant(customer.to_dict(recursive=True)) == tenant_id
        ]
        return exact[0] if exact else None

    def create_customer(self, tenant_id: str, details: CustomerDetails, idempotency_key: str) -> str:
        params: CustomerCreateParams = {"metadata": {"tenantId": tenant_id}}
        _state_details(params, details)
        customer = self._call(
            lambda: self._client.v1.customers.create(
                params=params, options={"idempotency_key": idempotency_key}
            )
        )
        return customer.id

    def update_customer(self, customer_id: str, details: CustomerDetails, idempotency_key: str) -> None:
        params: CustomerUpdateParams = {}
        _state_details(params, details)
        if not params:
            return
        self._call(
            lambda: self._client.v1.customers.update(
                customer_id, params=params, options={"idempotency_key": idempotency_key}
            )
        )

    def link_customer(self, customer_id: str, tenant_id: str, idempotency_key: str) -> None:
        """metadata.tenantId set on an existing customer (adoption): a read, and a write only when it
        is not the tenant's yet. A deleted customer, or one naming another tenant, is refused."""
        found = self._call(lambda: self._client.v1.customers.retrieve(customer_id)).to_dict(recursive=True)
        if found.get("deleted"):
            raise PermanentBillingError(f"customer {customer_id} is deleted")
        named = metadata_tenant(found)
        if named == tenant_id:
            return
        if named:
            raise PermanentBillingError(f"customer {customer_id} names another tenant in metadata.tenantId")
        self._call(
            lambda: self._client.v1.customers.update(
                customer_id,
                params={"metadata": {"tenantId": tenant_id}},
                options={"idempotency_key": idempotency_key},
            )
        )

    def close_customer(self, customer_id: str, closed_at: datetime, idempotency_key: str) -> bool:
        if self._policy().customer_on_delete is CustomerOnDelete.DELETE:
            with suppress(ResourceMissing):  # deleted already
                self._call(
                    lambda: self._client.v1.customers.delete(
                        customer_id, options={"idempotency_key": idempotency_key}
                    )
                )
            return True
        self._call(
            lambda: self._client.v1.customers.update(
                customer_id,
                params={"metadata": {"offboarded": "true", "offboardedAt": closed_at.isoformat()}},
                options={"idempotency_key": idempotency_key},
            )
        )
        return False

    # -- subscriptions ----------------------------------------------------------------------------

    def find_subscription(
        self, customer_id: str, prices: PlanPrices | None = None
    ) -> SubscriptionState | None:
        found = self._call(
            lambda: self._client.v1.subscriptions.list(
                params={"customer": customer_id, "status": "all", "limit": 10}
            )
        )
        for subscription in found.data:
            if subscription.status in ("canceled", "incomplete_expired"):
                continue
            item_prices = {item.price.id for item in subscription["items"].data}
            if prices is not None and prices.base not in item_prices:
                continue  # not the plan's: another subscription of the customer (an add-on)
            first = subscription["items"].data[0].price.id
            return _state(subscription, prices or PlanPrices(base=first))
        return None

    def create_subscription(
        self, tenant_id: str, customer_id: str, prices: PlanPrices, seat_quantity: int, idempotency_key: str
    ) -> SubscriptionState:
        items: list[SubscriptionCreateParamsItem] = [{"price": prices.base, "quantity": 1}]
        if prices.seats is not None:
            items.append({"price": prices.seats, "quantity": seat_quantity})
        items.extend({"price": metered} for metered in prices.metered)
        params: SubscriptionCreateParams = {
            "customer": customer_id,
            "items": items,
            "metadata": {"tenantId": tenant_id},
        }
        if self._policy().collection_mode is CollectionMode.SEND_INVOICE:
            params["collection_method"] = "send_invoice"
            params["days_until_due"] = self._policy().days_until_due
        else:
            params["collection_method"] = "charge_automatically"
            params["trial_period_days"] = self._policy().trial_days
            params["trial_settings"] = {"end_behavior": {"missing_payment_method": "pause"}}
        subscription = self._call(
            lambda: self._client.v1.subscriptions.create(
                params=params, options={"idempotency_key": idempotency_key}
            )
        )
        return _state(subscription, prices)

    def change_plan(self, change: PlanChange, idempotency_key: str) -> SubscriptionState:
        """One update; the latest invoice comes expanded in its answer (no second request) so that what
        the change invoiced at once, or waits to be paid, is known."""
        items = _plan_items(change)
        params: SubscriptionUpdateParams = {
            "items": items,
            "proration_behavior": self._policy().proration_behavior.value,
            "expand": ["latest_invoice"],
        }
        if change.proration_date is not None:
            params["proration_date"] = int(change.proration_date.timestamp())
        if self._pending_updates(items):
            params["payment_behavior"] = "pending_if_incomplete"
        subscription = self._call(
            lambda: self._client.v1.subscriptions.update(
                change.subscription_id, params=params, options={"idempotency_key": idempotency_key}
            )
        )
        return _state(subscription, PlanPrices(base=change.base_price, seats=change.seat_price))

    def _pending_updates(self, items: Sequence[SubscriptionUpdateParamsItem]) -> bool:
        """Stripe's pending updates (a failed payment leaves the plan as it was) apply to changes that
        are invoiced and charged at once: proration_behavior always_invoice on charge_automatically
        subscriptions (this deployment's trial mode). Stripe supports them neither for send_invoice
        subscriptions nor for item deletions (only price and quantity may change), so they are not
        asked for there."""
        return (
            self._policy().proration_behavior is ProrationBehavior.ALWAYS_INVOICE
            and self._policy().collection_mode is CollectionMode.TRIAL
            and not any(item.get("deleted") for item in items)
        )

    def subscription_state(self, subscription_id: str, prices: PlanPrices) -> SubscriptionState | None:
        try:
            subscription = self._call(lambda: self._client.v1.subscriptions.retrieve(subscription_id))
        except ResourceMissing:
            return None
        return _state(subscription, prices)

    def preview_change(self, customer_id: str, change: PlanChange) -> PlanPreview:
        """Stripe's invoice preview of the update change_plan would send, at change.proration_date. With
        always_invoice, two previews: the invoice made at once, and the next regular one."""
        assert change.proration_date is not None
        behavior = self._policy().proration_behavior
        details: InvoiceCreatePreviewParamsSubscriptionDetails = {
            "items": _plan_items(change),
            "proration_behavior": behavior.value,
            "proration_date": int(change.proration_date.timestamp()),
        }

        def preview(details: InvoiceCreatePreviewParamsSubscriptionDetails) -> InvoiceAmount:
            invoice = self._call(
                lambda: self._client.v1.invoices.create_preview(
                    params={
                        "customer": customer_id,
                        "subscription": change.subscription_id,
                        "subscription_details": details,
                    }
                )
            )
            return InvoiceAmount(
                amount_due=invoice.amount_due,
                currency=invoice.currency,
                period_end=from_epoch(invoice.period_end),
            )

        due_now = None
        if behavior is ProrationBehavior.ALWAYS_INVOICE:
            due_now = preview(details)
            details = {**details, "proration_behavior": ProrationBehavior.NONE.value}
        return PlanPreview(
            proration_date=change.proration_date,
            proration_behavior=behavior.value,
            due_now=due_now,
            next_invoice=preview(details),
        )

    # -- seats and usage --------------------------------------------------------------------------

    def item_quantity(self, item_id: str) -> int | None:
        try:
            item = self._call(lambda: self._client.v1.subscription_items.retrieve(item_id))
        except ResourceMissing:
            return None
        return int(item.quantity or 0)

    def set_quantity(self, item_id: str, quantity: int, idempotency_key: str) -> bool:
        try:
            self._call(
                lambda: self._client.v1.subscription_items.update(
                    item_id,
                    params={
                        "quantity": quantity,
                        "proration_behavior": self._policy().proration_behavior.value,
                    },
                    options={"idempotency_key": idempotency_key},
                )
            )
        except ResourceMissing:
            return False
        return True

    def send_meter_events(self, events: Sequence[MeterEvent]) -> None:
        """Stripe's high-throughput meter event stream: up to 100 events a request, authenticated by a
        short-lived session token that is cached until a minute before it expires."""
        if not events:
            return
        token = self._meter_session_token()
        payload: MeterEventStreamCreateParams = {
            "events": [
                {
                    "event_name": event.event_name,
                    "identifier": event.identifier,
                    "payload": {"stripe_customer_id": event.customer_id, "value": event.value},
                    "timestamp": event.timestamp.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                }
                for event in events
            ]
        }
        # The same batch, sent again, carries the same key (Stripe also ignores identifiers it has seen).
        key = "sbt-billing:meter-events:" + digest_of(sorted(event.identifier for event in events))
        try:
            self._call(
                lambda: self._client.v2.billing.meter_event_stream.create(
                    payload, options={"api_key": token, "idempotency_key": key}
                )
            )
        except SessionExpired:
            # The session expired early (or was revoked): one retry with a fresh token.
            self._session = None
            token = self._meter_session_token()
            self._call(
                lambda: self._client.v2.billing.meter_event_stream.create(
                    payload, options={"api_key": token, "idempotency_key": key}
                )
            )

    def _meter_session_token(self) -> str:
        with self._prices_lock:
            session = self._session
        if session is not None and session[1] - time.time() > SESSION_MARGIN_SECONDS:
            return session[0]
        created = self._call(lambda: self._client.v2.billing.meter_event_session.create())
        # The v2 API gives times as RFC 3339 text.
        expires = datetime.fromisoformat(str(created.expires_at).replace("Z", "+00:00")).timestamp()
        with self._prices_lock:
            self._session = (created.authentication_token, expires)
        return created.authentication_token

    def cancel_subscription(self, subscription_id: str, idempotency_key: str) -> str:
        options: stripe.RequestOptions = {"idempotency_key": idempotency_key}
        try:
            if self._policy().cancellation_mode is CancellationMode.PERIOD_END:
                updated = self._call(
                    lambda: self._client.v1.subscriptions.update(
                        subscription_id, params={"cancel_at_period_end": True}, options=options
                    )
                )
                return updated.status
            canceled = self._call(
                lambda: self._client.v1.subscriptions.cancel(
                    subscription_id, params={"invoice_now": True, "prorate": True}, options=options
                )
            )
            return canceled.status
        except PermanentBillingError:
            # Cancelled already (in the dashboard, or by Stripe after failed payments): that is the goal.
            current = self._call(lambda: self._client.v1.subscriptions.retrieve(subscription_id))
            if current.status == "canceled":
                return current.status
            raise

    def cancel_unbilled(self, subscription_id: str, idempotency_key: str) -> str:
        options: stripe.RequestOptions = {"idempotency_key": idempotency_key}
        try:
            status = self._call(
                lambda: self._client.v1.subscriptions.cancel(
                    subscription_id, params={"invoice_now": False, "prorate": False}, options=options
                )
            ).status
        except PermanentBillingError:
            current = self._call(lambda: self._client.v1.subscriptions.retrieve(subscription_id))
            if current.status != "canceled":
                raise
            status = current.status
        open_invoices = self._call(
            lambda: self._client.v1.invoices.list(
                params={"subscription": subscription_id, "status": "open", "limit": 100}
            )
        )
        for invoice in open_invoices.data:
            invoice_id = invoice.id
            if invoice_id is None:
                continue
            key = f"{idempotency_key}:void:{invoice_id}"
            self._call(
                lambda invoice_id=invoice_id, key=key: self._client.v1.invoices.void_invoice(  # type: ignore[misc]
                    invoice_id, options={"idempotency_key": key}
                )
            )
        return status

    # -- the seam ---------------------------------------------------------------------------------

    def _call(self, request: Callable[[], T]) -> T:
        pacer = self._pacer
        if pacer is None:
            return call(request, self._rate_limit_retries, self._sleep)

        def paced() -> T:
            pacer.acquire()
            return request()

        return call(paced, self._rate_limit_retries, self._sleep)


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _state_details(params: CustomerCreateParams | CustomerUpdateParams, details: CustomerDetails) -> None:
    """Adds the customer's stated details to the params (an absent detail is left as Stripe has it)."""
    if details.name is not None:
        params["name"] = details.name
    if details.email is not None:
        params["email"] = details.email
    if details.address is not None:
        params["address"] = _address(details)


def _address(details: CustomerDetails) -> CustomerCreateParamsAddress:
    assert details.address is not None
    address: CustomerCreateParamsAddress = {}
    for field in ("line1", "line2", "city", "state", "postal_code", "country"):
        value = getattr(details.address, field)
        if value is not None:
            address[field] = value
    return address


def _plan_items(change: PlanChange) -> list[SubscriptionUpdateParamsItem]:
    """The items of the one update that moves a subscription to a tier's prices."""
    items: list[SubscriptionUpdateParamsItem] = [{"id": change.base_item_id, "price": change.base_price}]
    if change.seat_price is not None and change.seat_item_id is not None:
        items.append({"id": change.seat_item_id, "price": change.seat_price})
    elif change.seat_price is not None:
        items.append({"price": change.seat_price, "quantity": change.seat_quantity})
    elif change.seat_item_id is not None:
        items.append({"id": change.seat_item_id, "deleted": True})
    return items


def _state(subscription: stripe.Subscription, prices: PlanPrices) -> SubscriptionState:
    """The subscription's items told apart by price: base, seats, metered; with its pending update and,
    when expanded, the latest invoice a plan change made."""
    by_price = {item.price.id: item.id for item in subscription["items"].data}
    base = by_price.get(prices.base) or subscription["items"].data[0].id
    pending = getattr(subscription, "pending_update", None)
    latest = getattr(subscription, "latest_invoice", None)
    return SubscriptionState(
        subscription_id=subscription.id,
        item_id=base,
        status=subscription.status,
        price_id=prices.base if prices.base in by_price else subscription["items"].data[0].price.id,
        seat_item_id=by_price.get(prices.seats) if prices.seats else None,
        metered_items={price: by_price[price] for price in prices.metered if price in by_price},
        latest_invoice=invoice_fact(latest.to_dict())
        if isinstance(latest, stripe.Invoice) and latest.billing_reason == "subscription_update"
        else None,
        pending_update=bool(pending),
        pending_update_expires_at=from_epoch(pending.expires_at) if pending else None,
    )
