"""The adapters over DynamoDB, SQS and EventBridge (boto3 only: no Stripe)."""

from __future__ import annotations

from sbt_billing.adapters.lifecycle_inbox import SqsLifecycleInbox
from sbt_billing.adapters.reconcile_store import DynamoReconcileStore
from sbt_billing.adapters.registrations import DynamoRegistrationStore
from sbt_billing.adapters.sbt_bus import EventBridgePublisher
from sbt_billing.adapters.seat_sync_queue import SqsSyncScheduler
from sbt_billing.adapters.tenant_accounts import DynamoAccountStore
from sbt_billing.adapters.tenant_usage import DynamoTenantUsage
from sbt_billing.bootstrap.clients import aws_client, cached
from sbt_billing.bootstrap.settings import required, settings
from sbt_billing.domain.errors import ConfigurationError


@cached
def account_store() -> DynamoAccountStore:
    return DynamoAccountStore(aws_client("dynamodb"), required(settings().accounts_table, "ACCOUNTS_TABLE"))


@cached
def publisher() -> EventBridgePublisher:
    config = settings()
    bus = required(config.event_bus_name, "EVENT_BUS_NAME")
    return EventBridgePublisher(
        aws_client("events"), bus, config.event_source, config.published_detail_type_prefix
    )


@cached
def registrations() -> DynamoRegistrationStore:
    table = settings().registrations_table
    if table is None:
        raise ConfigurationError("REGISTRATIONS_TABLE is not set: SBT's onboarding events need it")
    return DynamoRegistrationStore(aws_client("dynamodb"), table)


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


@cached
def lifecycle_inbox() -> SqsLifecycleInbox:
    """The tenant update function's queue: where the webhook hands the lifecycle a payment method."""
    url = required(settings().tenant_updated_queue_url, "TENANT_UPDATED_QUEUE_URL")
    return SqsLifecycleInbox(aws_client("sqs"), url)


def reconcile_store() -> DynamoReconcileStore:
    return DynamoReconcileStore(
        aws_client("dynamodb"), required(settings().reconcile_table, "RECONCILE_TABLE")
    )
