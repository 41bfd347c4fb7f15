"""Scheduled (ReconcileSchedule, daily by default) or on demand: every account compared with Stripe,
Stripe's missed events replayed, what the facts determine repaired, the rest reported."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from sbt_billing.bootstrap import snapstart  # noqa: F401 - SnapStart's runtime hooks, where the runtime has them
from sbt_billing.entrypoints.observability import logger, metrics
from sbt_billing.entrypoints.reconcile_run import handle_reconcile


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_reconcile(event, context)
