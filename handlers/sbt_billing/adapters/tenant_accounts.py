"""Tenant billing accounts in DynamoDB: one item per tenant, written with revision checks."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from sbt_billing.adapters.dynamo_errors import condition_failed, transient_error
from sbt_billing.domain.errors import RevisionConflict
from sbt_billing.domain.models import Account

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class DynamoAccountStore:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def get(self, tenant_id: str) -> Account | None:
        try:
            response = self._client.get_item(
                TableName=self._table, Key={"tenantId": {"S": tenant_id}}, ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as error:
            raise transient_error("get_item", error) from None
        item = response.get("Item")
        return account_from_item(item) if item else None

    def save(self, account: Account, expected_revision: int | None) -> Account:
        written = account.model_copy(
            update={"revision": 0 if expected_revision is None else expected_revision + 1}
        )
        condition: dict[str, Any]
        if expected_revision is None:
            condition = {"ConditionExpression": "attribute_not_exists(tenantId)"}
        else:
            condition = {
                "ConditionExpression": "revision = :expected",
                "ExpressionAttributeValues": {":expected": {"N": str(expected_revision)}},
            }
        try:
            self._client.put_item(
                TableName=self._table,
                Item=item_from_account(written),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **condition,
            )
        except ClientError as error:
            if condition_failed(error):
                old: Any = error.response.get("Item")
                raise RevisionConflict(account_from_item(old) if old else None) from None
            raise transient_error("put_item", error) from None
        except BotoCoreError as error:
            raise transient_error("put_item", error) from None
        return written


def item_from_account(account: Account) -> dict[str, Any]:
    document = account.model_dump(mode="json", exclude_none=True, by_alias=False)
    document["tenantId"] = document.pop("tenant_id")
    return {key: _serializer.serialize(value) for key, value in document.items()}


def account_from_item(item: dict[str, Any]) -> Account:
    document = {key: _plain(_deserializer.deserialize(value)) for key, value in item.items()}
    document["tenant_id"] = document.pop("tenantId")
    return Account.model_validate(document)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: _plain(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [_plain(inner) for inner in value]
    return value
