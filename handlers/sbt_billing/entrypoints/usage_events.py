"""The usage functions' events: SBT's usage events (each record kept, then sent to Stripe's meters once)
and the scheduled flush of the usage still pending."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from sbt_billing.bootstrap.usage import usage
from sbt_billing.domain.errors import ConfigurationError, InvalidEvent
from sbt_billing.domain.usage import Usage
from sbt_billing.entrypoints.observability import logger, metrics
from sbt_billing.entrypoints.rejections import rejected_event
from sbt_billing.entrypoints.sbt_inbound import parse
from sbt_billing.entrypoints.sbt_usage_events import UsageEvent, usage_records


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
