"""Wiring: builds the adapters lazily (once per container) and runs one lifecycle event end to end.

Nothing here runs at import: the environment, the secret and the network are read at first use,
so modules import freely in tests and warm invocations reuse every client.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from threading import Lock
from typing import Any, cast
from uuid import uuid4

import boto3
import stripe
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.idempotency.serialization.pydantic import PydanticSerializer
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

from .billing_changes import (
    ChangeAnswer,
    ChangeServices,
    IdempotentChange,
    idempotency_in_progress,
    idempotency_key_reused,
)
from .billing_state import BillingServices, GatePolicy
from .errors import ConfigurationError, InvalidEvent, TransientBillingError
from .events import (
    ID_PATTERN,
    OnboardingRequestEvent,
    ProvisioningEvent,
    TenantDeletedEvent,
    TenantUpdatedEvent,
    deletion_facts,
    onboarding_request,
    parse,
    provisioning_report,
    update_facts,
)
from .lifecycle import BILLING_FAILURE, TIER_MISSING, Lifecycle
from .models import Frozen, Operation, Outcome, Result, TenantFacts
from .onboarding import Onboarding
from .ports import PlanPreview
from .registrations import DynamoRegistrationStore
from .sbt_bus import EventBridgePublisher
from .settings import Settings, required, settings
from .stripe_billing import BillingPolicy, invocation_end
from .stripe_reads import StripeBillingReader
from .stripe_signature import InvalidSignature, verify_signature
from .stripe_webhooks import (
    StripeEvent,
    WebhookOutcome,
    WebhookPolicy,
    WebhookProcessor,
    parse_event,
)
from .tenant_accounts import DynamoAccountStore

logger = Logger()
metrics = Metrics()

SECRET_MAX_AGE_SECONDS = 300
STRIPE_TIMEOUT_SECONDS = 10
_AWS_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=3, read_timeout=5)


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


# -- factories (cached per container) ------------------------------------------------------------


@cache
def _aws_client(service: str) -> Any:
    # boto3 honours AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_<SERVICE>) by itself.
    return boto3.client(service, config=_AWS_CONFIG)  # type: ignore[call-overload]


@cache
def _secrets() -> SecretsProvider:
    return SecretsProvider(boto3_client=_aws_client("secretsmanager"))


def stripe_api_key(config: Settings) -> str:
    """STRIPE_API_KEY when set (local runs, tests), else the secret named by STRIPE_SECRET_NAME,
    cached for a few minutes so that a rotated key is picked up without a deploy."""
    if config.stripe_api_key:
        return config.stripe_api_key
    if not config.stripe_secret_name:
        raise ConfigurationError("neither STRIPE_SECRET_NAME nor STRIPE_API_KEY is set")
    return _key_in_secret(config.stripe_secret_name, "the Stripe secret", ("sk_", "rk_"))


def stripe_read_key(config: Settings) -> str:
    """The restricted read-only key named by STRIPE_READ_SECRET_NAME (`rk_...`: a secret key, which
    can create charges, is refused there), else the deployment's key."""
    if config.stripe_api_key or not config.stripe_read_secret_name:
        return stripe_api_key(config)
    return _key_in_secret(config.stripe_read_secret_name, "the Stripe read secret", ("rk_",))


def _key_in_secret(name: str, what: str, prefixes: tuple[str, ...]) -> str:
    """A plain `sk_...`/`rk_...` string, or JSON {"apiKey": "..."}."""
    raw = _secrets().get(name, max_age=SECRET_MAX_AGE_SECONDS)
    value = raw.decode() if isinstance(raw, bytes) else str(raw)
    value = value.strip()
    if value.startswith("{"):
        try:
            document = json.loads(value)
        except json.JSONDecodeError:
            raise ConfigurationError(f"{what} is neither a key nor JSON with an apiKey") from None
        value = str(document.get("apiKey", "")).strip() if isinstance(document, dict) else ""
    if not value.startswith(prefixes):
        kinds = " or ".join(f"{prefix}..." for prefix in prefixes)
        raise ConfigurationError(f"{what} does not hold a Stripe key of the kind it must ({kinds})")
    return value


def stripe_client(config: Settings, key: str) -> stripe.StripeClient:
    """A Stripe client: Stripe itself, or STRIPE_API_BASE (the emulator) for every API it reaches."""
    base = (
        {"api": config.stripe_api_base, "meter_events": config.stripe_api_base}
        if config.stripe_api_base
        else None
    )
    return stripe.StripeClient(
        key,
        base_addresses=base,  # type: ignore[arg-type]
        max_network_retries=config.stripe_max_network_retries,
        http_client=stripe.RequestsClient(timeout=STRIPE_TIMEOUT_SECONDS),
    )


_gateways: dict[str, tuple[str, StripeBillingReader]] = {}  # role -> (key, its gateway)
_gateways_lock = Lock()


def _billing_policy() -> BillingPolicy:
    config = settings()
    return BillingPolicy(
        collection_mode=config.collection_mode,
        days_until_due=config.days_until_due,
        trial_days=config.trial_days,
        proration_behavior=config.proration_behavior,
        cancellation_mode=config.cancellation_mode,
        customer_on_delete=config.customer_on_delete,
    )


def _no_billing_choices() -> BillingPolicy:
    raise ConfigurationError("this function changes no subscription: it has no billing choices")


def _gateway(role: str, key: str, policy: BillingPolicy | Callable[[], BillingPolicy]) -> StripeBillingReader:
    """One client per role and key (a rotated key replaces it)."""
    with _gateways_lock:
        cached = _gateways.get(role)
        if cached is None or cached[0] != key:
            cached = _gateways[role] = (key, StripeBillingReader(stripe_client(settings(), key), policy))
        return cached[1]


def billing_gateway() -> StripeBillingReader:
    """Stripe with the deployment's key and its billing choices: the lifecycle's writes and seats."""
    return _gateway("write", stripe_api_key(settings()), _billing_policy())


def meter_gateway() -> StripeBillingReader:
    """Stripe with the deployment's key, for usage (meter events): no subscription changes."""
    return _gateway("meters", stripe_api_key(settings()), _no_billing_choices)


@cache
def account_store() -> DynamoAccountStore:
    return DynamoAccountStore(_aws_client("dynamodb"), required(settings().accounts_table, "ACCOUNTS_TABLE"))


@cache
def publisher() -> EventBridgePublisher:
    config = settings()
    bus = required(config.event_bus_name, "EVENT_BUS_NAME")
    return EventBridgePublisher(
        _aws_client("events"), bus, config.event_source, config.published_detail_type_prefix
    )


@cache
def registrations() -> DynamoRegistrationStore:
    table = settings().registrations_table
    if table is None:
        raise ConfigurationError("REGISTRATIONS_TABLE is not set: SBT's onboarding events need it")
    return DynamoRegistrationStore(_aws_client("dynamodb"), table)


def deferred[T](factory: Callable[[], T]) -> T:
    """The adapter `factory` makes, made at its first use: a function that never uses it never reads
    its settings or its secret (nor needs the permissions they lead to)."""
    return cast(T, _Deferred(factory))


class _Deferred:
    def __init__(self, factory: Callable[[], object]) -> None:
        self._factory = factory

    def __getattr__(self, name: str) -> Any:
        return getattr(self._factory(), name)


def lifecycle(working_until: datetime | None = None) -> Lifecycle:
    """A lifecycle for one invocation: shared clients, its own lease owner, the invocation's end."""
    from . import usage_app

    config = settings()
    return Lifecycle(
        store=account_store(),
        billing=billing_gateway(),
        publisher=publisher(),
        clock=SystemClock(),
        catalogue=required(config.tier_catalogue, "TIER_CATALOGUE"),
        lease_seconds=config.lease_seconds,
        owner=uuid4().hex,
        working_until=working_until,
        metered_prices=usage_app.metered_price_refs(),
        seats=usage_app.seats(),
        usage=usage_app.usage(),
    )


@cache
def idempotency_config() -> IdempotencyConfig:
    return IdempotencyConfig(
        raise_on_no_idempotency_key=True,
        expires_after_seconds=settings().idempotency_expiry_seconds,
    )


@cache
def _persistence() -> DynamoDBPersistenceLayer:
    return DynamoDBPersistenceLayer(
        table_name=required(settings().idempotency_table, "IDEMPOTENCY_TABLE"),
        boto3_client=_aws_client("dynamodb"),
    )


# -- the billing API and Stripe's webhooks ------------------------------------------------------------


def billing_reader() -> StripeBillingReader:
    """Stripe for the billing API and the webhook's look-ups: the restricted read-only key when the
    deployment gives one (STRIPE_READ_SECRET_NAME), so that the public-facing functions never hold
    the key that can create charges."""
    return _gateway("read", stripe_read_key(settings()), _no_billing_choices)


@cache
def billing_services() -> BillingServices:
    from . import usage_app

    config = settings()
    return BillingServices(
        store=account_store(),
        reader=billing_reader,
        catalogue=required(config.tier_catalogue, "TIER_CATALOGUE"),
        gate=GatePolicy(allowed_states=config.gate_allowed_states),
        seat_count=usage_app.tenant_usage().count if config.usage_table else None,
        meters={name: meter.event_name for name, meter in config.usage_meters.items()},
    )


# -- the billing API's changes (PATCH, preview) --------------------------------------------------------


def _apply_change(facts: TenantFacts, seconds_left: float) -> Outcome:
    """A PATCH's facts through the lifecycle, as an event's: its lease is held until the request's end."""
    working_until = SystemClock().now() + timedelta(seconds=seconds_left)
    with invocation_end(seconds_left):
        return lifecycle(working_until).update_account(facts, must_exist=True)


def _preview_change(tenant_id: str, tier: str, at: datetime, seconds_left: float) -> PlanPreview:
    with invocation_end(seconds_left):
        return lifecycle().preview_plan_change(tenant_id, tier, at)


@cache
def api_idempotency_config() -> IdempotencyConfig:
    """Idempotency-Key on PATCH: the record is keyed by tenant and key, and holds the body's hash."""
    return IdempotencyConfig(
        event_key_jmespath="[tenant_id, key]",
        payload_validation_jmespath="body",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=settings().idempotency_expiry_seconds,
    )


@cache
def _api_persistence() -> DynamoDBPersistenceLayer:
    # Its own instance: a persistence layer keeps the first configuration it is given.
    return DynamoDBPersistenceLayer(
        table_name=required(settings().idempotency_table, "IDEMPOTENCY_TABLE"),
        boto3_client=_aws_client("dynamodb"),
    )


def _run_change(request: IdempotentChange, run: Callable[[], ChangeAnswer]) -> ChangeAnswer:
    return run()


@cache
def _idempotent_change() -> Callable[..., ChangeAnswer]:
    wrapped: Callable[..., ChangeAnswer] = idempotent_function(
        _run_change,
        data_keyword_argument="request",
        persistence_store=_api_persistence(),
        config=api_idempotency_config(),
        output_serializer=PydanticSerializer(model=ChangeAnswer),
        key_prefix="sbt-billing-api-change",
    )
    return wrapped


def _once(request: IdempotentChange, run: Callable[[], ChangeAnswer]) -> ChangeAnswer:
    """The first answer for (tenant, Idempotency-Key). What `run` raises (a busy tenant, an unknown one,
    Stripe or DynamoDB unavailable) is not kept, so that a retry runs again."""
    try:
        return _idempotent_change()(request=request, run=run)
    except IdempotencyValidationError:
        raise idempotency_key_reused() from None
    except IdempotencyAlreadyInProgressError:
        raise idempotency_in_progress() from None
    except IdempotencyPersistenceLayerError:
        raise TransientBillingError("the idempotency table is unavailable") from None


@cache
def change_services() -> ChangeServices:
    config = settings()
    return ChangeServices(
        catalogue=required(config.tier_catalogue, "TIER_CATALOGUE"),
        gate=GatePolicy(allowed_states=config.gate_allowed_states),
        apply=_apply_change,
        preview=_preview_change,
        once=_once,
    )


def webhook_secrets() -> list[str]:
    """The endpoint's signing secrets from the secret named by WEBHOOK_SECRET_NAME: `whsec_...`, or JSON
    `{"signingSecret": "whsec_..."}` / `{"signingSecrets": [...]}` (two while a secret is rolled).
    Cached for a few minutes. Raises ConfigurationError when there is none: the webhook fails closed."""
    name = settings().webhook_secret_name
    if not name:
        raise ConfigurationError("WEBHOOK_SECRET_NAME is not set")
    raw = _secrets().get(name, max_age=SECRET_MAX_AGE_SECONDS)
    value = (raw.decode() if isinstance(raw, bytes) else str(raw)).strip()
    candidates: list[object] = [value]
    if value.startswith("{"):
        try:
            document = json.loads(value)
        except json.JSONDecodeError:
            raise ConfigurationError("the webhook secret is neither a signing secret nor JSON") from None
        candidates = [document.get("signingSecret"), *(document.get("signingSecrets") or [])]
    secrets = [
        str(item).strip() for item in candidates if isinstance(item, str) and item.startswith("whsec_")
    ]
    if not secrets:
        raise ConfigurationError("the webhook secret holds no whsec_ signing secret")
    return secrets


class _LazyLookup:
    """Stripe look-ups for the webhook, reading the Stripe key only when one is needed."""

    def tenant_of_customer(self, customer_id: str) -> str | None:
        return billing_reader().tenant_of_customer(customer_id)

    def subscription_object(self, subscription_id: str) -> Mapping[str, Any] | None:
        return billing_reader().subscription_object(subscription_id)


TEST_MODE_KEYS = ("sk_test_", "rk_test_")


def webhook_processor() -> WebhookProcessor:
    """The processor for one event; only events of the Stripe key's mode are the deployment's."""
    config = settings()
    return WebhookProcessor(
        store=account_store(),
        publisher=publisher(),
        lookup=_LazyLookup(),
        catalogue=required(config.tier_catalogue, "TIER_CATALOGUE"),
        policy=WebhookPolicy(
            gate=GatePolicy(allowed_states=config.gate_allowed_states),
            livemode=not stripe_read_key(config).startswith(TEST_MODE_KEYS),
            publish_deactivate=config.publish_deactivate_requests,
            publish_activate=config.publish_activate_requests,
            publish_billing_updates=config.publish_billing_updates,
        ),
    )


class WebhookRequest(Frozen):
    """A Stripe event is one fact: its id is the idempotency key, whichever delivery brings it."""

    stripe_event_id: str


def _apply_webhook(request: WebhookRequest, event: StripeEvent) -> WebhookOutcome:
    return webhook_processor().apply(event)


@cache
def _idempotent_webhook() -> Callable[..., WebhookOutcome]:
    wrapped: Callable[..., WebhookOutcome] = idempotent_function(
        _apply_webhook,
        data_keyword_argument="request",
        persistence_store=_persistence(),
        config=idempotency_config(),
        output_serializer=PydanticSerializer(model=WebhookOutcome),
        key_prefix="sbt-billing-webhook",
    )
    return wrapped


def handle_webhook(
    payload: bytes, signature: str | None, context: LambdaContext
) -> tuple[int, dict[str, str]]:
    """One Stripe delivery: verify, parse, apply once. Nothing is written before the signature and the
    body are known good (the idempotency record included)."""
    try:
        secrets = webhook_secrets()
    except ConfigurationError as error:
        # Fail closed; Stripe retries for three days, so the event waits for the fix.
        metrics.add_metric(name="WebhookMisconfigured", unit=MetricUnit.Count, value=1)
        logger.error("webhook secret unavailable", problem=str(error))
        return 500, {"error": "the webhook is not configured"}
    try:
        verify_signature(payload, signature, secrets, SystemClock().now())
        event = parse_event(payload)
    except (InvalidSignature, InvalidEvent) as error:
        metrics.add_metric(name="WebhookRejected", unit=MetricUnit.Count, value=1)
        logger.warning("webhook rejected", problem=str(error))
        return 400, {"error": "invalid_signature" if isinstance(error, InvalidSignature) else "invalid_event"}
    logger.append_keys(stripe_event_id=event.id, stripe_event_type=event.type)
    idempotency_config().register_lambda_context(context)
    try:
        outcome = _idempotent_webhook()(request=WebhookRequest(stripe_event_id=event.id), event=event)
    except InvalidEvent as error:
        metrics.add_metric(name="WebhookRejected", unit=MetricUnit.Count, value=1)
        logger.warning("webhook rejected", problem=str(error))
        return 400, {"error": "invalid_event"}
    except IdempotencyAlreadyInProgressError:
        return 200, {"received": "true", "eventId": event.id, "result": Result.IN_FLIGHT.value}
    except (TransientBillingError, ConfigurationError) as error:
        metrics.add_metric(name="WebhookRetried", unit=MetricUnit.Count, value=1)
        logger.warning("webhook not applied; Stripe will retry", problem=str(error))
        return 503, {"error": "retry_later"}
    metrics.add_metric(name=f"Webhook_{outcome.result.value}", unit=MetricUnit.Count, value=1)
    if outcome.foreign:
        metrics.add_metric(name="WebhookForeignObject", unit=MetricUnit.Count, value=1)
    logger.info(
        "webhook processed", result=outcome.result.value, reason=outcome.reason, tenant_id=outcome.tenant_id
    )
    return 200, outcome.as_response()


def forget_clients() -> None:
    """Drops every cached setting and client, for a process that changes its environment between
    events (the tests and the local runner). Lambda never needs it."""
    from . import usage_app
    from .settings import settings as cached_settings

    usage_app.forget()

    for factory in (
        cached_settings,
        _aws_client,
        _secrets,
        account_store,
        publisher,
        registrations,
        idempotency_config,
        _persistence,
        billing_services,
        _idempotent_webhook,
        api_idempotency_config,
        _api_persistence,
        _idempotent_change,
        change_services,
    ):
        factory.cache_clear()
    with _gateways_lock:
        _gateways.clear()


# -- one event, end to end -----------------------------------------------------------------------


def rejected_event(error: InvalidEvent, raw_event: object, operation: str) -> dict[str, str]:
    """Retrying cannot fix the event: report it and answer, so that the platform does not retry it."""
    metrics.add_metric(name="EventRejected", unit=MetricUnit.Count, value=1)
    logger.error("event rejected", field=error.field, problem=error.problem)
    detail = raw_event.get("detail") if isinstance(raw_event, Mapping) else None
    tenant = detail.get("tenantId") if isinstance(detail, Mapping) else None
    response = {"operation": operation, "result": Result.REJECTED.value, "reason": str(error)}
    if isinstance(tenant, str):
        response["tenant_id"] = tenant
    return response


def _announced(response: dict[str, str]) -> dict[str, str]:
    """A lifecycle event refused at the door about a tenant we can name (say, an onboarding request
    with an email Stripe would refuse) is not billed: the control plane hears of it, as it would of a
    refusal by Stripe, rather than finding a metric alone."""
    tenant = response.get("tenant_id")
    if tenant is not None and re.fullmatch(ID_PATTERN, tenant):
        publisher().publish(
            BILLING_FAILURE,
            {"tenantId": tenant, "operation": response["operation"], "reason": response["reason"]},
        )
    return response


@dataclass(frozen=True)
class Handling[M: EventBridgeModel]:
    """How a function handles one detail type: the model it parses and what it does with it."""

    model: type[M]
    operation: Operation
    run: Callable[[M, Lifecycle], Outcome]


def lifecycle_handlings(function: str) -> dict[str, Handling[Any]]:
    """The detail types each lifecycle function handles (as the deployment names them), and how."""
    config = settings()
    if function == "onboarding":

        def onboard(lifecycle: Lifecycle) -> Onboarding:
            return Onboarding(lifecycle, registrations(), config.open_account_on)

        def request(event: OnboardingRequestEvent, lifecycle: Lifecycle) -> Outcome:
            facts, registration_id = onboarding_request(event)
            return onboard(lifecycle).request(facts, registration_id)

        def provisioned(succeeded: bool) -> Callable[[ProvisioningEvent, Lifecycle], Outcome]:
            def run(event: ProvisioningEvent, lifecycle: Lifecycle) -> Outcome:
                return onboard(lifecycle).report(*provisioning_report(event, succeeded))

            return run

        return {
            config.onboarding_request_detail_type: Handling(
                OnboardingRequestEvent, Operation.OPEN_ACCOUNT, request
            ),
            config.provision_success_detail_type: Handling(
                ProvisioningEvent, Operation.OPEN_ACCOUNT, provisioned(succeeded=True)
            ),
            config.provision_failure_detail_type: Handling(
                ProvisioningEvent, Operation.CLOSE_ACCOUNT, provisioned(succeeded=False)
            ),
        }
    if function == "update":
        return {
            config.tenant_updated_detail_type: Handling(
                TenantUpdatedEvent,
                Operation.UPDATE_ACCOUNT,
                lambda event, lifecycle: lifecycle.update_account(update_facts(event)),
            )
        }
    if function == "deletion":
        close = Handling(
            TenantDeletedEvent,
            Operation.CLOSE_ACCOUNT,
            lambda event, lifecycle: lifecycle.close_account(deletion_facts(event)),
        )
        return {config.offboarding_request_detail_type: close, config.tenant_deleted_detail_type: close}
    raise ValueError(f"no lifecycle function {function!r}")


def handle_event(
    raw_event: Mapping[str, Any], context: LambdaContext, handlings: Mapping[str, Handling[Any]]
) -> dict[str, str]:
    """One EventBridge event, end to end. The account record is its idempotency record: a fact
    already recorded changes nothing, however often and under whatever event id it comes again."""
    detail_type = raw_event.get("detail-type") if isinstance(raw_event, Mapping) else None
    handling = handlings.get(detail_type) if isinstance(detail_type, str) else None
    if handling is None:
        # e.g. a provisioning event fed to the deletion function: never act on what we were not sent.
        expected = ", ".join(sorted(handlings))
        error = InvalidEvent("detail-type", f"is not one this function handles ({expected})")
        return rejected_event(error, raw_event, next(iter(handlings.values())).operation.value)
    operation = handling.operation
    try:
        event = parse(handling.model, raw_event)
    except InvalidEvent as error:
        return _announced(rejected_event(error, raw_event, operation.value))
    logger.set_correlation_id(event.id)
    logger.append_keys(event_id=event.id, detail_type=event.detail_type)
    tenant = getattr(event.detail, "tenant_id", None)
    if tenant is not None:
        logger.append_keys(tenant_id=tenant)

    seconds_left = context.get_remaining_time_in_millis() / 1000
    working_until = SystemClock().now() + timedelta(seconds=seconds_left)
    try:
        with invocation_end(seconds_left):
            outcome = handling.run(event, lifecycle(working_until))
    except InvalidEvent as error:
        # Found before anything was written for the event (an unknown tier, a registration of another
        # tenant): retrying cannot fix it.
        return _announced(rejected_event(error, raw_event, operation.value))
    except (TransientBillingError, ConfigurationError) as error:
        # The platform retries the event, and dead-letters it when retries run out.
        metrics.add_dimension(name="operation", value=operation.value)
        metrics.add_metric(name="Result_retrying", unit=MetricUnit.Count, value=1)
        logger.warning("event will be retried", error_type=type(error).__name__, reason=str(error))
        raise
    metrics.add_dimension(name="operation", value=outcome.operation.value)
    metrics.add_metric(name=f"Result_{outcome.result.value}", unit=MetricUnit.Count, value=1)
    if outcome.reason == TIER_MISSING:
        metrics.add_metric(name="TierMissing", unit=MetricUnit.Count, value=1)
    log = logger.warning if outcome.result is Result.FAILED else logger.info
    log("event processed", result=outcome.result.value, reason=outcome.reason, tenant_id=outcome.tenant_id)
    return outcome.as_response()
