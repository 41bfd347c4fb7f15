"""Wiring for seats and metered usage: factories (cached per container) and the entry points' bodies
for user events, usage events, the scheduled usage flush and Stripe's meter error reports (the seat
sync's SQS batch: queues.py)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

import stripe
from aws_lambda_powertools.metrics import MetricUnit

from .app import (
    SystemClock,
    _aws_client,
    account_store,
    billing_gateway,
    billing_reader,
    deferred,
    logger,
    meter_gateway,
    metrics,
    publisher,
    rejected_event,
    webhook_secrets,
)
from .errors import ConfigurationError, InvalidEvent, TransientBillingError
from .events import TenantUserEvent, UsageEvent, parse, usage_records, user_fact
from .meter_errors import METER_ERROR_TYPES, MeterErrors, thin_event
from .seat_sync_queue import SqsSyncScheduler
from .seats import Seats
from .settings import settings
from .tenant_usage import DynamoTenantUsage
from .usage import Usage


@cache
def tenant_usage() -> DynamoTenantUsage:
    table = settings().usage_table
    if not table:
        raise ConfigurationError("USAGE_TABLE is not set: seats and usage are not deployed")
    return DynamoTenantUsage(_aws_client("dynamodb"), table)


def seats() -> Seats | None:
    """Seats, when this deployment has the usage table and the sync queue (None otherwise)."""
    config = settings()
    if not config.usage_table or not config.seat_sync_queue_url:
        return None
    return Seats(
        ledger=tenant_usage(),
        scheduler=SqsSyncScheduler(_aws_client("sqs"), config.seat_sync_queue_url),
        # Recording a user needs neither: the user function reads no account and holds no Stripe key.
        accounts=deferred(account_store),
        billing=deferred(billing_gateway),
        delay_seconds=config.seat_sync_delay_seconds,
    )


def usage() -> Usage | None:
    config = settings()
    if not config.usage_table:
        return None
    return Usage(
        outbox=tenant_usage(),
        accounts=account_store(),
        billing=meter_gateway(),
        publisher=publisher(),
        clock=SystemClock(),
        meters=config.usage_meters,
        directory=meter_gateway(),
    )


def metered_price_refs() -> list[str]:
    return [meter.price for meter in settings().usage_meters.values() if meter.price]


def forget() -> None:
    tenant_usage.cache_clear()


# -- entry points ----------------------------------------------------------------------------------


def handle_user_event(raw_event: Mapping[str, Any], present: bool) -> dict[str, Any]:
    operation = "add_seat" if present else "remove_seat"
    try:
        event = parse(TenantUserEvent, raw_event)
        tenant_id, user_id, present, stamp = user_fact(event, present)
    except InvalidEvent as error:
        return rejected_event(error, raw_event, operation)
    logger.append_keys(tenant_id=tenant_id, event_id=event.id)
    service = seats()
    if service is None:
        raise ConfigurationError("seats need USAGE_TABLE and SEAT_SYNC_QUEUE_URL")
    outcome = service.record(tenant_id, user_id, present, stamp)
    metrics.add_metric(name=f"Seat_{outcome.result.value}", unit=MetricUnit.Count, value=1)
    logger.info("user recorded", result=outcome.result.value, sync_scheduled=outcome.sync_scheduled)
    return {"operation": operation, **outcome.as_response()}


def handle_usage_event(raw_event: Mapping[str, Any]) -> dict[str, Any]:
    try:
        event = parse(UsageEvent, raw_event)
        records = usage_records(event)
    except InvalidEvent as error:
        return rejected_event(error, raw_event, "ingest_usage")
    logger.append_keys(tenant_id=event.detail.tenant_id, event_id=event.id)
    service = usage()
    if service is None:
        raise ConfigurationError("usage needs USAGE_TABLE")
    outcome = service.ingest(event.detail.tenant_id, records)
    _report_unavailable_meters(service)
    metrics.add_metric(name="UsageRecordsNew", unit=MetricUnit.Count, value=outcome.new)
    metrics.add_metric(name="UsageRecordsSent", unit=MetricUnit.Count, value=outcome.sent)
    if outcome.rejected:
        metrics.add_metric(name="UsageRecordsRejected", unit=MetricUnit.Count, value=len(outcome.rejected))
        logger.error("usage records rejected", reasons=[r.reason for r in outcome.rejected])
    logger.info("usage recorded", new=outcome.new, sent=outcome.sent)
    return {"operation": "ingest_usage", **outcome.as_response()}


def handle_usage_flush() -> dict[str, Any]:
    service = usage()
    if service is None:
        raise ConfigurationError("usage needs USAGE_TABLE")
    sent = service.flush_all()
    _report_unavailable_meters(service)
    metrics.add_metric(name="UsageRecordsSent", unit=MetricUnit.Count, value=sent)
    logger.info("pending usage flushed", sent=sent)
    return {"operation": "flush_usage", "sent": sent}


def _report_unavailable_meters(service: Usage) -> None:
    if service.unavailable:
        metrics.add_metric(
            name="UsageMeterUnavailable", unit=MetricUnit.Count, value=len(service.unavailable)
        )
        logger.error(
            "usage kept pending: Stripe meter unusable",
            meters={name: state.value for name, state in service.unavailable.items()},
        )


def is_thin_event(payload: bytes) -> bool:
    """Whether a webhook delivery is an event destination's thin event (API v2), not a snapshot event."""
    try:
        return thin_event(payload) is not None
    except InvalidEvent:
        return True  # malformed, but thin: handle_thin_event answers it


def handle_thin_event(payload: bytes, signature: str | None) -> tuple[int, dict[str, Any]]:
    """One thin event from an event destination: signature checked with the SDK over each configured
    secret, then a meter error report applied to the usage records it names; other types are
    acknowledged. Nothing is written before the signature is known good."""
    try:
        secrets = webhook_secrets()
    except ConfigurationError as error:
        metrics.add_metric(name="WebhookMisconfigured", unit=MetricUnit.Count, value=1)
        logger.error("webhook secret unavailable", problem=str(error))
        return 500, {"error": "the webhook is not configured"}
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
        report = billing_reader().meter_error_report(event.event_id)
        outcome = MeterErrors(tenant_usage(), publisher()).apply(report)
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
