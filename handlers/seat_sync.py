"""SQS (delayed): sets each named tenant's seat quantity to its user count, once per burst of changes."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from sbt_billing.bootstrap import snapstart  # noqa: F401 - SnapStart's runtime hooks, where the runtime has them
from sbt_billing.entrypoints.observability import logger, metrics
from sbt_billing.entrypoints.seat_sync import handle_seat_sync


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_seat_sync(event, context)
