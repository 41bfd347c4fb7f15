"""sbt_aws_tenantUserCreated / sbt_aws_tenantUserDeleted → the tenant's seat count, coalesced into its
per-seat subscription item's quantity (by the seat sync: this function records and schedules only)."""

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from sbt_billing.bootstrap import snapstart  # noqa: F401 - SnapStart's runtime hooks, where the runtime has them
from sbt_billing.entrypoints.observability import logger, metrics
from sbt_billing.entrypoints.user_events import handle_user_event


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE, clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_user_event(event)
