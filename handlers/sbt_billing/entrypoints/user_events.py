"""The user function's events: SBT's user created / deleted events, each recorded once per user (last
fact wins), and the first of a burst schedules the tenant's seat sync. No account, no Stripe."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from sbt_billing.bootstrap.users import seat_recorder, user_created
from sbt_billing.domain.errors import ConfigurationError, InvalidEvent
from sbt_billing.entrypoints.observability import logger, metrics
from sbt_billing.entrypoints.rejections import rejected_event
from sbt_billing.entrypoints.sbt_inbound import parse
from sbt_billing.entrypoints.sbt_user_events import TenantUserEvent, user_fact


def handle_user_event(raw_event: Mapping[str, Any]) -> dict[str, Any]:
    present = user_created(raw_event.get("detail-type"))
    operation = "add_seat" if present else "remove_seat"
    try:
        event = parse(TenantUserEvent, raw_event)
        tenant_id, user_id, present, stamp = user_fact(event, present)
    except InvalidEvent as error:
        return rejected_event(error, raw_event, operation)
    logger.append_keys(tenant_id=tenant_id, event_id=event.id)
    service = seat_recorder()
    if service is None:
        raise ConfigurationError("seats need USAGE_TABLE and SEAT_SYNC_QUEUE_URL")
    outcome = service.record(tenant_id, user_id, present, stamp)
    metrics.add_metric(name=f"Seat_{outcome.result.value}", unit=MetricUnit.Count, value=1)
    logger.info("user recorded", result=outcome.result.value, sync_scheduled=outcome.sync_scheduled)
    return {"operation": operation, **outcome.as_response()}
