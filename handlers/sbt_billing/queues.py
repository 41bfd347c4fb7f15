"""The entry points fed by SQS (Powertools batch processing, partial batch failures): the lifecycle
functions behind their queues and the seat sync. Only the queue-fed functions import this module,
so the others do not load Powertools' batch utility at start-up."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from . import bounded_json
from .app import handle_event, lifecycle_handlings, logger, metrics, rejected_event
from .errors import ConfigurationError, InvalidEvent
from .usage_app import seats


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


def handle_seat_sync(raw_event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
    """SQS batch: one sync per tenant named in the batch; a failed tenant's messages are retried."""
    service = seats()
    if service is None:
        raise ConfigurationError("seats need USAGE_TABLE and SEAT_SYNC_QUEUE_URL")

    def sync(record: SQSRecord) -> None:
        body = json.loads(record.body)
        outcome = service.sync(str(body["tenantId"]))
        if outcome.updated:
            metrics.add_metric(name="SeatQuantityUpdated", unit=MetricUnit.Count, value=1)
        logger.info(
            "seats synced",
            tenant_id=outcome.tenant_id,
            quantity=outcome.quantity,
            updated=outcome.updated,
            rescheduled=outcome.rescheduled,
        )

    processor = BatchProcessor(event_type=EventType.SQS)
    response = process_partial_response(
        event=dict(raw_event), record_handler=sync, processor=processor, context=context
    )
    return dict(response)
