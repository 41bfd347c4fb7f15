"""Seats and metered usage as the integration and reliability tests configure them: a per-seat price on
standard and premium, the API-call meter with its metered price, and the tenant the usage samples name."""

from __future__ import annotations

import json
from typing import Any

from devtools.local_run import rebased
from tests.support.harness import Stack, sample

TENANT = "8d2e4f60-1a3b-4c5d-8e9f-0a1b2c3d4e5f"
USAGE_SETTINGS = {
    "TIER_CATALOGUE": json.dumps(
        {
            "basic": {"price": "sbt_basic_monthly"},
            "standard": {"price": "sbt_standard_monthly", "seat_price": "sbt_premium_seat"},
            "premium": {"price": "sbt_premium_monthly", "seat_price": "sbt_premium_seat"},
        }
    ),
    "USAGE_METERS": json.dumps(
        {"api_calls": {"event_name": "sbt_api_calls", "price": "sbt_api_calls_metered"}}
    ),
}


def provision(stack: Stack) -> dict[str, Any]:
    [outcome] = stack.deliver(rebased(sample("03_provision_success_flat_missing_email.json")))
    assert outcome["result"] == "applied"
    return outcome
