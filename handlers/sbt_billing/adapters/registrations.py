"""SBT's registration ids in DynamoDB: one item per registration, its tenant id once the onboarding
request has named it, and the facts of provisioning events that came before that.

Both writes are single conditional updates of the one item, so they are serialised: whichever comes
second sees the first (a provisioning event either finds the tenant or leaves its facts for the
onboarding request to pick up), and nothing falls between them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from sbt_billing.adapters.dynamo_errors import condition_failed, transient_error
from sbt_billing.domain.errors import InvalidEvent
from sbt_billing.domain.models import Facts, digest_of

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

_PARKED = "parked_"  # attribute name prefix of a kept fact, followed by the fact's digest


class DynamoRegistrationStore:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def link(self, registration_id: str, tenant_id: str) -> list[Facts]:
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key={"registrationId": {"S": registration_id}},
                UpdateExpression="SET tenantId = if_not_exists(tenantId, :tenant)",
                ExpressionAttributeValues={":tenant": {"S": tenant_id}},
                ReturnValues="ALL_NEW",
            )
        except (ClientError, BotoCoreError) as error:
            raise transient_error("update_item", error) from None
        item = response.get("Attributes", {})
        linked = item.get("tenantId", {}).get("S")
        if linked != tenant_id:
            # SBT makes one tenant per registration: a second tenant id for it is bad input, not ours to move.
            raise InvalidEvent("detail.tenantRegistrationId", "is linked to another tenant already")
        kept = [
            Facts.model_validate_json(value["S"]) for name, value in item.items() if name.startswith(_PARKED)
        ]
        return sorted(kept, key=lambda facts: facts.occurred_at)

    def park(self, registration_id: str, facts: Facts) -> str | None:
        document = facts.model_dump_json()
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"registrationId": {"S": registration_id}},
                UpdateExpression="SET #fact = :fact",
                ConditionExpression="attribute_not_exists(tenantId)",
                ExpressionAttributeNames={"#fact": _PARKED + digest_of(document)},
                ExpressionAttributeValues={":fact": {"S": document}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if condition_failed(error):
                old: Any = error.response.get("Item") or {}
                tenant = old.get("tenantId", {}).get("S")
                if isinstance(tenant, str):
                    return tenant
            raise transient_error("update_item", error) from None
        except BotoCoreError as error:
            raise transient_error("update_item", error) from None
        return None
