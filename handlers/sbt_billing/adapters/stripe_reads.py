"""Stripe, read-only: what the billing API shows (with the look-ups of stripe_lookups).

The read side of StripeBillingGateway: the same client, and its errors translated at the same seam.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import partial
from typing import Any

import stripe

from sbt_billing.adapters.stripe_lookups import StripeLookups
from sbt_billing.domain.billing_view import (
    CustomerView,
    InvoicePage,
    PriceView,
    SubscriptionView,
    UpcomingInvoice,
)
from sbt_billing.domain.models import Address
from sbt_billing.domain.stripe_json import from_epoch, invoice_fact


class StripeBillingReader(StripeLookups):
    """What the billing API shows: the customer, the subscription, the invoices and the usage."""

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
            current_period_start=from_epoch(
                item.get("current_period_start") or found.get("current_period_start")
            ),
            current_period_end=from_epoch(item.get("current_period_end") or found.get("current_period_end")),
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
            period_end=from_epoch(preview.get("period_end")),
        )

    def invoices(self, customer_id: str, limit: int, starting_after: str | None) -> InvoicePage:
        params: stripe.params.InvoiceListParams = {"customer": customer_id, "limit": limit}
        if starting_after is not None:
            params["starting_after"] = starting_after
        page = self._call(lambda: self._client.v1.invoices.list(params=params))
        return InvoicePage(
            invoices=tuple(invoice_fact(invoice.to_dict()) for invoice in page.data),
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
