"""Where reconciling keeps its place, in the reconcile table (one key, `id`; `expiration` is its TTL):

id = "reconcile#pass"                     the pass: its state as JSON, and its revision
id = "reconcile#seen#<pass>#<page>"       the subscription ids one listed page showed (kept 7 days)
id = "stripe-events#applied"              the newest Stripe event applied (applied_marks, which
                                          the webhook uses alone)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from sbt_billing.adapters.applied_marks import DynamoAppliedMarks
from sbt_billing.adapters.dynamo_errors import condition_failed, transient_error
from sbt_billing.domain.errors import RevisionConflict
from sbt_billing.domain.reconcile_state import PassState

STATE_KEY = "reconcile#pass"
SEEN_DAYS = 7
BATCH_GET_LIMIT = 100


class DynamoReconcileStore(DynamoAppliedMarks):
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
            if condition_failed(error):
                raise RevisionConflict(None) from None
            raise transient_error("put_item", error) from None
        except BotoCoreError as error:
            raise transient_error("put_item", error) from None
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
            raise transient_error("put_item", error) from None

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
                    raise transient_error("batch_get_item", error) from None
                for item in response.get("Responses", {}).get(self._table, []):
                    found.update(value["S"] for value in item["ids"]["L"])
                wanted = dict(response.get("UnprocessedKeys") or {})
        return found


def _seen_key(pass_id: str, page: int) -> str:
    return f"reconcile#seen#{pass_id}#{page}"
