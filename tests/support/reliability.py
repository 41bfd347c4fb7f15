"""The reliability suite's helpers: sample events re-addressed to other tenants, re-published, a day of
interleaved events, and what Stripe holds after them."""

from __future__ import annotations

import json
import uuid
from typing import Any

from devtools.local_run import rebased
from tests.support.harness import Stack, sample

WEBHOOK_SECRET = "whsec_reliability_" + "7" * 24


def copied(event: dict[str, Any]) -> dict[str, Any]:
    duplicate: dict[str, Any] = json.loads(json.dumps(event))
    return duplicate


def registration_of(tenant_id: str) -> str:
    """The registration SBT made the tenant under (in these tests, one derived from its id)."""
    return f"reg-{tenant_id}"


def tenant_of(event: dict[str, Any]) -> str:
    """The tenant an event made by for_tenant is about."""
    detail = event["detail"]
    return str(detail["tenantId"] if "tenantId" in detail else detail["tenantRegistrationId"][len("reg-") :])


def for_tenant(name: str, tenant_id: str, n: int = 0) -> dict[str, Any]:
    """The sample event `name`, rebased to now, about `tenant_id`, under its own EventBridge id. SBT's
    provisioning events name the tenant's registration only, as the samples do."""
    event = copied(rebased(sample(name)))
    if "tenantRegistrationId" in event["detail"]:
        event["detail"]["tenantRegistrationId"] = registration_of(tenant_id)
    if "tenantId" in event["detail"] or "tenantRegistrationId" not in event["detail"]:
        event["detail"]["tenantId"] = tenant_id
    event["id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{name}/{tenant_id}/{n}"))
    # (`rebased` has moved `updatedAt` with the envelope already, so that the samples' order holds.)
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


# A day of the control plane's facts: three tenants provisioned, updated (details, then a tier with
# seats), users created and one deleted, usage reported; the last tenant is offboarded.
DAY_TENANTS = (
    "3f1c9a52-7e0b-4d8e-9a43-2b6f0c1d5e77",
    "8d2e4f60-1a3b-4c5d-8e9f-0a1b2c3d4e5f",
    "5a6b7c8d-0000-4e5f-8a9b-reliability3",
)


def day_of_events() -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for tenant in DAY_TENANTS:
        events += [
            for_tenant("00_onboarding_request.json", tenant),
            for_tenant("01_provision_success.json", tenant),
            for_tenant("04_tenant_updated.json", tenant),
            for_tenant("05_tenant_updated_tier_change.json", tenant),
        ]
        for n in range(3):
            user = for_tenant("11_tenant_user_created.json", tenant, n)
            user["detail"]["userId"] = f"{tenant[:8]}-user-{n}"
            events.append(user)
        gone = for_tenant("12_tenant_user_deleted.json", tenant)
        gone["detail"]["userId"] = f"{tenant[:8]}-user-1"
        events += [gone, for_tenant("13_ingest_usage.json", tenant)]
    events.append(for_tenant("06_tenant_deleted.json", DAY_TENANTS[-1]))
    return events


def deliver_day(stack: Stack, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every event through the functions its rule routes it to, then what the platform runs later:
    the delayed seat syncs and the scheduled usage flush."""
    outcomes = [outcome for event in events for outcome in stack.deliver(event)]
    stack.run_seat_syncs()
    outcomes.append(stack.invoke("UsageFlushFunction", sample("16_usage_flush_schedule.json")))
    return outcomes
