"""The billing API's Stripe-backed routes: the full read (the account, then Stripe) and the changes
(PATCH and its preview), which go through the lifecycle."""

from __future__ import annotations

from datetime import datetime, timedelta

from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig

from sbt_billing.adapters.clock import SystemClock
from sbt_billing.adapters.stripe_hosted_pages import StripeSelfServiceGateway
from sbt_billing.adapters.stripe_seam import invocation_end
from sbt_billing.bootstrap.clients import aws_client, cached, deferred
from sbt_billing.bootstrap.gate import gate_policy
from sbt_billing.bootstrap.lifecycle import catalogue, lifecycle
from sbt_billing.bootstrap.secrets import stripe_api_key
from sbt_billing.bootstrap.settings import required, settings
from sbt_billing.bootstrap.stores import account_store
from sbt_billing.bootstrap.stripe import billing_policy, cached_gateway
from sbt_billing.bootstrap.stripe_reads import billing_reader
from sbt_billing.bootstrap.usage_stores import tenant_usage
from sbt_billing.domain.billing_policy import DowngradeAt
from sbt_billing.domain.billing_view import BillingServices
from sbt_billing.domain.models import Outcome, TenantFacts
from sbt_billing.domain.self_service import PortalPolicy, SelfService
from sbt_billing.domain.values import PlanPreview


@cached
def billing_services() -> BillingServices:
    config = settings()
    return BillingServices(
        store=account_store(),
        reader=billing_reader,
        catalogue=catalogue(),
        gate=gate_policy(),
        seat_count=tenant_usage().count if config.usage_table else None,
        meters={name: meter.event_name for name, meter in config.usage_meters.items()},
    )


def apply_change(facts: TenantFacts, seconds_left: float) -> Outcome:
    """A PATCH's facts through the lifecycle, as an event's: its lease is held until the request's end."""
    working_until = SystemClock().now() + timedelta(seconds=seconds_left)
    with invocation_end(seconds_left):
        return lifecycle(working_until).update_account(facts, must_exist=True)


def preview_change(tenant_id: str, tier: str, at: datetime, seconds_left: float) -> PlanPreview:
    with invocation_end(seconds_left):
        return lifecycle().preview_plan_change(tenant_id, tier, at)


@cached
def change_idempotency_config() -> IdempotencyConfig:
    """Idempotency-Key on PATCH: the record is keyed by tenant and key, and holds the body's hash."""
    return IdempotencyConfig(
        event_key_jmespath="[tenant_id, key]",
        payload_validation_jmespath="body",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=settings().idempotency_expiry_seconds,
    )


@cached
def change_idempotency_store() -> DynamoDBPersistenceLayer:
    # Its own instance: a persistence layer keeps the first configuration it is given.
    return DynamoDBPersistenceLayer(
        table_name=required(settings().idempotency_table, "IDEMPOTENCY_TABLE"),
        boto3_client=aws_client("dynamodb"),
    )


def self_service_gateway() -> StripeSelfServiceGateway:
    """Stripe with the deployment's key and its hosted pages (the portal, Checkout): they write."""
    return cached_gateway("pages", stripe_api_key(settings()), StripeSelfServiceGateway, billing_policy())


@cached
def self_service() -> SelfService:
    """The portal and Checkout: Stripe's hosted pages, opened with the deployment's key (they write)."""
    config = settings()
    pages = deferred(self_service_gateway)
    return SelfService(
        store=account_store(),
        pages=pages,
        price_id=lambda reference: self_service_gateway().price_for(reference),
        catalogue=catalogue(),
        policy=PortalPolicy(
            name=config.portal_configuration_name,
            proration_behavior=config.proration_behavior.value,
            downgrades_at_period_end=config.downgrade_at is DowngradeAt.PERIOD_END,
            cancellation=config.portal_cancellation,
            cancellation_mode=config.cancellation_mode,
        ),
    )
