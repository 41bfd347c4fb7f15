"""Stripe, read-only: what the billing API shows and the few look-ups a webhook needs.

The read side of StripeBillingGateway: the same client, and its errors translated at the same seam.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import stripe

from .billing_state import (
    CustomerView,
    InvoicePage,
    InvoiceSummary,
    PriceView,
    SubscriptionView,
    UpcomingInvoice,
)
from .errors import PermanentBillingError
from .models import Address
from .stripe_billing import StripeBillingGateway


class StripeBillingReader(StripeBillingGateway):
    # -- BillingReader ----------------------------------------------------------------------------

    def customer(self, customer_id: str) -> CustomerView | None:
        found = self._retrieve(lambda: self._client.v1.customers.retrieve(customer_id))
        if found is None or getattr(found, "deleted", False):
            return None
        address = found.get("address")
        return CustomerView(
            customer_id=found.id,
            name=found.get("name"),
            email=found.get("email"),
            address=Address.model_validate(
                {key: address.get(key) for key in Address.model_fields if address.get(key) is not None}
            )
            if address
            else None,
        )

    def subscription(self, subscription_id: str) -> SubscriptionView | None:
        found = self._retrieve(lambda: self._client.v1.subscriptions.retrieve(subscription_id))
        if found is None:
            return None
        items = found["items"].data
        item = items[0] if items else None
        price = item.price if item is not None else None
        recurring = price.get("recurring") if price is not None else None
        return SubscriptionView(
            subscription_id=found.id,
            status=found.status,
            price=PriceView(
                price_id=price.id,
                lookup_key=price.get("lookup_key"),
                amount=price.get("unit_amount"),
                currency=price.get("currency"),
                interval=recurring.get("interval") if recurring else None,
                interval_count=recurring.get("interval_count") if recurring else None,
            )
            if price is not None
            else None,
            quantity=item.get("quantity") if item is not None else None,
            current_period_start=_time(item.get("current_period_start") if item is not None else None),
            current_period_end=_time(item.get("current_period_end") if item is not None else None),
            cancel_at_period_end=bool(found.get("cancel_at_period_end")),
        )

    def upcoming_invoice(self, customer_id: str, subscription_id: str) -> UpcomingInvoice | None:
        preview = self._retrieve(
            lambda: self._client.v1.invoices.create_preview(
                params={"customer": customer_id, "subscription": subscription_id}
            )
        )
        if preview is None:
            return None
        return UpcomingInvoice(
            amount_due=preview.amount_due,
            currency=preview.currency,
            period_end=_time(preview.get("period_end")),
        )

    def invoices(self, customer_id: str, limit: int, starting_after: str | None) -> InvoicePage:
        params: stripe.params.InvoiceListParams = {"customer": customer_id, "limit": limit}
        if starting_after is not None:
            params["starting_after"] = starting_after
        page = self._call(lambda: self._client.v1.invoices.list(params=params))
        return InvoicePage(
            invoices=tuple(
                InvoiceSummary(
                    invoice_id=invoice.id or "",
                    number=invoice.number,
                    status=invoice.status,
                    amount_due=invoice.amount_due,
                    amount_paid=invoice.amount_paid,
                    currency=invoice.currency,
                    due_date=_time(invoice.due_date),
                    hosted_invoice_url=invoice.hosted_invoice_url,
                    created=_time(invoice.created),
                )
                for invoice in page.data
            ),
            has_more=page.has_more,
        )

    # -- StripeLookup (webhooks) ------------------------------------------------------------------

    def tenant_of_customer(self, customer_id: str) -> str | None:
        found = self._retrieve(lambda: self._client.v1.customers.retrieve(customer_id))
        metadata = found.get("metadata") if found is not None else None
        tenant = metadata.get("tenantId") if metadata else None
        return tenant if isinstance(tenant, str) and tenant else None

    def subscription_object(self, subscription_id: str) -> Mapping[str, Any] | None:
        found = self._retrieve(lambda: self._client.v1.subscriptions.retrieve(subscription_id))
        return found.to_dict() if found is not None else None

    # -- helpers ----------------------------------------------------------------------------------

    def _retrieve(self, request: Any) -> Any:
        """The object, or None when Stripe has no such resource."""
        try:
            return self._call(request)
        except PermanentBillingError as error:
            if "resource_missing" in str(error) or " 404" in str(error):
                return None
            raise


def _time(value: Any) -> datetime | None:
    return (
        datetime.fromtimestamp(value, UTC) if isinstance(value, int) and not isinstance(value, bool) else None
    )
