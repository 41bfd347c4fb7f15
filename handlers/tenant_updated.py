"""sbt_aws_tenantUpdated, through the function's queue → update customer details; a new tier swaps the subscription item's price."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from sbt_billing.app import logger, metrics
from sbt_billing.queues import handle_queued_events


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_queued_events(event, context, "update")
