"""The accounts table read many at a time: the account store as a reconcile run and adoption see it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from sbt_billing.adapters.dynamo_errors import transient_error
from sbt_billing.adapters.tenant_accounts import DynamoAccountStore, account_from_item
from sbt_billing.domain.models import Account, AccountStatus
from sbt_billing.domain.values import AccountRef, Page


class DynamoAccountDirectory(DynamoAccountStore):
    def get_many(self, tenant_ids: Sequence[str]) -> dict[str, Account]:
        """Up to 100 accounts in one BatchGetItem (strongly consistent), unprocessed keys asked again."""
        found: dict[str, Account] = {}
        wanted: dict[str, Any] = {
            self._table: {
                "Keys": [{"tenantId": {"S": tenant}} for tenant in tenant_ids],
                "ConsistentRead": True,
            }
        }
        while wanted:
            try:
                response = self._client.batch_get_item(RequestItems=wanted)
            except (ClientError, BotoCoreError) as error:
                raise transient_error("batch_get_item", error) from None
            for item in response.get("Responses", {}).get(self._table, []):
                account = account_from_item(item)
                found[account.tenant_id] = account
            wanted = dict(response.get("UnprocessedKeys") or {})
        return found

    def refs(self, after: str | None, limit: int) -> Page[AccountRef]:
        """One Scan page of up to `limit` accounts after the tenant `after` (strongly consistent), only
        the attributes a reference holds."""
        options: dict[str, Any] = {
            "TableName": self._table,
            "Limit": limit,
            "ConsistentRead": True,
            "ProjectionExpression": "tenantId, #status, subscription_id",
            "ExpressionAttributeNames": {"#status": "status"},
        }
        if after is not None:
            options["ExclusiveStartKey"] = {"tenantId": {"S": after}}
        try:
            response = self._client.scan(**options)
        except (ClientError, BotoCoreError) as error:
            raise transient_error("scan", error) from None
        refs = tuple(
            AccountRef(
                tenant_id=item["tenantId"]["S"],
                status=AccountStatus(item["status"]["S"]) if "status" in item else AccountStatus.PENDING,
                subscription_id=item["subscription_id"]["S"] if "subscription_id" in item else None,
            )
            for item in response.get("Items", [])
        )
        return Page(refs, "LastEvaluatedKey" in response)
