"""The values the usage functions exchange through their ports: usage records, meter events, a meter's
state (a module of their own: the user and usage functions build none of the billing gateway's)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sbt_billing.domain.frozen import Frozen


class UsageRecord(Frozen):
    tenant_id: str
    identifier: str
    usage_name: str
    event_name: str
    value: str
    timestamp: datetime


class MeterEvent(Frozen):
    event_name: str
    identifier: str
    customer_id: str
    value: str
    timestamp: datetime


class MeterStatus(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"  # deactivated: Stripe drops its events
    MISSING = "missing"  # no meter has the event name
    MISCONFIGURED = "misconfigured"  # its payload keys are not the ones our events carry
