"""Stripe: one client per role and key (a rotated key replaces it), for the functions that call Stripe."""

from __future__ import annotations

from collections.abc import Callable
from threading import Lock
from typing import TYPE_CHECKING

import stripe

from sbt_billing.adapters.stripe_billing import StripeBillingGateway
from sbt_billing.bootstrap.clients import on_restore
from sbt_billing.bootstrap.secrets import stripe_api_key, stripe_read_key
from sbt_billing.bootstrap.settings import Settings, settings
from sbt_billing.domain.billing_policy import BillingPolicy
from sbt_billing.domain.errors import ConfigurationError

if TYPE_CHECKING:
    from sbt_billing.adapters.pacing import Pacer

STRIPE_TIMEOUT_SECONDS = 10
TEST_MODE_KEYS = ("sk_test_", "rk_test_")

_gateways: dict[str, tuple[str, StripeBillingGateway]] = {}  # role -> (key, its gateway)
_gateways_lock = Lock()


def _forget_gateways() -> None:
    with _gateways_lock:
        _gateways.clear()


on_restore(_forget_gateways)  # a gateway holds its key and its HTTP session


def stripe_client(config: Settings, key: str) -> stripe.StripeClient:
    """A Stripe client: Stripe itself, or STRIPE_API_BASE (the emulator) for every API it reaches."""
    base = (
        {"api": config.stripe_api_base, "meter_events": config.stripe_api_base}
        if config.stripe_api_base
        else None
    )
    return stripe.StripeClient(
        key,
        base_addresses=base,  # type: ignore[arg-type]
        max_network_retries=config.stripe_max_network_retries,
        http_client=stripe.RequestsClient(timeout=STRIPE_TIMEOUT_SECONDS),
    )


def billing_policy() -> BillingPolicy:
    config = settings()
    return BillingPolicy(
        collection_mode=config.collection_mode,
        days_until_due=config.days_until_due,
        trial_days=config.trial_days,
        proration_behavior=config.proration_behavior,
        cancellation_mode=config.cancellation_mode,
        customer_on_delete=config.customer_on_delete,
    )


def no_billing_choices() -> BillingPolicy:
    raise ConfigurationError("this function changes no subscription: it has no billing choices")


def cached_gateway[G: StripeBillingGateway](
    role: str,
    key: str,
    kind: type[G],
    policy: BillingPolicy | Callable[[], BillingPolicy],
    pacer: Pacer | None = None,
) -> G:
    """The gateway of `kind` this process keeps for `role` (its requests paced by `pacer`, if given):
    made again when the key rotates."""
    with _gateways_lock:
        found = _gateways.get(role)
        if found is None or found[0] != key or not isinstance(found[1], kind):
            gateway = kind(stripe_client(settings(), key), policy, pacer=pacer)
            _gateways[role] = (key, gateway)
            return gateway
        kept = found[1]
    assert isinstance(kept, kind)
    return kept


def billing_gateway() -> StripeBillingGateway:
    """Stripe with the deployment's key and its billing choices: the lifecycle's writes and seats."""
    return cached_gateway("write", stripe_api_key(settings()), StripeBillingGateway, billing_policy())


def meter_gateway() -> StripeBillingGateway:
    """Stripe with the deployment's key, for usage (meters and meter events): no subscription changes."""
    return cached_gateway("meters", stripe_api_key(settings()), StripeBillingGateway, no_billing_choices)


def deployment_key_livemode() -> bool:
    """Whether the deployment's own Stripe key is a live-mode key."""
    return not stripe_api_key(settings()).startswith(TEST_MODE_KEYS)


def livemode() -> bool:
    """Whether the deployment's Stripe key (the read key, where there is one) is a live-mode key."""
    return not stripe_read_key(settings()).startswith(TEST_MODE_KEYS)
