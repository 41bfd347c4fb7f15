"""The billing API's Stripe-backed routes behind API Gateway (AWS_IAM): GET /tenants/{tenantId}/billing,
PATCH /tenants/{tenantId}/billing, GET /tenants/{tenantId}/billing/preview, GET /billing/openapi.json.
(The gate, .../billing/status, is BillingGateFunction's: billing_gate.py.)"""

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from sbt_billing.bootstrap import snapstart  # noqa: F401 - SnapStart's runtime hooks, where the runtime has them
from sbt_billing.entrypoints.api.billing_api import billing_api
from sbt_billing.entrypoints.api.idempotency_keys import register_lambda_context
from sbt_billing.entrypoints.observability import logger, metrics

resolver = billing_api(metrics)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    register_lambda_context(context)
    return resolver.resolve(event, context)
