"""The adapters every kind of function shares: the accounts table and the bus (boto3 only: no Stripe)."""

from __future__ import annotations

from sbt_billing.adapters.sbt_bus import EventBridgePublisher
from sbt_billing.adapters.tenant_accounts import DynamoAccountStore
from sbt_billing.bootstrap.clients import aws_client, cached
from sbt_billing.bootstrap.settings import required, settings


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
