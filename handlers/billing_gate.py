"""GET /tenants/{tenantId}/billing/status, the billing gate (API Gateway, AWS_IAM): may this tenant be
provisioned? One strongly-consistent read of the account; never Stripe (this function does not load it)."""

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from sbt_billing.bootstrap import snapstart  # noqa: F401 - SnapStart's runtime hooks, where the runtime has them
from sbt_billing.bootstrap.gate import gate
from sbt_billing.entrypoints.api.gate import make_gate_resolver
from sbt_billing.entrypoints.observability import logger, metrics

resolver = make_gate_resolver(gate, metrics)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolver.resolve(event, context)
