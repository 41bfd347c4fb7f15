"""sbt_aws_tenantUpdated → update customer details; a new tier swaps the subscription item's price."""

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from sbt_billing.app import handle_event, logger, metrics
from sbt_billing.events import TenantUpdatedEvent, update_facts
from sbt_billing.models import Operation


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE, clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    return handle_event(event, context, TenantUpdatedEvent, update_facts, Operation.UPDATE_ACCOUNT)
