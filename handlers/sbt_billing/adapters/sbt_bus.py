"""Events this product publishes to the SBT bus."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from sbt_billing.domain.errors import TransientBillingError

if TYPE_CHECKING:
    from mypy_boto3_events.client import EventBridgeClient


CANONICAL_PREFIX = "sbt_aws_"


class EventBridgePublisher:
    """Puts events on the SBT bus under SBT's naming: the domain says `sbt_aws_billingSuccess`, and a
    deployment of an SBT release from before that prefix (`prefix=""`) publishes `billingSuccess`."""

    def __init__(
        self, client: EventBridgeClient, bus_name: str, source: str, prefix: str = CANONICAL_PREFIX
    ) -> None:
        self._client = client
        self._bus = bus_name
        self._source = source
        self._prefix = prefix

    def publish(self, detail_type: str, detail: Mapping[str, object]) -> None:
        if detail_type.startswith(CANONICAL_PREFIX):
            detail_type = self._prefix + detail_type.removeprefix(CANONICAL_PREFIX)
        entry = {
            "EventBusName": self._bus,
            "Source": self._source,
            "DetailType": detail_type,
            "Detail": json.dumps(detail, separators=(",", ":"), default=str),
        }
        try:
            response = self._client.put_events(Entries=[entry])  # type: ignore[list-item]
        except (ClientError, BotoCoreError) as error:
            raise TransientBillingError(f"EventBridge put_events failed: {type(error).__name__}") from None
        if response.get("FailedEntryCount", 0):
            code = response["Entries"][0].get("ErrorCode", "unknown")
            raise TransientBillingError(f"EventBridge refused {detail_type}: {code}")
