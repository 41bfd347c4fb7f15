"""sbt_aws_tenantUpdated, through the function's queue → update customer details; a new tier swaps the subscription item's price."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from sbt_billing.bootstrap import snapstart  # noqa: F401 - SnapStart's runtime hooks, where the runtime has them
from sbt_billing.entrypoints.lifecycle_events import handle_queued_events
from sbt_billing.entrypoints.observability import logger, metrics


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_queued_events(event, context, "update")
