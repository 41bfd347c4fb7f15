"""The lifecycle functions' events (SBT's onboarding, provisioning, update and deletion), as their queues
deliver them (SQS batches, partial batch failures), each end to end: parsed, its tier checked against
the catalogue, applied through the lifecycle, answered and counted."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from sbt_billing.adapters.clock import SystemClock
from sbt_billing.adapters.lifecycle_inbox import PAYMENT_METHOD_GIVEN
from sbt_billing.adapters.stripe_seam import invocation_end
from sbt_billing.bootstrap.lifecycle import catalogue, lifecycle, onboarding
from sbt_billing.bootstrap.settings import settings
from sbt_billing.bootstrap.stores import publisher
from sbt_billing.domain.catalogue import tier_plan
from sbt_billing.domain.errors import ConfigurationError, InvalidEvent, TransientBillingError
from sbt_billing.domain.lifecycle import TIER_MISSING, Lifecycle
from sbt_billing.domain.models import Outcome
from sbt_billing.domain.published import BILLING_FAILURE
from sbt_billing.domain.results import Operation, Result
from sbt_billing.entrypoints import bounded_json
from sbt_billing.entrypoints.billing_messages import PaymentMethodGivenEvent, payment_method_facts
from sbt_billing.entrypoints.observability import logger, metrics
from sbt_billing.entrypoints.rejections import rejected_event
from sbt_billing.entrypoints.sbt_events import (
    OnboardingRequestEvent,
    ProvisioningEvent,
    TenantDeletedEvent,
    TenantUpdatedEvent,
    deletion_facts,
    named_tier,
    onboarding_request,
    provisioning_report,
    update_facts,
)
from sbt_billing.entrypoints.sbt_inbound import ID_PATTERN, parse


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

        def request(event: OnboardingRequestEvent, lifecycle: Lifecycle) -> Outcome:
            facts, registration_id = onboarding_request(event)
            return onboarding(lifecycle).request(facts, registration_id)

        def provisioned(succeeded: bool) -> Callable[[ProvisioningEvent, Lifecycle], Outcome]:
            def run(event: ProvisioningEvent, lifecycle: Lifecycle) -> Outcome:
                return onboarding(lifecycle).report(*provisioning_report(event, succeeded))

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
            ),
            # The stack's own: a payment method the tenant gave, handed over by the webhook.
            PAYMENT_METHOD_GIVEN: Handling(
                PaymentMethodGivenEvent,
                Operation.UPDATE_ACCOUNT,
                lambda event, lifecycle: lifecycle.update_account(payment_method_facts(event)),
            ),
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
        tier = named_tier(event)
        if tier is not None:
            tier_plan(catalogue(), tier)  # the one check of the tier, before anything is written
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
        # Found before anything was written for the event (a registration of another tenant):
        # retrying cannot fix it.
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


def handle_queued_events(
    raw_event: Mapping[str, Any], context: LambdaContext, function: str
) -> dict[str, Any]:
    """What the function's queue delivers: an SQS batch whose bodies are the EventBridge events the
    rule put there. A record that may succeed later (Stripe or DynamoDB unavailable, throttled, the
    tenant leased by a dead invocation) is reported as a batch item failure, so SQS delivers it
    again after its visibility timeout and moves it to the dead-letter queue after the last receive;
    every other record is done (applied, unchanged, in flight elsewhere, rejected, failed and
    reported) and leaves the queue.

    A bare EventBridge event (`sam local invoke` with a sample, or a rule that targets the function
    directly) is handled as one, and answered with its outcome."""
    handlings = lifecycle_handlings(function)
    if "Records" not in raw_event:
        return handle_event(raw_event, context, handlings)

    def record_handler(record: SQSRecord) -> None:
        logger.remove_keys(["event_id", "detail_type", "tenant_id"])
        try:
            body = bounded_json.loads(record.body, "event")
        except InvalidEvent as error:
            # Not JSON, or nested too deep to read safely: retrying cannot fix it.
            rejected_event(error, None, next(iter(handlings.values())).operation.value)
            return
        handle_event(body, context, handlings)

    processor = BatchProcessor(event_type=EventType.SQS)
    response = process_partial_response(
        event=dict(raw_event), record_handler=record_handler, processor=processor, context=context
    )
    return dict(response)
