"""Stripe's webhook: the report processor (the only function that loads it), Stripe's look-ups with
the read key, the idempotency records of Stripe's events, and meter error reports."""

from __future__ import annotations

from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig

from sbt_billing.adapters.applied_marks import DynamoAppliedMarks
from sbt_billing.adapters.stripe_lookups import StripeLookups
from sbt_billing.bootstrap.clients import aws_client, cached, deferred
from sbt_billing.bootstrap.reports import report_processor
from sbt_billing.bootstrap.secrets import stripe_read_key, webhook_secrets
from sbt_billing.bootstrap.settings import required, settings
from sbt_billing.bootstrap.stores import publisher
from sbt_billing.bootstrap.stripe import cached_gateway, livemode, no_billing_choices
from sbt_billing.bootstrap.usage_stores import tenant_usage
from sbt_billing.domain.meter_errors import MeterErrorReport, MeterErrors
from sbt_billing.domain.ports import AppliedMarks
from sbt_billing.domain.stripe_reports import WebhookProcessor

__all__ = ["meter_error_report", "meter_errors", "webhook_processor", "webhook_secrets"]


def webhook_processor() -> WebhookProcessor:
    """The processor for one delivered event, looking up with the read key where there is one (the
    look-ups' Stripe client is made at the first look-up, and again after the key rotates)."""
    return report_processor(deferred(stripe_lookups), livemode())


@cached
def webhook_idempotency_config() -> IdempotencyConfig:
    return IdempotencyConfig(
        raise_on_no_idempotency_key=True,
        expires_after_seconds=settings().idempotency_expiry_seconds,
    )


@cached
def webhook_idempotency_store() -> DynamoDBPersistenceLayer:
    return DynamoDBPersistenceLayer(
        table_name=required(settings().idempotency_table, "IDEMPOTENCY_TABLE"),
        boto3_client=aws_client("dynamodb"),
    )


def meter_error_report(event_id: str) -> MeterErrorReport:
    return stripe_lookups().meter_error_report(event_id)


def meter_errors() -> MeterErrors:
    return MeterErrors(tenant_usage(), publisher())


def applied_marks() -> AppliedMarks | None:
    """Where the webhook notes the newest event it applied (the reconciler's replay starts there)."""
    table = settings().reconcile_table
    return DynamoAppliedMarks(aws_client("dynamodb"), table) if table else None


def stripe_lookups() -> StripeLookups:
    """Stripe for the webhook's look-ups: the restricted read-only key when the deployment gives one
    (STRIPE_READ_SECRET_NAME), so that the public-facing webhook never holds the key that can charge."""
    return cached_gateway("lookups", stripe_read_key(settings()), StripeLookups, no_billing_choices)
