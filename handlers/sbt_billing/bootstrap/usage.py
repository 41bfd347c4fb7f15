"""Metered usage (the usage functions, and the lifecycle's last flush at offboarding): the usage
outbox, accounts, Stripe's meters and the bus."""

from __future__ import annotations

from sbt_billing.adapters.clock import SystemClock
from sbt_billing.bootstrap.settings import settings
from sbt_billing.bootstrap.stores import account_store, publisher
from sbt_billing.bootstrap.stripe import meter_gateway
from sbt_billing.bootstrap.usage_stores import tenant_usage
from sbt_billing.domain.usage import Usage


def usage() -> Usage | None:
    config = settings()
    if not config.usage_table:
        return None
    return Usage(
        outbox=tenant_usage(),
        accounts=account_store(),
        billing=meter_gateway(),
        publisher=publisher(),
        clock=SystemClock(),
        meters=config.usage_meters,
        directory=meter_gateway(),
    )


def metered_price_refs() -> list[str]:
    return [meter.price for meter in settings().usage_meters.values() if meter.price]
