"""An event that retrying cannot fix: reported once and answered, so that the platform does not retry it."""

from __future__ import annotations

from collections.abc import Mapping

from aws_lambda_powertools.metrics import MetricUnit

from sbt_billing.domain.errors import InvalidEvent
from sbt_billing.domain.results import Result
from sbt_billing.entrypoints.observability import logger, metrics


def rejected_event(error: InvalidEvent, raw_event: object, operation: str) -> dict[str, str]:
    metrics.add_metric(name="EventRejected", unit=MetricUnit.Count, value=1)
    logger.error("event rejected", field=error.field, problem=error.problem)
    detail = raw_event.get("detail") if isinstance(raw_event, Mapping) else None
    tenant = detail.get("tenantId") if isinstance(detail, Mapping) else None
    response = {"operation": operation, "result": Result.REJECTED.value, "reason": str(error)}
    if isinstance(tenant, str):
        response["tenant_id"] = tenant
    return response
