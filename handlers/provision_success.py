"""sbt_aws_provisionSuccess, through the function's queue → open the tenant's billing account: one Stripe customer, one subscription."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from sbt_billing.app import logger, metrics
from sbt_billing.events import ProvisionSuccessEvent, provision_facts
from sbt_billing.models import Operation
from sbt_billing.queues import handle_queued_events


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_queued_events(
        event, context, ProvisionSuccessEvent, provision_facts, Operation.OPEN_ACCOUNT
    )
