"""The usage events this project defines (`sbt_aws_ingestUsage`), parsed into the domain's raw usage."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import AliasChoices, Field

from sbt_billing.domain.errors import InvalidEvent
from sbt_billing.domain.usage import RawUsage
from sbt_billing.entrypoints.sbt_inbound import Inbound, TenantId, Text


class UsageItem(Inbound):
    name: Annotated[Text, Field(validation_alias=AliasChoices("name", "usageName", "metric"))]
    value: Annotated[Decimal, Field(validation_alias=AliasChoices("value", "quantity", "count"))]
    timestamp: datetime | None = None
    record_id: Annotated[Text | None, Field(validation_alias=AliasChoices("id", "recordId"))] = None


class UsageDetail(Inbound):
    """`sbt_aws_ingestUsage` (shape defined by this project; see README): a list of records under
    `usage`, or one record's fields beside `tenantId`."""

    tenant_id: Annotated[TenantId, Field(alias="tenantId")]
    usage: list[UsageItem] | None = None
    name: Annotated[Text | None, Field(validation_alias=AliasChoices("name", "usageName", "metric"))] = None
    value: Annotated[Decimal | None, Field(validation_alias=AliasChoices("value", "quantity", "count"))] = (
        None
    )
    timestamp: datetime | None = None
    record_id: Annotated[Text | None, Field(validation_alias=AliasChoices("id", "recordId"))] = None


class UsageEvent(EventBridgeModel):
    detail: UsageDetail


def usage_records(event: UsageEvent) -> list[RawUsage]:
    detail = event.detail
    if detail.usage is not None:
        items = detail.usage
    elif detail.name is not None and detail.value is not None:
        items = [
            UsageItem(name=detail.name, value=detail.value, timestamp=detail.timestamp, id=detail.record_id)
        ]
    else:
        raise InvalidEvent(
            "detail.usage", "is required (a list of {name, value, timestamp, id}) or name and value"
        )
    if not items:
        raise InvalidEvent("detail.usage", "is empty")
    return [
        RawUsage(
            name=item.name, value=item.value, timestamp=item.timestamp or event.time, record_id=item.record_id
        )
        for item in items
    ]
