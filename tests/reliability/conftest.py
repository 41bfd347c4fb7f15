"""Shared pieces of the reliability suite: a loopback stack with seats, usage and the webhook
configured, and helpers that turn the sample events into other tenants' and re-published facts."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from devtools.moto_server import AwsClients
from tests.harness import Stack, rebased, sample, stack_on
from tests.integration.test_seats_and_usage import USAGE_SETTINGS

WEBHOOK_SECRET = "whsec_reliability_" + "7" * 24


@pytest.fixture
def stack(moto_endpoint: str, emulator_url: str) -> Iterator[Stack]:
    """Every function configured: lifecycle, seats and metered usage, the webhook's signing secret."""
    secret_name = f"sbt/stripe-webhook-{uuid.uuid4().hex[:8]}"
    AwsClients(moto_endpoint).secretsmanager().create_secret(Name=secret_name, SecretString=WEBHOOK_SECRET)
    overrides = {**USAGE_SETTINGS, "WEBHOOK_SECRET_NAME": secret_name}
    with stack_on(moto_endpoint, emulator_url, overrides) as stack:
        stack.emulator.seed_usage_catalogue()
        stack.emulator.admin("POST", "webhook_endpoints", {"secret": WEBHOOK_SECRET})
        stack.emulator.admin("DELETE", "requests")
        yield stack


def copied(event: dict[str, Any]) -> dict[str, Any]:
    duplicate: dict[str, Any] = json.loads(json.dumps(event))
    return duplicate


def for_tenant(name: str, tenant_id: str, n: int = 0) -> dict[str, Any]:
    """The sample event `name`, rebased to now, about `tenant_id`, under its own EventBridge id."""
    event = copied(rebased(sample(name)))
    event["detail"]["tenantId"] = tenant_id
    event["id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{name}/{tenant_id}/{n}"))
    return event


def republished(event: dict[str, Any], n: int) -> dict[str, Any]:
    """The same fact put on the bus again: a new EventBridge id and a later envelope time."""
    again = copied(event)
    again["id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{event['id']}/republished/{n}"))
    seconds = int(again["time"][17:19])
    again["time"] = f"{again['time'][:17]}{(seconds + n) % 60:02d}{again['time'][19:]}"
    return again


def customers_by_tenant(stack: Stack) -> dict[str, list[dict[str, Any]]]:
    state = stack.emulator.admin("GET", "state")
    customers = state["customers"]
    listed = customers.values() if isinstance(customers, dict) else customers
    found: dict[str, list[dict[str, Any]]] = {}
    for customer in listed:
        tenant = (customer.get("metadata") or {}).get("tenantId")
        found.setdefault(str(tenant), []).append(customer)
    return found


def subscriptions(stack: Stack) -> list[dict[str, Any]]:
    state = stack.emulator.admin("GET", "state")
    listed = state["subscriptions"]
    return list(listed.values() if isinstance(listed, dict) else listed)
