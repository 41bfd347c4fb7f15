"""The floor the billing gate is measured against (bench/cold_start.py): a bare Powertools REST resolver
with validation, a pydantic answer and one strongly-consistent GetItem, the same libraries doing the
same job with none of this project's code."""

import os
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

logger = Logger()
metrics = Metrics()
app = APIGatewayRestResolver(enable_validation=True)
table = os.environ["ACCOUNTS_TABLE"]
client = boto3.client("dynamodb")


class Status(BaseModel):
    tenantId: str  # noqa: N815 - the wire's name
    state: str
    allowed: bool


@app.get("/tenants/<tenantId>/billing/status")
def status(tenantId: str) -> Status:  # noqa: N803 - the path's own name
    item = client.get_item(TableName=table, Key={"tenantId": {"S": tenantId}}, ConsistentRead=True).get(
        "Item"
    )
    if item is None:
        raise NotFoundError("no such tenant")
    state = item.get("subscription_status", {}).get("S", "unknown")
    return Status(tenantId=tenantId, state=state, allowed=state in ("active", "trialing", "past_due"))


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
