"""POST /billing/stripe/webhook: Stripe's signed deliveries, applied once each, in the order of the facts."""

import base64
import json
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext
from sbt_billing.bootstrap import snapstart  # noqa: F401 - SnapStart's runtime hooks, where the runtime has them
from sbt_billing.entrypoints.observability import logger, metrics
from sbt_billing.entrypoints.stripe_webhook import handle_delivery


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
@event_source(data_class=APIGatewayProxyEvent)
def lambda_handler(event: APIGatewayProxyEvent, context: LambdaContext) -> dict[str, Any]:
    body = event.body or ""
    payload = base64.b64decode(body) if event.is_base64_encoded else body.encode()
    signature = event.headers.get("Stripe-Signature") or event.headers.get("stripe-signature")
    status, answer = handle_delivery(payload, signature, context)
    return {"statusCode": status, "headers": {"Content-Type": "application/json"}, "body": json.dumps(answer)}
