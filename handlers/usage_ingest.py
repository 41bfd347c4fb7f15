"""sbt_aws_ingestUsage → Stripe Billing Meter events, each usage record exactly once."""

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from sbt_billing.bootstrap import snapstart  # noqa: F401 - SnapStart's runtime hooks, where the runtime has them
from sbt_billing.entrypoints.observability import logger, metrics
from sbt_billing.entrypoints.usage_events import handle_usage_event


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE, clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_usage_event(event)
