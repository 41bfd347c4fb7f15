"""SBT's tenant user events (`sbt_aws_tenantUserCreated` / `sbt_aws_tenantUserDeleted`), parsed into the
seat ledger's facts."""

from __future__ import annotations

from datetime import UTC
from typing import Annotated

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import Field

from sbt_billing.domain.errors import InvalidEvent
from sbt_billing.entrypoints.sbt_inbound import Inbound, TenantId, Text


class TenantUserDetail(Inbound):
    """`sbt_aws_tenantUserCreated` / `sbt_aws_tenantUserDeleted`: the user by `userId`, else `userName`."""

    tenant_id: Annotated[TenantId, Field(alias="tenantId")]
    user_id: Annotated[Text | None, Field(alias="userId")] = None
    user_name: Annotated[Text | None, Field(alias="userName")] = None


class TenantUserEvent(EventBridgeModel):
    detail: TenantUserDetail


def user_fact(event: TenantUserEvent, present: bool) -> tuple[str, str, bool, str]:
    """(tenant id, user id, present, stamp). Stamps compare as strings in time order; at the same
    instant a deletion wins over a creation (a user is created before it is deleted)."""
    user = event.detail.user_id or event.detail.user_name
    if user is None:
        raise InvalidEvent("detail.userId", "is required (or detail.userName)")
    at = event.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return event.detail.tenant_id, user, present, f"{at}|{0 if present else 1}"
