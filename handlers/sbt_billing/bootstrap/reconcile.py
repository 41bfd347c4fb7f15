"""The reconcile function: Stripe read and written at the run's own pace with the deployment's key,
the pass kept in the reconcile table, the lifecycle for repairs, and the webhook's processor (with the
deployment key's mode and look-ups) for the events it replays."""

from __future__ import annotations

from datetime import datetime

from sbt_billing.adapters.clock import SystemClock
from sbt_billing.adapters.pacing import Pacer
from sbt_billing.adapters.stripe_listings import StripeListings
from sbt_billing.bootstrap.clients import cached
from sbt_billing.bootstrap.lifecycle import catalogue, lifecycle
from sbt_billing.bootstrap.reconcile_stores import account_directory, reconcile_store
from sbt_billing.bootstrap.reports import report_processor
from sbt_billing.bootstrap.seats import seats
from sbt_billing.bootstrap.secrets import stripe_api_key
from sbt_billing.bootstrap.settings import settings
from sbt_billing.bootstrap.stores import publisher
from sbt_billing.bootstrap.stripe import billing_policy, cached_gateway, deployment_key_livemode
from sbt_billing.domain.event_replay import ApplyEvent
from sbt_billing.domain.reconcile import Reconciler
from sbt_billing.domain.stripe_reports import WebhookProcessor


@cached
def pacer() -> Pacer | None:
    """One pace for all of this process's Stripe requests (STRIPE_REQUESTS_PER_SECOND), if set."""
    rate = settings().stripe_requests_per_second
    return Pacer(rate) if rate else None


def listings() -> StripeListings:
    """Stripe with the deployment's key and billing choices, paced: the run's reads and its repairs."""
    return cached_gateway("listings", stripe_api_key(settings()), StripeListings, billing_policy(), pacer())


def event_processor() -> WebhookProcessor:
    """The webhook's processor, for replayed events: the same rules, the deployment key's mode."""
    return report_processor(listings(), deployment_key_livemode())


def reconciler(apply_event: ApplyEvent, owner: str, deadline: datetime) -> Reconciler:
    """The reconciler for one invocation: its repairs' lease holder works until `deadline`."""
    gateway = listings()
    tenant_seats = seats(billing=gateway)
    return Reconciler(
        store=reconcile_store(),
        listings=gateway,
        accounts=account_directory(),
        lifecycle=lifecycle(working_until=deadline, billing=gateway, with_seats=tenant_seats),
        apply_event=apply_event,
        publisher=publisher(),
        clock=SystemClock(),
        catalogue=catalogue(),
        seats=tenant_seats,
        owner=owner,
    )
