"""The newest Stripe event applied, in the reconcile table (`id` = "stripe-events#applied": `created`,
`eventId`): moved by the webhook on each event and by a replay, read by the reconciler to know where
its replay starts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from sbt_billing.adapters.dynamo_errors import condition_failed, transient_error
from sbt_billing.domain.models import StripeStamp

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

APPLIED = "stripe-events#applied"


class DynamoAppliedMarks:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def applied_mark(self) -> StripeStamp | None:
        item = self._get(APPLIED)
        if item is None or "created" not in item:
            return None
        return StripeStamp(
            at=datetime.fromtimestamp(int(item["created"]["N"]), UTC), event_id=item["eventId"]["S"]
        )

    def advance_applied_mark(self, stamp: StripeStamp) -> None:
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"id": {"S": APPLIED}},
                UpdateExpression="SET created = :created, eventId = :event",
                ConditionExpression="attribute_not_exists(created) OR created < :created",
                ExpressionAttributeValues={
                    ":created": {"N": str(int(stamp.at.timestamp()))},
                    ":event": {"S": stamp.event_id},
                },
            )
        except ClientError as error:
            if condition_failed(error):
                return  # an event as new or newer is the mark already
            raise transient_error("update_item", error) from None
        except BotoCoreError as error:
            raise transient_error("update_item", error) from None

    def _get(self, key: str) -> dict[str, Any] | None:
        try:
            response = self._client.get_item(
                TableName=self._table, Key={"id": {"S": key}}, ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as error:
            raise transient_error("get_item", error) from None
        item: dict[str, Any] | None = response.get("Item")
        return item
