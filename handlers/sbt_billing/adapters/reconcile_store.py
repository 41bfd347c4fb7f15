"""Where reconciling keeps its place, in the reconcile table (one key, `id`; `expiration` is its TTL):

id = "reconcile#pass"                     the pass: its state as JSON, and its revision
id = "reconcile#seen#<pass>#<page>"       the subscription ids one listed page showed (kept 7 days)
id = "stripe-events#applied"              the newest Stripe event applied: `created`, `eventId`
                                          (moved by the webhook on each event, and by a replay)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from sbt_billing.domain.errors import RevisionConflict, TransientBillingError
from sbt_billing.domain.models import StripeStamp
from sbt_billing.domain.reconcile_state import PassState

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

STATE_KEY = "reconcile#pass"
APPLIED = "stripe-events#applied"
SEEN_DAYS = 7
BATCH_GET_LIMIT = 100


class DynamoReconcileStore:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    # -- the pass ---------------------------------------------------------------------------------

    def load_pass(self) -> PassState | None:
        item = self._get(STATE_KEY)
        if item is None:
            return None
        state = PassState.model_validate_json(item["state"]["S"])
        return state.model_copy(update={"revision": int(item["revision"]["N"])})

    def save_pass(self, state: PassState, expected_revision: int | None) -> PassState:
        written = state.model_copy(
            update={"revision": 0 if expected_revision is None else expected_revision + 1}
        )
        condition: dict[str, Any] = (
            {"ConditionExpression": "attribute_not_exists(id)"}
            if expected_revision is None
            else {
                "ConditionExpression": "revision = :expected",
                "ExpressionAttributeValues": {":expected": {"N": str(expected_revision)}},
            }
        )
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    "id": {"S": STATE_KEY},
                    "revision": {"N": str(written.revision)},
                    "state": {"S": written.model_dump_json(exclude={"revision"})},
                },
                **condition,
            )
        except ClientError as error:
            if _conditional(error):
                raise RevisionConflict(None) from None
            raise _transient("put_item", error) from None
        except BotoCoreError as error:
            raise _transient("put_item", error) from None
        return written

    # -- the subscriptions a pass listed ----------------------------------------------------------

    def add_seen(self, pass_id: str, page: int, subscription_ids: Sequence[str]) -> None:
        item: dict[str, Any] = {
            "id": {"S": _seen_key(pass_id, page)},
            "ids": {"L": [{"S": value} for value in subscription_ids]},
            "expiration": {"N": str(int(time.time()) + SEEN_DAYS * 86400)},
        }
        try:
            self._client.put_item(TableName=self._table, Item=item)
        except (ClientError, BotoCoreError) as error:
            raise _transient("put_item", error) from None

    def seen(self, pass_id: str, pages: int) -> set[str]:
        keys = [_seen_key(pass_id, page) for page in range(1, pages + 1)]
        found: set[str] = set()
        for start in range(0, len(keys), BATCH_GET_LIMIT):
            wanted: dict[str, Any] = {
                self._table: {
                    "Keys": [{"id": {"S": key}} for key in keys[start : start + BATCH_GET_LIMIT]],
                    "ConsistentRead": True,
                }
            }
            while wanted:
                try:
                    response = self._client.batch_get_item(RequestItems=wanted)
                except (ClientError, BotoCoreError) as error:
                    raise _transient("batch_get_item", error) from None
                for item in response.get("Responses", {}).get(self._table, []):
                    found.update(value["S"] for value in item["ids"]["L"])
                wanted = dict(response.get("UnprocessedKeys") or {})
        return found

    # -- the last Stripe event applied ------------------------------------------------------------

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
            if _conditional(error):
                return  # an event as new or newer is the mark already
            raise _transient("update_item", error) from None
        except BotoCoreError as error:
            raise _transient("update_item", error) from None

    def _get(self, key: str) -> dict[str, Any] | None:
        try:
            response = self._client.get_item(
                TableName=self._table, Key={"id": {"S": key}}, ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as error:
            raise _transient("get_item", error) from None
        item: dict[str, Any] | None = response.get("Item")
        return item


def _seen_key(pass_id: str, page: int) -> str:
    return f"reconcile#seen#{pass_id}#{page}"


def _conditional(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def _transient(operation: str, error: Exception) -> TransientBillingError:
    code = (
        error.response.get("Error", {}).get("Code", "unknown")
        if isinstance(error, ClientError)
        else type(error).__name__
    )
    return TransientBillingError(f"DynamoDB {operation} failed: {code}")
