"""The lifecycle functions (onboarding, update, deletion) and the billing API's changes: the lifecycle,
with its seats and usage, over the stores and Stripe."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from uuid import uuid4

from sbt_billing.adapters.clock import SystemClock
from sbt_billing.adapters.registrations import DynamoRegistrationStore
from sbt_billing.bootstrap.clients import aws_client, cached
from sbt_billing.bootstrap.seats import seats
from sbt_billing.bootstrap.settings import required, settings
from sbt_billing.bootstrap.stores import account_store, publisher
from sbt_billing.bootstrap.stripe import billing_gateway
from sbt_billing.bootstrap.usage import metered_price_refs, usage
from sbt_billing.domain.catalogue import TierPlan
from sbt_billing.domain.errors import ConfigurationError
from sbt_billing.domain.lifecycle import Lifecycle
from sbt_billing.domain.onboarding import Onboarding
from sbt_billing.domain.ports import BillingGateway
from sbt_billing.domain.seats import Seats


def catalogue() -> Mapping[str, TierPlan]:
    return required(settings().tier_catalogue, "TIER_CATALOGUE")


def lifecycle(
    working_until: datetime | None = None,
    billing: BillingGateway | None = None,
    with_seats: Seats | None = None,
) -> Lifecycle:
    """A lifecycle for one invocation: shared clients, its own lease owner, the invocation's end (and
    the Stripe gateway and seats of a caller that paces its requests: a reconcile run, adoption)."""
    config = settings()
    return Lifecycle(
        store=account_store(),
        billing=billing or billing_gateway(),
        publisher=publisher(),
        clock=SystemClock(),
        catalogue=catalogue(),
        lease_seconds=config.lease_seconds,
        owner=uuid4().hex,
        working_until=working_until,
        metered_prices=metered_price_refs(),
        seats=with_seats or seats(),
        usage=usage(),
        downgrade_at=config.downgrade_at,
    )


@cached
def registrations() -> DynamoRegistrationStore:
    table = settings().registrations_table
    if table is None:
        raise ConfigurationError("REGISTRATIONS_TABLE is not set: SBT's onboarding events need it")
    return DynamoRegistrationStore(aws_client("dynamodb"), table)


def onboarding(lifecycle: Lifecycle) -> Onboarding:
    return Onboarding(lifecycle, registrations(), settings().open_account_on)
