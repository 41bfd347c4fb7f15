"""Stripe's side of self-service plans: what a price bills, a change at the period's end (a subscription
schedule), its withdrawal, and a payment method the tenant gave made the one invoices are charged to.

A mixin of StripeBillingGateway: the same client, every request through the same seam (`_call`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from threading import Lock
from typing import TYPE_CHECKING, Any, TypeVar

import stripe

from sbt_billing.domain.errors import PermanentBillingError
from sbt_billing.domain.models import LIVE_SCHEDULES
from sbt_billing.domain.plan_timing import PriceTerms, ScheduledPlan, ScheduledPlanChange

if TYPE_CHECKING:
    from stripe.params import SubscriptionScheduleUpdateParamsPhase, SubscriptionScheduleUpdateParamsPhaseItem

T = TypeVar("T")


class StripePlans:
    _client: stripe.StripeClient
    _terms: dict[str, PriceTerms]
    _terms_lock: Lock

    def _call(self, request: Callable[[], T]) -> T:  # the gateway's seam
        raise NotImplementedError

    # -- prices -----------------------------------------------------------------------------------

    def price_terms(self, price_id: str) -> PriceTerms:
        """A price's amount, interval and product, cached for the container's life (a price's amount
        cannot change in Stripe: a new amount is a new price)."""
        with self._terms_lock:
            cached = self._terms.get(price_id)
        if cached is not None:
            return cached
        return self.remember_terms(self._call(lambda: self._client.v1.prices.retrieve(price_id)))

    def remember_terms(self, price: stripe.Price) -> PriceTerms:
        """The price's terms, kept for the container's life (also from a listing that returned it)."""
        recurring = price.recurring
        product = price.product
        terms = PriceTerms(
            price_id=price.id,
            amount=price.unit_amount,
            currency=price.currency,
            interval=recurring.interval if recurring else None,
            interval_count=recurring.interval_count if recurring else 1,
            product=product if isinstance(product, str) else product.id,
        )
        with self._terms_lock:
            self._terms[price.id] = terms
        return terms

    # -- a change at the period's end ---------------------------------------------------------------

    def schedule_plan_change(self, change: ScheduledPlanChange, idempotency_key: str) -> ScheduledPlan:
        """The subscription's schedule (a live one, e.g. the portal's, else one made from it), its current
        phase kept until the period ends and the change's prices for the period after, then released."""
        subscription = self._call(
            lambda: self._client.v1.subscriptions.retrieve(
                change.subscription_id, params={"expand": ["schedule"]}
            )
        )
        schedule = subscription.schedule
        if not isinstance(schedule, stripe.SubscriptionSchedule) or schedule.status not in LIVE_SCHEDULES:
            schedule = self._call(
                lambda: self._client.v1.subscription_schedules.create(
                    params={"from_subscription": change.subscription_id},
                    options={"idempotency_key": f"{idempotency_key}:create"},
                )
            )
        current = _current_phase(schedule)
        now_items = [_phase_item(item) for item in current.items]
        phases: list[SubscriptionScheduleUpdateParamsPhase] = [
            {
                "items": now_items,
                "start_date": current.start_date,
                "end_date": current.end_date,
                "proration_behavior": "none",
            },
            {"items": _changed_items(now_items, change), "proration_behavior": "none"},
        ]
        schedule_id = schedule.id
        updated = self._call(
            lambda: self._client.v1.subscription_schedules.update(
                schedule_id,
                params={
                    "phases": phases,
                    "end_behavior": "release",
                    "proration_behavior": "none",
                    "metadata": {"tenantId": change.tenant_id, "sbtBillingTier": change.tier},
                },
                options={"idempotency_key": f"{idempotency_key}:phases"},
            )
        )
        return ScheduledPlan(
            schedule_id=updated.id, at=datetime.fromtimestamp(_current_phase(updated).end_date, UTC)
        )

    def release_schedule(self, schedule_id: str, idempotency_key: str) -> None:
        try:
            self._call(
                lambda: self._client.v1.subscription_schedules.release(
                    schedule_id, options={"idempotency_key": idempotency_key}
                )
            )
        except PermanentBillingError:
            # Released, canceled or completed already (by the portal, or its last phase ended): done.
            found = self._call(lambda: self._client.v1.subscription_schedules.retrieve(schedule_id))
            if found.status in LIVE_SCHEDULES:
                raise

    # -- the payment method the tenant gave -----------------------------------------------------------

    def use_payment_method(
        self, customer_id: str, subscription_id: str | None, payment_method_id: str, idempotency_key: str
    ) -> None:
        self._call(
            lambda: self._client.v1.customers.update(
                customer_id,
                params={"invoice_settings": {"default_payment_method": payment_method_id}},
                options={"idempotency_key": f"{idempotency_key}:customer"},
            )
        )
        if subscription_id is None:
            return
        self._call(
            lambda: self._client.v1.subscriptions.update(
                subscription_id,
                params={"collection_method": "charge_automatically"},
                options={"idempotency_key": f"{idempotency_key}:subscription"},
            )
        )


def _current_phase(schedule: stripe.SubscriptionSchedule) -> Any:
    """The schedule's phase now (the first one for a schedule that has not started)."""
    current = schedule.current_phase
    for phase in schedule.phases:
        if current is None or phase.start_date == current.start_date:
            return phase
    raise PermanentBillingError(f"the subscription schedule {schedule.id} has no current phase")


def _phase_item(item: Any) -> SubscriptionScheduleUpdateParamsPhaseItem:
    price = item.price if isinstance(item.price, str) else item.price.id
    entry: SubscriptionScheduleUpdateParamsPhaseItem = {"price": price}
    if item.quantity is not None:
        entry["quantity"] = item.quantity
    return entry


def _changed_items(
    items: list[SubscriptionScheduleUpdateParamsPhaseItem], change: ScheduledPlanChange
) -> list[SubscriptionScheduleUpdateParamsPhaseItem]:
    """The current phase's items with the base (and seat) price swapped for the tier's; metered items
    stay as they are."""
    changed: list[SubscriptionScheduleUpdateParamsPhaseItem] = []
    for item in items:
        price = item.get("price")
        if price == change.from_base:
            changed.append({**item, "price": change.to_base})
        elif change.from_seat is not None and price == change.from_seat:
            if change.to_seat is not None:
                changed.append({**item, "price": change.to_seat})
        else:
            changed.append(item)
    if change.to_seat is not None and change.from_seat is None:
        changed.append({"price": change.to_seat, "quantity": change.seat_quantity})
    return changed
