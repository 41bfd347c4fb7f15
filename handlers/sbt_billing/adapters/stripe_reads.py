"""Stripe, read-only: what the billing API shows and the few look-ups a webhook needs.

The read side of StripeBillingGateway: the same client, and its errors translated at the same seam.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import Any

import stripe

from sbt_billing.adapters.stripe_billing import StripeBillingGateway, _time, invoice_fact
from sbt_billing.domain.billing_view import (
    CustomerView,
    InvoicePage,
    PriceView,
    SubscriptionView,
    UpcomingInvoice,
)
from sbt_billing.domain.errors import ResourceMissing
from sbt_billing.domain.meter_errors import MeterErrorReport, MeterErrorSample
from sbt_billing.domain.models import Address


class StripeBillingReader(StripeBillingGateway):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lookup_keys: dict[str, str] = {}  # price id -> lookup key ("" for none)

    # -- BillingReader ----------------------------------------------------------------------------

    def customer(self, customer_id: str) -> CustomerView | None:
        found = self._object(lambda: self._client.v1.customers.retrieve(customer_id))
        if found is None or found.get("deleted"):
            return None
        address = found.get("address")
        return CustomerView(
            customer_id=str(found["id"]),
            name=found.get("name"),
            email=found.get("email"),
            address=Address.model_validate(
                {key: address.get(key) for key in Address.model_fields if address.get(key) is not None}
            )
            if isinstance(address, dict)
            else None,
        )

    def subscription(self, subscription_id: str) -> SubscriptionView | None:
        found = self._object(lambda: self._client.v1.subscriptions.retrieve(subscription_id))
        if found is None:
            return None
        items = (found.get("items") or {}).get("data") or []
        item: dict[str, Any] = items[0] if items else {}
        price = item.get("price")
        recurring = (price.get("recurring") or {}) if isinstance(price, dict) else {}
        return SubscriptionView(
            subscription_id=str(found["id"]),
            status=str(found["status"]),
            price=PriceView(
                price_id=str(price["id"]),
                lookup_key=price.get("lookup_key"),
                amount=price.get("unit_amount"),
                currency=price.get("currency"),
                interval=recurring.get("interval"),
                interval_count=recurring.get("interval_count"),
            )
            if isinstance(price, dict)
            else None,
            quantity=item.get("quantity"),
            current_period_start=_time(item.get("current_period_start") or found.get("current_period_start")),
            current_period_end=_time(item.get("current_period_end") or found.get("current_period_end")),
            cancel_at_period_end=bool(found.get("cancel_at_period_end")),
        )

    def upcoming_invoice(self, customer_id: str, subscription_id: str) -> UpcomingInvoice | None:
        preview = self._object(
            lambda: self._client.v1.invoices.create_preview(
                params={"customer": customer_id, "subscription": subscription_id}
            )
        )
        if preview is None:
            return None
        return UpcomingInvoice(
            amount_due=int(preview.get("amount_due") or 0),
            currency=str(preview.get("currency")),
            period_end=_time(preview.get("period_end")),
        )

    def invoices(self, customer_id: str, limit: int, starting_after: str | None) -> InvoicePage:
        params: stripe.params.InvoiceListParams = {"customer": customer_id, "limit": limit}
        if starting_after is not None:
            params["starting_after"] = starting_after
        page = self._call(lambda: self._client.v1.invoices.list(params=params))
        return InvoicePage(
            invoices=tuple(invoice_fact(invoice) for invoice in page.data),
            has_more=page.has_more,
        )

    def meter_totals(
        self, customer_id: str, event_names: Sequence[str], start: datetime, end: datetime
    ) -> dict[str, float]:
        """Each meter's aggregate for the customer over [start, end), the bounds widened to whole
        minutes as Stripe's event summaries require."""
        meters = self._meter_ids()
        first = int(start.timestamp()) // 60 * 60
        last = -(-int(end.timestamp()) // 60) * 60
        totals: dict[str, float] = {}
        for event_name in event_names:
            meter_id = meters.get(event_name)
            if meter_id is None:
                continue
            params: stripe.params.billing.MeterEventSummaryListParams = {
                "customer": customer_id,
                "start_time": first,
                "end_time": max(last, first + 60),
            }
            listing = partial(self._client.v1.billing.meters.event_summaries.list, meter_id, params=params)
            summaries = self._call(listing)
            totals[event_name] = float(sum(summary.aggregated_value for summary in summaries.data))
        return totals

    # -- meter error reports ---------------------------------------------------

    def meter_error_report(self, event_id: str) -> MeterErrorReport:
        """The full data of a meter error thin event (`/v2/core/events/{id}`)."""
        event = self._call(lambda: self._client.v2.core.events.retrieve(event_id)).to_dict()
        data = event.get("data") or {}
        reason = data.get("reason") or {}
        related = event.get("related_object") or {}
        samples = [
            MeterErrorSample(code=str(kind.get("code")), identifier=str(sample["request"]["identifier"]))
            for kind in reason.get("error_types") or []
            for sample in kind.get("sample_errors") or []
            if isinstance((sample.get("request") or {}).get("identifier"), str)
        ]
        return MeterErrorReport(
            event_id=event_id,
            meter_id=related.get("id"),
            error_count=int(reason.get("error_count") or len(samples)),
            samples=tuple(samples),
        )

    # -- StripeLookup (webhooks) ------------------------------------------------------------------

    def tenant_of_customer(self, customer_id: str) -> str | None:
        found = self._object(lambda: self._client.v1.customers.retrieve(customer_id))
        tenant = (found.get("metadata") or {}).get("tenantId") if found is not None else None
        return tenant if isinstance(tenant, str) and tenant else None

    def subscription_object(self, subscription_id: str) -> Mapping[str, Any] | None:
        return self._object(lambda: self._client.v1.subscriptions.retrieve(subscription_id))

    def setup_intent_payment_method(self, setup_intent_id: str) -> str | None:
        found = self._object(lambda: self._client.v1.setup_intents.retrieve(setup_intent_id))
        if found is None or found.get("status") != "succeeded":
            return None
        method = found.get("payment_method")
        method = method.get("id") if isinstance(method, dict) else method
        return method if isinstance(method, str) and method else None

    def price_lookup_key(self, price_id: str) -> str | None:
        """The price's lookup key, read once per price and container."""
        with self._terms_lock:
            known = self._lookup_keys.get(price_id)
        if known is not None:
            return known or None
        found = self._object(lambda: self._client.v1.prices.retrieve(price_id))
        key = found.get("lookup_key") if found is not None else None
        with self._terms_lock:
            self._lookup_keys[price_id] = key if isinstance(key, str) else ""
        return key if isinstance(key, str) and key else None

    # -- helpers ----------------------------------------------------------------------------------

    def _object(self, request: Callable[[], stripe.StripeObject]) -> dict[str, Any] | None:
        """The object as plain JSON data, or None when Stripe has no such resource."""
        try:
            found = self._call(request)
        except ResourceMissing:
            return None
        return found.to_dict(recursive=True)
