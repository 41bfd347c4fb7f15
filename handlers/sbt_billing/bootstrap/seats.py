"""The seat sync (and the lifecycle's seats): the users' ledger, the sync queue, accounts and Stripe."""

from __future__ import annotations

from sbt_billing.bootstrap.clients import deferred
from sbt_billing.bootstrap.settings import settings
from sbt_billing.bootstrap.stores import account_store
from sbt_billing.bootstrap.stripe import billing_gateway
from sbt_billing.bootstrap.usage_stores import seat_scheduler, tenant_usage
from sbt_billing.domain.ports import BillingGateway
from sbt_billing.domain.seats import Seats


def seats(billing: BillingGateway | None = None) -> Seats | None:
    """Seats, when this deployment has the usage table and the sync queue (None otherwise); with the
    caller's Stripe gateway if it paces its requests."""
    scheduler = seat_scheduler()
    if scheduler is None:
        return None
    return Seats(
        ledger=tenant_usage(),
        scheduler=scheduler,
        # Made at first use: a sync that finds no seat item to set never reads the Stripe key.
        accounts=deferred(account_store),
        billing=billing or deferred(billing_gateway),
        delay_seconds=settings().seat_sync_delay_seconds,
    )
