"""The usage table (seats and metered usage) and the seat sync queue: for the functions that count."""

from __future__ import annotations

from sbt_billing.adapters.seat_sync_queue import SqsSyncScheduler
from sbt_billing.adapters.tenant_usage import DynamoTenantUsage
from sbt_billing.bootstrap.clients import aws_client, cached
from sbt_billing.bootstrap.settings import settings
from sbt_billing.domain.errors import ConfigurationError


@cached
def tenant_usage() -> DynamoTenantUsage:
    table = settings().usage_table
    if not table:
        raise ConfigurationError("USAGE_TABLE is not set: seats and usage are not deployed")
    return DynamoTenantUsage(aws_client("dynamodb"), table)


def seat_scheduler() -> SqsSyncScheduler | None:
    """The seat sync queue, when this deployment has seats (the usage table and the queue)."""
    config = settings()
    if not config.usage_table or not config.seat_sync_queue_url:
        return None
    return SqsSyncScheduler(aws_client("sqs"), config.seat_sync_queue_url)
