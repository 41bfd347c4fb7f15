"""The reconcile table (a reconcile pass's place, and the newest Stripe event applied) and the accounts
read many at a time."""

from __future__ import annotations

from sbt_billing.adapters.account_directory import DynamoAccountDirectory
from sbt_billing.adapters.reconcile_store import DynamoReconcileStore
from sbt_billing.bootstrap.clients import aws_client
from sbt_billing.bootstrap.settings import required, settings


def reconcile_store() -> DynamoReconcileStore:
    return DynamoReconcileStore(
        aws_client("dynamodb"), required(settings().reconcile_table, "RECONCILE_TABLE")
    )


def account_directory() -> DynamoAccountDirectory:
    return DynamoAccountDirectory(
        aws_client("dynamodb"), required(settings().accounts_table, "ACCOUNTS_TABLE")
    )
