"""The deployment's settings: one model, read from the environment once, validated at first use."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from functools import cache
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sbt_billing.domain.billing_policy import (
    CancellationMode,
    CollectionMode,
    CustomerOnDelete,
    ProrationBehavior,
)
from sbt_billing.domain.catalogue import TierPlan, UsageMeter
from sbt_billing.domain.errors import ConfigurationError, SettingsError
from sbt_billing.domain.models import BillingState, OpenOn
from sbt_billing.domain.plan_timing import DowngradeAt

__all__ = ["Settings", "SettingsError", "TierPlan", "UsageMeter", "required", "settings"]


class Settings(BaseModel):
    """Each function's environment holds only the variables its code reads (template.yaml): a setting a
    function does not use is absent, and one it needs but lacks fails at first use (`required`)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    accounts_table: Annotated[str | None, Field(min_length=1, alias="ACCOUNTS_TABLE")] = None
    idempotency_table: Annotated[str | None, Field(min_length=1, alias="IDEMPOTENCY_TABLE")] = None
    event_bus_name: Annotated[str | None, Field(min_length=1, alias="EVENT_BUS_NAME")] = None
    event_source: Annotated[str, Field(min_length=1, alias="EVENT_SOURCE")] = "sbt.control.plane"
    tier_catalogue: Annotated[dict[str, TierPlan], Field(alias="TIER_CATALOGUE")] = Field(
        default_factory=dict
    )
    stripe_secret_name: Annotated[str | None, Field(alias="STRIPE_SECRET_NAME")] = None
    # A restricted key that can only read (the billing API and the webhook use it when set).
    stripe_read_secret_name: Annotated[str | None, Field(alias="STRIPE_READ_SECRET_NAME")] = None
    stripe_api_key: Annotated[str | None, Field(alias="STRIPE_API_KEY", repr=False)] = None
    stripe_api_base: Annotated[str | None, Field(alias="STRIPE_API_BASE")] = None
    stripe_max_network_retries: Annotated[int, Field(ge=0, le=10, alias="STRIPE_MAX_NETWORK_RETRIES")] = 3
    collection_mode: Annotated[CollectionMode, Field(alias="COLLECTION_MODE")] = CollectionMode.SEND_INVOICE
    days_until_due: Annotated[int, Field(ge=0, le=730, alias="DAYS_UNTIL_DUE")] = 30
    trial_days: Annotated[int, Field(ge=1, le=730, alias="TRIAL_DAYS")] = 14
    proration_behavior: Annotated[ProrationBehavior, Field(alias="PRORATION_BEHAVIOR")] = (
        ProrationBehavior.CREATE_PRORATIONS
    )
    cancellation_mode: Annotated[CancellationMode, Field(alias="CANCELLATION_MODE")] = (
        CancellationMode.IMMEDIATELY
    )
    customer_on_delete: Annotated[CustomerOnDelete, Field(alias="CUSTOMER_ON_DELETE")] = (
        CustomerOnDelete.MARK_OFFBOARDED
    )
    # SBT's onboarding: when billing starts, and where registration ids are linked to tenants.
    open_account_on: Annotated[OpenOn, Field(alias="OPEN_ACCOUNT_ON")] = OpenOn.PROVISION_SUCCESS
    registrations_table: Annotated[str | None, Field(alias="REGISTRATIONS_TABLE")] = None
    # The detail types each lifecycle function handles (the template resolves SBT's naming into them).
    onboarding_request_detail_type: Annotated[str, Field(alias="ONBOARDING_REQUEST_DETAIL_TYPE")] = (
        "sbt_aws_onboardingRequest"
    )
    provision_success_detail_type: Annotated[str, Field(alias="PROVISION_SUCCESS_DETAIL_TYPE")] = (
        "sbt_aws_provisionSuccess"
    )
    provision_failure_detail_type: Annotated[str, Field(alias="PROVISION_FAILURE_DETAIL_TYPE")] = (
        "sbt_aws_provisionFailure"
    )
    tenant_updated_detail_type: Annotated[str, Field(alias="TENANT_UPDATED_DETAIL_TYPE")] = (
        "sbt_aws_tenantUpdated"
    )
    offboarding_request_detail_type: Annotated[str, Field(alias="OFFBOARDING_REQUEST_DETAIL_TYPE")] = (
        "sbt_aws_offboardingRequest"
    )
    tenant_deleted_detail_type: Annotated[str, Field(alias="TENANT_DELETED_DETAIL_TYPE")] = (
        "sbt_aws_tenantDeleted"
    )
    # What the events this stack publishes start with: "sbt_aws_", or "" for SBT releases before it.
    published_detail_type_prefix: Annotated[str, Field(alias="PUBLISHED_DETAIL_TYPE_PREFIX")] = "sbt_aws_"
    idempotency_expiry_seconds: Annotated[int, Field(ge=60, alias="IDEMPOTENCY_EXPIRY_SECONDS")] = 86_400
    lease_seconds: Annotated[int, Field(ge=5, le=3600, alias="LEASE_SECONDS")] = 60
    # Seats and metered usage.
    usage_table: Annotated[str | None, Field(alias="USAGE_TABLE")] = None
    usage_meters: Annotated[dict[str, UsageMeter], Field(alias="USAGE_METERS")] = Field(default_factory=dict)
    seat_sync_queue_url: Annotated[str | None, Field(alias="SEAT_SYNC_QUEUE_URL")] = None
    seat_sync_delay_seconds: Annotated[int, Field(ge=0, le=900, alias="SEAT_SYNC_DELAY_SECONDS")] = 20
    user_created_detail_types: Annotated[frozenset[str], Field(alias="USER_CREATED_DETAIL_TYPES")] = (
        frozenset({"sbt_aws_tenantUserCreated", "tenantUserCreated"})
    )
    # The billing API and Stripe's webhooks.
    webhook_secret_name: Annotated[str | None, Field(alias="WEBHOOK_SECRET_NAME")] = None
    gate_allowed_states: Annotated[frozenset[BillingState], Field(alias="GATE_ALLOWED_STATES")] = frozenset(
        {BillingState.ACTIVE, BillingState.TRIALING, BillingState.PAST_DUE}
    )
    publish_deactivate_requests: Annotated[bool, Field(alias="PUBLISH_DEACTIVATE_REQUESTS")] = False
    publish_activate_requests: Annotated[bool, Field(alias="PUBLISH_ACTIVATE_REQUESTS")] = False
    publish_billing_updates: Annotated[bool, Field(alias="PUBLISH_BILLING_UPDATES")] = True
    # Self-service: the gate's payment method requirement, when downgrades apply, Stripe's hosted portal,
    # and where the webhook hands a payment method the tenant gave to the lifecycle (its update queue).
    require_payment_method: Annotated[bool, Field(alias="REQUIRE_PAYMENT_METHOD")] = False
    downgrade_at: Annotated[DowngradeAt, Field(alias="DOWNGRADE_AT")] = DowngradeAt.IMMEDIATELY
    portal_cancellation: Annotated[bool, Field(alias="PORTAL_CANCELLATION")] = False
    portal_configuration_name: Annotated[
        str, Field(min_length=1, max_length=200, alias="PORTAL_CONFIGURATION_NAME")
    ] = "sbt-billing"
    tenant_updated_queue_url: Annotated[str | None, Field(alias="TENANT_UPDATED_QUEUE_URL")] = None
    # Reconciling: where its place is kept (and the webhook's last event applied), and the pace of a
    # run's Stripe requests (a share of Stripe's rate limit, leaving the rest to the other functions).
    reconcile_table: Annotated[str | None, Field(alias="RECONCILE_TABLE")] = None
    stripe_requests_per_second: Annotated[
        float | None, Field(gt=0, le=100, alias="STRIPE_REQUESTS_PER_SECOND")
    ] = None

    @field_validator("gate_allowed_states", mode="before")
    @classmethod
    def _parse_states(cls, value: Any) -> Any:
        """A comma-separated list (the template's form) or a JSON list; empty allows no state."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    return json.loads(text)
                except json.JSONDecodeError as error:
                    raise ValueError(f"not valid JSON ({error.msg})") from None
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("tier_catalogue", mode="before")
    @classmethod
    def _parse_catalogue(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as error:
                raise ValueError(f"not valid JSON ({error.msg})") from None
        if isinstance(value, dict) and not value:
            raise ValueError("names no tier")
        if isinstance(value, dict):
            # A bare string is shorthand for {"price": "<lookup key>"}.
            return {tier: {"price": plan} if isinstance(plan, str) else plan for tier, plan in value.items()}
        return value

    @field_validator("usage_meters", mode="before")
    @classmethod
    def _parse_meters(cls, value: Any) -> Any:
        if isinstance(value, str):
            if not value.strip():
                return {}
            try:
                value = json.loads(value)
            except json.JSONDecodeError as error:
                raise ValueError(f"not valid JSON ({error.msg})") from None
        if isinstance(value, dict):
            # A bare string is shorthand for {"event_name": "<meter event name>"}.
            return {name: {"event_name": m} if isinstance(m, str) else m for name, m in value.items()}
        return value

    @field_validator("user_created_detail_types", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return (
            frozenset(part.strip() for part in value.split(",") if part.strip())
            if isinstance(value, str)
            else value
        )

    @field_validator(
        "usage_table",
        "seat_sync_queue_url",
        "webhook_secret_name",
        "registrations_table",
        "stripe_read_secret_name",
        "tenant_updated_queue_url",
        "reconcile_table",
        "stripe_requests_per_second",
        mode="before",
    )
    @classmethod
    def _blank_is_absent(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("stripe_api_key")
    @classmethod
    def _test_mode_only_locally(cls, value: str | None) -> str | None:
        if value is not None and value.startswith(("sk_live_", "rk_live_")):
            raise ValueError("is a live-mode key; STRIPE_API_KEY is for test mode and local runs only")
        return value

    @model_validator(mode="before")
    @classmethod
    def _period_end_keeps_the_customer(cls, values: Any) -> Any:
        # Deleting a Stripe customer cancels its subscriptions at once: the paid period would be lost.
        if (
            isinstance(values, Mapping)
            and values.get("CANCELLATION_MODE") == CancellationMode.PERIOD_END.value
            and values.get("CUSTOMER_ON_DELETE") == CustomerOnDelete.DELETE.value
        ):
            raise ValueError(
                "CANCELLATION_MODE period_end needs CUSTOMER_ON_DELETE mark_offboarded: deleting the "
                "customer would cancel its subscription at once"
            )
        return values

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Settings:
        try:
            return cls.model_validate(dict(environ))
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in issue['loc'])}: {issue['msg']}" for issue in error.errors()
            )
            raise SettingsError(f"invalid configuration: {problems}") from None


def required[T](value: T | None, variable: str) -> T:
    """A setting the caller needs: absent (or empty) is a misconfiguration of this function."""
    if value is None or value == {}:
        raise ConfigurationError(f"{variable} is not set for this function")
    return value


@cache
def settings() -> Settings:
    return Settings.from_environment(os.environ)
