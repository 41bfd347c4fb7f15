"""Stripe read: the billing API's reads, and the webhook's look-ups."""

from __future__ import annotations

from sbt_billing.adapters.stripe_reads import StripeBillingReader
from sbt_billing.bootstrap.secrets import stripe_read_key
from sbt_billing.bootstrap.settings import settings
from sbt_billing.bootstrap.stripe import cached_gateway, no_billing_choices


def billing_reader() -> StripeBillingReader:
    """Stripe for the billing API's reads: the restricted read-only key when the deployment gives one
    (STRIPE_READ_SECRET_NAME), so that the public-facing functions never hold the key that can create
    charges."""
    return cached_gateway("read", stripe_read_key(settings()), StripeBillingReader, no_billing_choices)
