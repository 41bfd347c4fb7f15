"""The Stripe-report processor, one for the two functions that apply Stripe's events: the webhook (the
events Stripe delivers) and the reconciler (the events it replays). Both apply them under the same
rules, the same gate and the same hand-over of a payment method to the lifecycle."""

from __future__ import annotations

from sbt_billing.adapters.lifecycle_inbox import SqsLifecycleInbox
from sbt_billing.bootstrap.clients import aws_client, cached, deferred
from sbt_billing.bootstrap.gate import gate_policy
from sbt_billing.bootstrap.settings import required, settings
from sbt_billing.bootstrap.stores import account_store, publisher
from sbt_billing.domain.ports import StripeLookup
from sbt_billing.domain.stripe_reports import WebhookPolicy, WebhookProcessor


@cached
def lifecycle_inbox() -> SqsLifecycleInbox:
    """The tenant update function's queue: where a payment method the tenant gave is handed to the lifecycle."""
    url = required(settings().tenant_updated_queue_url, "TENANT_UPDATED_QUEUE_URL")
    return SqsLifecycleInbox(aws_client("sqs"), url)


def report_processor(lookup: StripeLookup, livemode: bool) -> WebhookProcessor:
    """The processor for one invocation; only events of `livemode` are the deployment's."""
    config = settings()
    return WebhookProcessor(
        store=account_store(),
        publisher=publisher(),
        lookup=lookup,
        catalogue=required(config.tier_catalogue, "TIER_CATALOGUE"),
        policy=WebhookPolicy(
            gate=gate_policy(),
            livemode=livemode,
            publish_deactivate=config.publish_deactivate_requests,
            publish_activate=config.publish_activate_requests,
            publish_billing_updates=config.publish_billing_updates,
        ),
        inbox=deferred(lifecycle_inbox),
    )
