"""The internal billing API behind API Gateway (AWS_IAM): GET /tenants/{tenantId}/billing[/status],
PATCH /tenants/{tenantId}/billing, GET /tenants/{tenantId}/billing/preview."""

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from sbt_billing.app import api_idempotency_config, billing_services, change_services, logger, metrics
from sbt_billing.billing_api import make_resolver

resolver = make_resolver(billing_services, metrics, change_services)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    api_idempotency_config().register_lambda_context(context)
    return resolver.resolve(event, context)
