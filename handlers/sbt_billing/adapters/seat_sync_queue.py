"""The delayed queue that coalesces a tenant's seat changes into one quantity update."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from sbt_billing.domain.errors import TransientBillingError

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient


class SqsSyncScheduler:
    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    def schedule(self, tenant_id: str, delay_seconds: int) -> None:
        try:
            self._client.send_message(
                QueueUrl=self._queue_url,
                MessageBody=json.dumps({"tenantId": tenant_id}),
                DelaySeconds=min(max(delay_seconds, 0), 900),
            )
        except (ClientError, BotoCoreError) as error:
            raise TransientBillingError(f"SQS send_message failed: {type(error).__name__}") from None
