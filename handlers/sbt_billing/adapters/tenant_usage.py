"""Seats and usage in DynamoDB: one partition per tenant in the usage table.

    sk = "user#<id>"          a user: present (bool) and the stamp of the last fact applied
    sk = "seats"              the seat sync's coordination: version, scheduled, applied quantity/item
    sk = "usage#<identifier>" a usage record: state pending | sent | rejected (+ reason)

Pending usage records also carry `pendingTenant`, the key of a sparse index (`pending`) that lists
exactly the records still to send; every usage record carries `identifier` (its Stripe meter event
identifier), the key of the sparse index (`identifier`) through which Stripe's error reports find it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from sbt_billing.adapters.dynamo_errors import condition_failed, transient_error
from sbt_billing.domain.errors import TransientBillingError
from sbt_billing.domain.usage_values import UsageRecord

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

PENDING_INDEX = "pending"
IDENTIFIER_INDEX = "identifier"
SEATS = "seats"
BATCH_WRITE_LIMIT = 25


class DynamoTenantUsage:
    """Implements SeatLedger and UsageOutbox."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    # -- seats --------------------------------------------------------------------------------------

    def record_user(self, tenant_id: str, user_id: str, present: bool, stamp: str) -> bool:
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=_key(tenant_id, f"user#{user_id}"),
                UpdateExpression="SET present = :present, stamp = :stamp",
                ConditionExpression="attribute_not_exists(sk) OR stamp < :stamp",
                ExpressionAttributeValues={":present": {"BOOL": present}, ":stamp": {"S": stamp}},
                ReturnValues="ALL_OLD",
            )
        except ClientError as error:
            if condition_failed(error):
                return False  # an older fact, or this one again
            raise transient_error("update_item", error) from None
        except BotoCoreError as error:
            raise transient_error("update_item", error) from None
        old = response.get("Attributes")
        was_present = bool(old and old.get("present", {}).get("BOOL"))
        return was_present != present

    def count(self, tenant_id: str) -> int:
        total = 0
        for page in self._pages(
            KeyConditionExpression="tenantId = :tenant AND begins_with(sk, :users)",
            FilterExpression="present = :yes",
            ExpressionAttributeValues={
                ":tenant": {"S": tenant_id},
                ":users": {"S": "user#"},
                ":yes": {"BOOL": True},
            },
            Select="COUNT",
            ConsistentRead=True,
        ):
            total += int(page.get("Count", 0))
        return total

    def claim_sync(self, tenant_id: str, changed: bool) -> bool:
        response = self._update(
            Key=_key(tenant_id, SEATS),
            UpdateExpression="SET scheduled = :yes ADD version :change",
            ExpressionAttributeValues={":yes": {"BOOL": True}, ":change": {"N": "1" if changed else "0"}},
            # ALL_OLD, not UPDATED_OLD: whether an attribute SET to its current value counts as
            # "updated" is not something to depend on (moto, for one, leaves it out).
            ReturnValues="ALL_OLD",
        )
        old = response.get("Attributes", {})
        return not old.get("scheduled", {}).get("BOOL", False)

    def release_claim(self, tenant_id: str) -> None:
        self._update(
            Key=_key(tenant_id, SEATS),
            UpdateExpression="SET scheduled = :no",
            ExpressionAttributeValues={":no": {"BOOL": False}},
        )

    def sync_version(self, tenant_id: str) -> tuple[int, int | None, str | None]:
        try:
            item = self._client.get_item(
                TableName=self._table, Key=_key(tenant_id, SEATS), ConsistentRead=True
            ).get("Item", {})
        except (ClientError, BotoCoreError) as error:
            raise transient_error("get_item", error) from None
        version = int(item["version"]["N"]) if "version" in item else 0
        quantity = int(item["appliedQuantity"]["N"]) if "appliedQuantity" in item else None
        applied_item = item["appliedItem"]["S"] if "appliedItem" in item else None
        return version, quantity, applied_item

    def sync_scheduled(self, tenant_id: str) -> bool:
        try:
            item = self._client.get_item(
                TableName=self._table,
                Key=_key(tenant_id, SEATS),
                ConsistentRead=True,
                ProjectionExpression="scheduled",
            ).get("Item", {})
        except (ClientError, BotoCoreError) as error:
            raise transient_error("get_item", error) from None
        return bool(item.get("scheduled", {}).get("BOOL", False))

    def finish_sync(self, tenant_id: str, version: int, quantity: int | None, item_id: str | None) -> bool:
        applied = (
            "appliedQuantity = :quantity, appliedItem = :item" if quantity is not None and item_id else ""
        )
        values: dict[str, Any] = {":no": {"BOOL": False}, ":version": {"N": str(version)}}
        if applied:
            values |= {":quantity": {"N": str(quantity)}, ":item": {"S": item_id}}
        try:
            self._client.update_item(
                TableName=self._table,
                Key=_key(tenant_id, SEATS),
                UpdateExpression="SET scheduled = :no" + (f", {applied}" if applied else ""),
                ConditionExpression="version = :version"
                if version
                else "attribute_not_exists(version) OR version = :version",
                ExpressionAttributeValues=values,
            )
            return True
        except ClientError as error:
            if not condition_failed(error):
                raise transient_error("update_item", error) from None
        except BotoCoreError as error:
            raise transient_error("update_item", error) from None
        if applied:  # what Stripe now has stands, even though another sync must follow
            self._update(
                Key=_key(tenant_id, SEATS),
                UpdateExpression=f"SET {applied}",
                ExpressionAttributeValues={key: values[key] for key in (":quantity", ":item")},
            )
        return False

    # -- usage --------------------------------------------------------------------------------------

    def add(self, records: Sequence[UsageRecord]) -> list[UsageRecord]:
        new = []
        for record in records:
            try:
                self._client.put_item(
                    TableName=self._table,
                    Item=_item(record, state="pending"),
                    ConditionExpression="attribute_not_exists(sk)",
                )
                new.append(record)
            except ClientError as error:
                if not condition_failed(error):
                    raise transient_error("put_item", error) from None
            except BotoCoreError as error:
                raise transient_error("put_item", error) from None
        return new

    def pending(self, tenant_id: str) -> list[UsageRecord]:
        records = []
        for page in self._pages(
            IndexName=PENDING_INDEX,
            KeyConditionExpression="pendingTenant = :tenant",
            ExpressionAttributeValues={":tenant": {"S": tenant_id}},
        ):
            records += [_record(item) for item in page.get("Items", [])]
        return records

    def pending_tenants(self) -> list[str]:
        tenants: set[str] = set()
        paginator = self._client.get_paginator("scan")
        try:
            for page in paginator.paginate(
                TableName=self._table, IndexName=PENDING_INDEX, ProjectionExpression="pendingTenant"
            ):
                tenants.update(item["pendingTenant"]["S"] for item in page.get("Items", []))
        except (ClientError, BotoCoreError) as error:
            raise transient_error("scan", error) from None
        return sorted(tenants)

    def mark_sent(self, records: Sequence[UsageRecord]) -> None:
        """Rewrites the records as sent (out of the pending index), 25 to a BatchWriteItem. A record's
        content never changes, so rewriting it whole is safe, and cheaper than a transaction."""
        for start in range(0, len(records), BATCH_WRITE_LIMIT):
            requests: list[Any] = [
                {"PutRequest": {"Item": _item(record, state="sent")}}
                for record in records[start : start + BATCH_WRITE_LIMIT]
            ]
            for attempt in range(8):
                try:
                    response = self._client.batch_write_item(RequestItems={self._table: requests})
                except (ClientError, BotoCoreError) as error:
                    raise transient_error("batch_write_item", error) from None
                requests = response.get("UnprocessedItems", {}).get(self._table, [])
                if not requests:
                    break
                time.sleep(min(1.0, 0.05 * 2**attempt))
            else:
                raise TransientBillingError("DynamoDB batch_write_item left items unprocessed")

    def mark_rejected(self, record: UsageRecord, reason: str) -> bool:
        try:
            self._client.update_item(
                TableName=self._table,
                Key=_key(record.tenant_id, f"usage#{record.identifier}"),
                UpdateExpression="SET #state = :rejected, reason = :reason REMOVE pendingTenant",
                ConditionExpression="attribute_exists(sk) AND #state <> :rejected",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={":rejected": {"S": "rejected"}, ":reason": {"S": reason}},
            )
        except ClientError as error:
            if condition_failed(error):
                return False
            raise transient_error("update_item", error) from None
        except BotoCoreError as error:
            raise transient_error("update_item", error) from None
        return True

    def find(self, identifier: str) -> UsageRecord | None:
        for page in self._pages(
            IndexName=IDENTIFIER_INDEX,
            KeyConditionExpression="identifier = :identifier",
            ExpressionAttributeValues={":identifier": {"S": identifier}},
        ):
            for item in page.get("Items", []):
                return _record(item)
        return None

    # -- plumbing -----------------------------------------------------------------------------------

    def _update(self, **kwargs: Any) -> Any:
        try:
            return self._client.update_item(TableName=self._table, **kwargs)
        except (ClientError, BotoCoreError) as error:
            raise transient_error("update_item", error) from None

    def _pages(self, **kwargs: Any) -> Iterator[Any]:
        paginator = self._client.get_paginator("query")
        try:
            yield from paginator.paginate(TableName=self._table, **kwargs)
        except (ClientError, BotoCoreError) as error:
            raise transient_error("query", error) from None


def _key(tenant_id: str, sort_key: str) -> dict[str, Any]:
    return {"tenantId": {"S": tenant_id}, "sk": {"S": sort_key}}


def _item(record: UsageRecord, state: str) -> dict[str, Any]:
    item = {
        **_key(record.tenant_id, f"usage#{record.identifier}"),
        "usageName": {"S": record.usage_name},
        "eventName": {"S": record.event_name},
        "value": {"S": record.value},
        "timestamp": {"S": record.timestamp.isoformat()},
        "state": {"S": state},
        "identifier": {"S": record.identifier},
    }
    if state == "pending":
        item["pendingTenant"] = {"S": record.tenant_id}  # the sparse index lists only what is pending
    return item


def _record(item: dict[str, Any]) -> UsageRecord:
    return UsageRecord(
        tenant_id=item["tenantId"]["S"],
        identifier=item["sk"]["S"].removeprefix("usage#"),
        usage_name=item["usageName"]["S"],
        event_name=item["eventName"]["S"],
        value=item["value"]["S"],
        timestamp=datetime.fromisoformat(item["timestamp"]["S"]),
    )
