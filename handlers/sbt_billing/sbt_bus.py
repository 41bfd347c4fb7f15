"""Events this product publishes to the SBT bus."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from .errors import TransientBillingError

if TYPE_CHECKING:
    from mypy_boto3_events.client import EventBridgeClient


class EventBridgePublisher:
    def __init__(self, client: EventBridgeClient, bus_name: str, source: str) -> None:
        self._client = client
        self._bus = bus_name
        self._source = source

    def publish(self, detail_type: str, detail: Mapping[str, object]) -> None:
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
