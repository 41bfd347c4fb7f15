"""The tenant update function's queue, as the webhook's way to hand it a fact only the lifecycle may act on
in Stripe (the webhook's key may only read): a payment method the tenant gave. The message is an
EventBridge-shaped event of this stack's own detail type, which the queue's function parses like SBT's."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from sbt_billing.domain.errors import TransientBillingError

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient

PAYMENT_METHOD_GIVEN = "sbtBillingPaymentMethodGiven"
SOURCE = "sbt.billing.stripe"


class SqsLifecycleInbox:
    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    def payment_method_given(
        self, tenant_id: str, payment_method_id: str, at: datetime, event_id: str
    ) -> None:
        envelope = {
            "version": "0",
            "id": event_id,
            "detail-type": PAYMENT_METHOD_GIVEN,
            "source": SOURCE,
            "account": "",
            "time": at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "region": "",
            "resources": [],
            "detail": {"tenantId": tenant_id, "paymentMethod": payment_method_id, "stripeEventId": event_id},
        }
        try:
            self._client.send_message(QueueUrl=self._queue_url, MessageBody=json.dumps(envelope))
        except (ClientError, BotoCoreError) as error:
            raise TransientBillingError(f"SQS send_message failed: {type(error).__name__}") from None
