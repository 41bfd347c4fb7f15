"""sbt_aws_provisionSuccess → open the tenant's billing account: one Stripe customer, one subscription."""

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from sbt_billing.app import handle_event, logger, metrics
from sbt_billing.events import ProvisionSuccessEvent, provision_facts
from sbt_billing.models import Operation


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE, clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    return handle_event(event, context, ProvisionSuccessEvent, provision_facts, Operation.OPEN_ACCOUNT)
