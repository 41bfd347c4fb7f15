"""The Stripe-report processor, one for the two functions that apply Stripe's events: the webhook (the
events Stripe delivers) and the reconciler (the events it replays). Both apply them under the same
rules, the same gate and the same hand-over of a payment method to the lifecycle."""

from __future__ import annotations

from sbt_billing.bootstrap.clients import deferred
from sbt_billing.bootstrap.settings import required, settings
from sbt_billing.bootstrap.stores import account_store, lifecycle_inbox, publisher
from sbt_billing.domain.gate import GatePolicy
from sbt_billing.domain.ports import StripeLookup
from sbt_billing.domain.stripe_reports import WebhookPolicy, WebhookProcessor


def report_processor(lookup: StripeLookup, livemode: bool) -> WebhookProcessor:
    """The processor for one invocation; only events of `livemode` are the deployment's."""
    config = settings()
    return WebhookProcessor(
        store=account_store(),
        publisher=publisher(),
        lookup=lookup,
        catalogue=required(config.tier_catalogue, "TIER_CATALOGUE"),
        policy=WebhookPolicy(
            gate=GatePolicy(
                allowed_states=config.gate_allowed_states,
                require_payment_method=config.require_payment_method,
            ),
            livemode=livemode,
            publish_deactivate=config.publish_deactivate_requests,
            publish_activate=config.publish_activate_requests,
            publish_billing_updates=config.publish_billing_updates,
        ),
        inbox=deferred(lifecycle_inbox),
    )
