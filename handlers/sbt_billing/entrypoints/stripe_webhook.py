"""POST /billing/stripe/webhook: Stripe's signed deliveries. A snapshot event is verified, parsed and
applied once (its id is the idempotency key, whichever delivery brings it); an event destination's
thin event (a meter error report) is verified and applied to the usage records it names. Nothing is
written before the signature and the body are known good. A webhook that cannot read its signing
secret, or its settings, fails closed (500): Stripe retries for three days, so the event waits."""

from __future__ import annotations

from typing import Any

import stripe
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError
from aws_lambda_powertools.utilities.typing import LambdaContext

from sbt_billing.adapters.clock import SystemClock
from sbt_billing.bootstrap.webhook import (
    applied_marks,
    meter_error_report,
    meter_errors,
    webhook_processor,
    webhook_secrets,
)
from sbt_billing.domain.errors import ConfigurationError, InvalidEvent, TransientBillingError
from sbt_billing.domain.meter_errors import METER_ERROR_TYPES
from sbt_billing.domain.results import Result
from sbt_billing.domain.stripe_events import StripeEvent
from sbt_billing.entrypoints.observability import logger, metrics
from sbt_billing.entrypoints.stripe_event_apply import apply_once
from sbt_billing.entrypoints.stripe_events import is_thin_event, parse_event, thin_event
from sbt_billing.entrypoints.stripe_signature import InvalidSignature, verify_signature

Answer = tuple[int, dict[str, Any]]


def handle_delivery(payload: bytes, signature: str | None, context: LambdaContext) -> Answer:
    """One delivery, whichever kind it is."""
    if is_thin_event(payload):  # an event destination's thin event (meter error reports)
        return handle_thin_event(payload, signature)
    return handle_webhook(payload, signature, context)


def _secrets_or_misconfigured() -> list[str] | Answer:
    try:
        return webhook_secrets()
    except ConfigurationError as error:  # SettingsError included: fail closed, with a JSON answer
        metrics.add_metric(name="WebhookMisconfigured", unit=MetricUnit.Count, value=1)
        logger.error("webhook secret unavailable", problem=str(error))
        return 500, {"error": "the webhook is not configured"}


def handle_webhook(payload: bytes, signature: str | None, context: LambdaContext) -> Answer:
    """One snapshot event: verify, parse, apply once."""
    secrets = _secrets_or_misconfigured()
    if isinstance(secrets, tuple):
        return secrets
    try:
        verify_signature(payload, signature, secrets, SystemClock().now())
        event = parse_event(payload)
    except (InvalidSignature, InvalidEvent) as error:
        metrics.add_metric(name="WebhookRejected", unit=MetricUnit.Count, value=1)
        logger.warning("webhook rejected", problem=str(error))
        return 400, {"error": "invalid_signature" if isinstance(error, InvalidSignature) else "invalid_event"}
    logger.append_keys(stripe_event_id=event.id, stripe_event_type=event.type)
    try:
        outcome, _ = apply_once(event, webhook_processor, context)
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
    _mark_applied(event)
    metrics.add_metric(name=f"Webhook_{outcome.result.value}", unit=MetricUnit.Count, value=1)
    if outcome.foreign:
        metrics.add_metric(name="WebhookForeignObject", unit=MetricUnit.Count, value=1)
    logger.info(
        "webhook processed", result=outcome.result.value, reason=outcome.reason, tenant_id=outcome.tenant_id
    )
    return 200, outcome.as_response()


def _mark_applied(event: StripeEvent) -> None:
    """The reconciler replays Stripe's events from the newest one applied: best effort (the event is
    applied whatever happens here; a mark left behind only makes the next replay longer)."""
    marks = applied_marks()
    if marks is None:
        return
    try:
        marks.advance_applied_mark(event.stamp())
    except TransientBillingError as error:
        metrics.add_metric(name="WebhookMarkNotMoved", unit=MetricUnit.Count, value=1)
        logger.warning("applied mark not moved", problem=str(error))


def handle_thin_event(payload: bytes, signature: str | None) -> Answer:
    """One thin event from an event destination: signature checked with the SDK over each configured
    secret, then a meter error report applied to the usage records it names; other types are
    acknowledged."""
    secrets = _secrets_or_misconfigured()
    if isinstance(secrets, tuple):
        return secrets
    if not _signed(payload, signature, secrets):
        metrics.add_metric(name="WebhookRejected", unit=MetricUnit.Count, value=1)
        logger.warning("thin event rejected", problem="no signature matches")
        return 400, {"error": "invalid_signature"}
    try:
        event = thin_event(payload)
    except InvalidEvent as error:
        metrics.add_metric(name="WebhookRejected", unit=MetricUnit.Count, value=1)
        logger.warning("thin event rejected", problem=str(error))
        return 400, {"error": "invalid_event"}
    assert event is not None
    logger.append_keys(stripe_event_id=event.event_id, stripe_event_type=event.type)
    if event.type not in METER_ERROR_TYPES:
        return 200, {"received": "true", "eventId": event.event_id, "result": "ignored"}
    try:
        report = meter_error_report(event.event_id)
        outcome = meter_errors().apply(report)
    except (TransientBillingError, ConfigurationError) as error:
        metrics.add_metric(name="WebhookRetried", unit=MetricUnit.Count, value=1)
        logger.warning("thin event not applied; Stripe will retry", problem=str(error))
        return 503, {"error": "retry_later"}
    metrics.add_metric(name="UsageRecordsRejectedByStripe", unit=MetricUnit.Count, value=outcome.rejected)
    if outcome.unidentified:
        metrics.add_metric(name="MeterErrorsUnidentified", unit=MetricUnit.Count, value=outcome.unidentified)
    logger.warning(
        "meter error report applied",
        meter_id=report.meter_id,
        rejected=outcome.rejected,
        already=outcome.already,
        unknown=outcome.unknown,
        unidentified=outcome.unidentified,
    )
    return 200, outcome.as_response()


def _signed(payload: bytes, signature: str | None, secrets: list[str]) -> bool:
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(payload.decode(), signature or "", secret, tolerance=300)
        except (stripe.SignatureVerificationError, ValueError, TypeError):
            continue
        return True
    return False
