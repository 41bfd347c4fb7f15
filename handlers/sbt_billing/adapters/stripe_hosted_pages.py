"""Stripe's hosted pages: the customer portal's configuration and sessions, and Checkout Sessions in setup
mode: StripeSelfServiceGateway, the billing gateway with its pages (the same client, the same seam),
for the billing API alone.

The stack's portal configuration is found by its name in `metadata.sbtBillingPortal` (Stripe's list of
configurations filters by nothing else), compared by the digest of what it should offer
(`metadata.sbtBillingDigest`), updated when they differ and created only when none has the name,
under an idempotency key of the name and digest, so that functions starting together make one. What
was found is kept for a few minutes per container.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from threading import Lock
from typing import TYPE_CHECKING, Any, TypeVar, cast

import stripe

from sbt_billing.adapters.stripe_billing import StripeBillingGateway
from sbt_billing.domain.plan_timing import PriceTerms
from sbt_billing.domain.self_service import HostedSession, PortalConfiguration, PortalFlow

if TYPE_CHECKING:
    from stripe.params.billing_portal import (
        ConfigurationCreateParamsFeatures,
        ConfigurationCreateParamsFeaturesSubscriptionUpdateProduct,
        ConfigurationUpdateParamsFeatures,
        SessionCreateParams,
    )

T = TypeVar("T")

CONFIGURATION_CACHE_SECONDS = 300.0
NAME_KEY = "sbtBillingPortal"
DIGEST_KEY = "sbtBillingDigest"


class StripeHostedPages:
    _client: stripe.StripeClient
    _portal: tuple[str, str, float] | None  # (digest, configuration id, when found)
    _portal_lock: Lock

    def _call(self, request: Callable[[], T]) -> T:  # the gateway's seam
        raise NotImplementedError

    def price_terms(self, price_id: str) -> PriceTerms:  # the gateway's (stripe_plans)
        raise NotImplementedError

    # -- the portal ---------------------------------------------------------------------------------

    def portal_configuration(self, configuration: PortalConfiguration) -> str:
        digest = configuration.digest()
        now = time.monotonic()
        with self._portal_lock:
            known = self._portal
        if known is not None and known[0] == digest and now - known[2] < CONFIGURATION_CACHE_SECONDS:
            return known[1]
        found = self._find_configuration(configuration.name)
        metadata = {NAME_KEY: configuration.name, DIGEST_KEY: digest}
        if found is None:
            features = self._features(configuration)
            created = self._call(
                lambda: self._client.v1.billing_portal.configurations.create(
                    params={"features": features, "metadata": metadata, "name": configuration.name},
                    options={"idempotency_key": f"sbt-billing:portal:{configuration.name}:{digest}"},
                )
            )
            configuration_id = created.id
        else:
            configuration_id = found.id
            if _metadata(found).get(DIGEST_KEY) != digest or not found.active:
                changes = cast("ConfigurationUpdateParamsFeatures", self._features(configuration))
                if not configuration.schedule_downgrades:
                    # An update keeps what it does not name: the conditions are cleared explicitly.
                    changes["subscription_update"]["schedule_at_period_end"] = {"conditions": ""}
                self._call(
                    lambda: self._client.v1.billing_portal.configurations.update(
                        configuration_id,
                        params={"features": changes, "metadata": metadata, "active": True},
                        options={"idempotency_key": f"sbt-billing:portal:{configuration_id}:{digest}"},
                    )
                )
        with self._portal_lock:
            self._portal = (digest, configuration_id, now)
        return configuration_id

    def _find_configuration(self, name: str) -> stripe.billing_portal.Configuration | None:
        """The oldest configuration with the name (there is one, unless it was copied by hand)."""
        listing = self._call(
            lambda: self._client.v1.billing_portal.configurations.list(params={"limit": 100})
        )
        named = [c for c in listing.auto_paging_iter() if _metadata(c).get(NAME_KEY) == name]
        return min(named, key=lambda c: c.created) if named else None

    def _features(self, configuration: PortalConfiguration) -> ConfigurationCreateParamsFeatures:
        by_product: dict[str, list[str]] = {}
        for price in configuration.prices:
            product = self.price_terms(price).product
            if product is not None:
                by_product.setdefault(product, []).append(price)
        products: list[ConfigurationCreateParamsFeaturesSubscriptionUpdateProduct] = [
            {"product": product, "prices": prices} for product, prices in by_product.items()
        ]
        immediately = not configuration.cancel_at_period_end
        features: ConfigurationCreateParamsFeatures = {
            "invoice_history": {"enabled": True},
            "payment_method_update": {"enabled": True},
            "customer_update": {"enabled": False},
            "subscription_cancel": {
                "enabled": configuration.cancellation,
                "mode": "immediately" if immediately else "at_period_end",
                "proration_behavior": "create_prorations" if immediately else "none",
            },
            "subscription_update": {
                "enabled": True,
                "default_allowed_updates": ["price"],
                "products": products,
                "proration_behavior": configuration.proration_behavior,
            },
        }
        if configuration.schedule_downgrades:
            features["subscription_update"]["schedule_at_period_end"] = {
                "conditions": [{"type": "decreasing_item_amount"}]
            }
        return features

    def portal_session(
        self,
        customer_id: str,
        configuration_id: str,
        return_url: str,
        flow: PortalFlow | None,
        subscription_id: str | None,
    ) -> HostedSession:
        params: SessionCreateParams = {
            "customer": customer_id,
            "configuration": configuration_id,
            "return_url": return_url,
        }
        if flow is PortalFlow.PAYMENT_METHOD_UPDATE:
            params["flow_data"] = {"type": "payment_method_update"}
        elif flow is PortalFlow.SUBSCRIPTION_UPDATE and subscription_id is not None:
            params["flow_data"] = {
                "type": "subscription_update",
                "subscription_update": {"subscription": subscription_id},
            }
        elif flow is PortalFlow.SUBSCRIPTION_CANCEL and subscription_id is not None:
            params["flow_data"] = {
                "type": "subscription_cancel",
                "subscription_cancel": {"subscription": subscription_id},
            }
        if "flow_data" in params:
            # After the flow, back to the caller's page rather than the portal's home.
            params["flow_data"]["after_completion"] = {
                "type": "redirect",
                "redirect": {"return_url": return_url},
            }
        session = self._call(lambda: self._client.v1.billing_portal.sessions.create(params=params))
        return HostedSession(session_id=session.id, url=session.url)

    # -- Checkout in setup mode -------------------------------------------------------------------------

    def checkout_session(
        self, tenant_id: str, customer_id: str, currency: str, success_url: str, cancel_url: str
    ) -> HostedSession:
        session = self._call(
            lambda: self._client.v1.checkout.sessions.create(
                params={
                    "mode": "setup",
                    "customer": customer_id,
                    "currency": currency,
                    "success_url": success_url,
                    "cancel_url": cancel_url,
                    "client_reference_id": tenant_id,
                    "metadata": {"tenantId": tenant_id},
                    "setup_intent_data": {"metadata": {"tenantId": tenant_id}},
                }
            )
        )
        return HostedSession(
            session_id=session.id,
            url=session.url or "",
            expires_at=datetime.fromtimestamp(session.expires_at, UTC),
        )


def _metadata(obj: stripe.StripeObject) -> dict[str, Any]:
    metadata = obj.to_dict(recursive=True).get("metadata")
    return metadata if isinstance(metadata, dict) else {}


class StripeSelfServiceGateway(StripeBillingGateway, StripeHostedPages):
    """The billing gateway with Stripe's hosted pages: the billing API's changes and self-service."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._portal = None
        self._portal_lock = Lock()
