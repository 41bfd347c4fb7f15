"""Seats and metered usage end to end: user and usage events through the template's routes, the seat
sync queue on moto, meters and per-seat prices in the Stripe emulator."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from devtools.local_run import rebased
from tests.support.harness import Stack, sample, stack_on
from tests.support.usage import TENANT, USAGE_SETTINGS, provision


@pytest.fixture
def stack(moto_endpoint: str, emulator_url: str) -> Iterator[Stack]:
    with stack_on(moto_endpoint, emulator_url, USAGE_SETTINGS) as stack:
        stack.emulator.seed_usage_catalogue()
        stack.emulator.admin("DELETE", "requests")
        yield stack


def user_event(n: int, created: bool = True) -> dict[str, Any]:
    event = rebased(sample("11_tenant_user_created.json" if created else "12_tenant_user_deleted.json"))
    event["id"] = f"{event['id'][:-6]}{n:06d}"
    event["detail"]["userId"] = f"user-{n:05d}"
    return event


def seat_quantity(stack: Stack, subscription_id: str) -> int:
    subscription = stack.emulator.client().v1.subscriptions.retrieve(subscription_id)
    seat_items = [item for item in subscription["items"].data if item.price.lookup_key == "sbt_premium_seat"]
    assert len(seat_items) == 1
    return int(seat_items[0].quantity or 0)


def test_a_burst_of_a_thousand_users_ends_at_the_exact_count_in_a_handful_of_calls(stack: Stack) -> None:
    opened = provision(stack)
    for n in range(1000):
        stack.deliver(user_event(n))
        if n % 250 == 249:  # the delayed queue releases a sync now and then during the burst
            stack.run_seat_syncs()
    stack.run_seat_syncs()

    assert seat_quantity(stack, opened["subscription_id"]) == 1000
    counts = stack.emulator.counts()
    quantity_calls = counts.get("POST /v1/subscription_items/{id}", 0)
    print(
        f"\nseat events: 1000, Stripe quantity updates: {quantity_calls}, all Stripe calls: {sum(counts.values())}"
    )
    assert 1 <= quantity_calls <= 5


def test_a_duplicate_user_event_changes_nothing_and_a_delete_removes_the_seat(stack: Stack) -> None:
    opened = provision(stack)
    stack.deliver(user_event(1))
    stack.deliver(user_event(1))
    stack.deliver(user_event(2))
    stack.run_seat_syncs()
    assert seat_quantity(stack, opened["subscription_id"]) == 2

    [removed] = stack.deliver(user_event(2, created=False))
    stack.run_seat_syncs()

    assert removed["result"] == "recorded"
    assert seat_quantity(stack, opened["subscription_id"]) == 1


def test_users_added_before_the_account_opens_are_its_first_seats(stack: Stack) -> None:
    for n in range(3):
        stack.deliver(user_event(n))
    stack.run_seat_syncs()

    opened = provision(stack)

    assert seat_quantity(stack, opened["subscription_id"]) == 3


def meter_total(stack: Stack, customer_id: str) -> int:
    client = stack.emulator.client()
    [meter] = client.v1.billing.meters.list().data
    now = int(datetime.now(UTC).timestamp())
    summaries = client.v1.billing.meters.event_summaries.list(
        meter.id,
        params={
            "customer": customer_id,
            "start_time": (now // 86400 - 40) * 86400,
            "end_time": (now // 86400 + 1) * 86400,
        },
    )
    return int(sum(float(summary.aggregated_value) for summary in summaries.data))


def test_usage_reaches_the_meter_once_however_often_it_is_delivered(stack: Stack) -> None:
    opened = provision(stack)
    usage = rebased(sample("13_ingest_usage.json"))

    [first] = stack.deliver(usage)
    [again] = stack.deliver(usage)
    [republished] = stack.deliver({**usage, "id": "another-eventbridge-id"})

    assert (first["new"], first["sent"]) == (2, 2)
    assert (again["new"], republished["new"]) == (0, 0)
    assert meter_total(stack, opened["customer_id"]) == 2000
    assert stack.emulator.counts().get("POST /v2/billing/meter_event_stream") == 1


def test_usage_older_than_stripes_window_is_a_clear_error_not_a_silent_drop(stack: Stack) -> None:
    provision(stack)

    [outcome] = stack.deliver(rebased(sample("14_ingest_usage_too_old.json")))

    assert outcome["accepted"] == 0
    assert outcome["rejected"] == [
        {"index": 0, "reason": "usage[0].timestamp: is older than Stripe's 35-day window for meter events"}
    ]
    failures = [e for e in stack.published() if e["detail-type"] == "sbt_aws_billingFailure"]
    assert failures[0]["detail"]["operation"] == "ingest_usage"
    assert stack.emulator.counts().get("POST /v2/billing/meter_event_stream") is None


def test_usage_before_the_customer_exists_is_sent_by_the_scheduled_flush(stack: Stack) -> None:
    [kept] = stack.deliver(rebased(sample("13_ingest_usage.json")))
    assert (kept["new"], kept["sent"]) == (2, 0)
    opened = provision(stack)

    flushed = stack.invoke("UsageFlushFunction", {"source": "aws.events", "detail-type": "Scheduled Event"})

    assert flushed["sent"] == 2
    assert meter_total(stack, opened["customer_id"]) == 2000


def test_offboarding_sends_pending_usage_before_the_final_invoice(stack: Stack) -> None:
    from sbt_billing.domain.errors import TransientBillingError

    opened = provision(stack)
    stack.emulator.fault(route="POST /v2/billing/meter_event_stream", status=503, count=3)
    with pytest.raises(TransientBillingError):
        stack.deliver(rebased(sample("13_ingest_usage.json")))

    delete = rebased(sample("06_tenant_deleted.json"))
    delete["detail"]["tenantId"] = TENANT
    [closed] = stack.deliver(delete)

    assert closed["result"] == "applied"
    log = stack.emulator.admin("GET", "requests")["data"]
    routes = [entry["route"] for entry in log if entry["status"] < 400]
    assert routes.index("POST /v2/billing/meter_event_stream") < routes.index("DELETE /v1/subscriptions/{id}")
    assert meter_total(stack, opened["customer_id"]) == 2000
    invoices = stack.emulator.client().v1.invoices.list(params={"subscription": opened["subscription_id"]})
    final = invoices.data[0]
    assert any("API calls" in (line.description or "") for line in final.lines.data)


def test_the_billing_read_shows_this_periods_usage_per_meter_and_the_seat_count(stack: Stack) -> None:
    provision(stack)
    for n in range(3):
        stack.deliver(user_event(n))
    stack.run_seat_syncs()
    usage = rebased(sample("13_ingest_usage.json"))
    for record in usage["detail"]["usage"]:  # used within the subscription's first period
        record["timestamp"] = datetime.now(UTC).isoformat()
    stack.deliver(usage)
    request = sample("api_billing.json")
    request["path"] = request["path"].replace(request["pathParameters"]["tenantId"], TENANT)
    request["pathParameters"] = {"tenantId": TENANT}

    response = stack.invoke("BillingApiFunction", request)

    assert response["statusCode"] == 200
    body = json.loads(response["body"])
    assert body["seats"] == {"users": 3, "quantity": 3}
    [usage] = body["usage"]
    assert (usage["usageName"], usage["eventName"], usage["total"]) == ("api_calls", "sbt_api_calls", 2000.0)
