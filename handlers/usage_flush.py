"""Scheduled (the SBT put-usage pattern): sends the usage still pending, e.g. while Stripe was
unavailable or before the tenant's customer existed."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from sbt_billing.bootstrap import snapstart  # noqa: F401 - SnapStart's runtime hooks, where the runtime has them
from sbt_billing.entrypoints.observability import logger, metrics
from sbt_billing.entrypoints.usage_events import handle_usage_flush


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_usage_flush()
