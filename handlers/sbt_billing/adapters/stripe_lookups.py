"""Stripe read, for the few look-ups applying Stripe's events needs (the webhook's and a replay's): a
customer's tenant, a subscription, a SetupIntent's payment method, a price's lookup key, a meter error
report. The read side of StripeBillingGateway: the same client, its errors translated at the same seam.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import stripe

from sbt_billing.adapters.stripe_billing import StripeBillingGateway
from sbt_billing.domain.errors import ResourceMissing
from sbt_billing.domain.meter_errors import MeterErrorReport, MeterErrorSample
from sbt_billing.domain.stripe_json import metadata_tenant


class StripeLookups(StripeBillingGateway):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lookup_keys: dict[str, str] = {}  # price id -> lookup key ("" for none)

    # -- meter error reports ----------------------------------------------------------------------

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
        return metadata_tenant(found) if found is not None else None

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
