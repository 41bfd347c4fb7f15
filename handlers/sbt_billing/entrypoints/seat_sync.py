"""The seat sync's SQS batch (delayed messages naming tenants): one sync per tenant, a failed tenant's
messages retried (partial batch failures)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from sbt_billing.bootstrap.seats import seats
from sbt_billing.domain.errors import ConfigurationError
from sbt_billing.entrypoints.observability import logger, metrics


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
