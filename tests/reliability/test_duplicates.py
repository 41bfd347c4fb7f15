"""Duplicates and concurrency: however often, and however simultaneously, a provisioning fact arrives,
each tenant ends with one customer and one subscription."""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.support.harness import Stack
from tests.support.reliability import customers_by_tenant, for_tenant, republished, subscriptions

pytestmark = pytest.mark.reliability

ONBOARDING = "00_onboarding_request.json"
PROVISION = "01_provision_success.json"


def test_n_tenants_times_k_deliveries_make_exactly_n_customers_and_subscriptions(stack: Stack) -> None:
    tenants, deliveries = 20, 5
    events: list[dict[str, Any]] = []
    for n in range(tenants):
        first = for_tenant(PROVISION, f"dup-tenant-{n:02d}")
        # The same id again (EventBridge at-least-once), and the fact re-published under new ids.
        events += [first, first, *(republished(first, k) for k in range(1, deliveries - 1))]
    random.Random(5).shuffle(events)
    for n in range(tenants):  # SBT registered each tenant: its id, registration and tier
        stack.deliver(for_tenant(ONBOARDING, f"dup-tenant-{n:02d}"))

    outcomes = [stack.deliver(event)[0] for event in events]

    customers = customers_by_tenant(stack)
    subscribed = subscriptions(stack)
    print(
        f"\nduplicates: {tenants} tenants x {deliveries} deliveries ({len(events)} events) -> "
        f"{sum(len(c) for c in customers.values())} customers, {len(subscribed)} subscriptions"
    )
    results = Counter(str(o["result"]) for o in outcomes)
    assert results == {"applied": tenants, "unchanged": len(events) - tenants}, results
    assert sorted(customers) == sorted(f"dup-tenant-{n:02d}" for n in range(tenants))
    assert all(len(found) == 1 for found in customers.values())
    assert len(subscribed) == tenants
    assert len({s["customer"] for s in subscribed}) == tenants
    counts = stack.emulator.counts()
    assert (counts.get("POST /v1/customers"), counts.get("POST /v1/subscriptions")) == (tenants, tenants)


def test_twenty_simultaneous_deliveries_make_one_customer_and_none_raises(stack: Stack) -> None:
    stack.deliver(for_tenant(ONBOARDING, "concurrent-tenant"))
    event = for_tenant(PROVISION, "concurrent-tenant")
    copies = [event if n % 2 == 0 else republished(event, n) for n in range(20)]
    start = threading.Barrier(len(copies))
    errors: list[BaseException] = []

    def deliver(copy: dict[str, Any]) -> dict[str, Any] | None:
        start.wait()
        try:
            return stack.deliver(copy)[0]
        except BaseException as error:  # a raise would send the event to the DLQ wrongly
            errors.append(error)
            return None

    with ThreadPoolExecutor(max_workers=len(copies)) as pool:
        outcomes = list(pool.map(deliver, copies))

    results = Counter(str(o["result"]) for o in outcomes if o is not None)
    customers = customers_by_tenant(stack)
    print(
        f"\nconcurrency: {len(copies)} simultaneous deliveries -> "
        f"{len(customers.get('concurrent-tenant', []))} customer, {len(subscriptions(stack))} subscription, "
        f"{len(errors)} raised; results {dict(results)}"
    )
    assert errors == []
    # Copies find the fact being driven (in flight) or done (unchanged); a republished copy restamps
    # the fact and is recorded for the driver to apply.
    assert set(results) <= {"applied", "in_flight", "unchanged", "recorded"}
    assert results["applied"] == 1
    assert len(customers["concurrent-tenant"]) == 1
    assert len(subscriptions(stack)) == 1
    counts = stack.emulator.counts()
    assert (counts.get("POST /v1/customers"), counts.get("POST /v1/subscriptions")) == (1, 1)


def test_copies_on_the_queue_at_full_concurrency_leave_nothing_failed(stack: Stack) -> None:
    """The deployed path: the rule's copies of one fact on ProvisionSuccessQueue, received by 20
    concurrent invocations; not one record is reported failed (SQS would redeliver it, and in the end
    dead-letter it)."""
    stack.deliver(for_tenant(ONBOARDING, "queued-tenant"))
    event = for_tenant(PROVISION, "queued-tenant")
    copies = [event if n % 2 == 0 else republished(event, n) for n in range(20)]
    sqs = stack.clients.sqs()
    for copy in copies:
        sqs.send_message(
            QueueUrl=stack.resources.queues["ProvisionSuccessQueue"], MessageBody=json.dumps(copy)
        )

    run = stack.run_queue("ProvisionSuccessQueue", concurrency=20)

    customers = customers_by_tenant(stack)
    print(
        f"\nqueued copies: {len(copies)} on the queue, {run.invocations} invocations at concurrency 20 -> "
        f"{len(customers.get('queued-tenant', []))} customer, {run.failed_records} records failed, "
        f"{len(stack.dead_letters())} dead-lettered"
    )
    assert run.records == len(copies)
    assert run.failed_records == 0
    assert len(customers["queued-tenant"]) == 1
    assert len(subscriptions(stack)) == 1
    assert stack.dead_letters() == []
