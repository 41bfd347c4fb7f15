"""Redelivery after every key has expired: Stripe's 24-hour idempotency window passed and any
Powertools idempotency record gone (DynamoDB's TTL), a replay of a whole day of events writes nothing
to Stripe. The lifecycle keeps no record that expires: the account item itself holds every fact."""

from __future__ import annotations

import pytest

from tests.support.harness import Stack
from tests.support.reliability import day_of_events, deliver_day

pytestmark = pytest.mark.reliability


def test_a_day_replayed_after_25_hours_writes_nothing_new(stack: Stack) -> None:
    events = day_of_events()
    first = deliver_day(stack, events)
    assert all(outcome.get("result") != "rejected" for outcome in first)
    writes_before, counts_before = stack.emulator.writes(), stack.emulator.counts()
    dynamodb = stack.clients.dynamodb()
    records = stack.table_items("IdempotencyTable")
    for item in records:  # as DynamoDB's TTL would
        dynamodb.delete_item(TableName=stack.resources.tables["IdempotencyTable"], Key={"id": item["id"]})
    stack.emulator.admin("POST", "clock", {"advance_seconds": 25 * 3600})  # Stripe's key window passes

    replayed = deliver_day(stack, events)

    new_writes = stack.emulator.writes() - writes_before
    print(
        f"\nredelivery after expiry: {len(events)} events replayed 25 h later with {len(records)} "
        f"idempotency records deleted -> {new_writes} new Stripe writes (the first pass made {writes_before})"
    )
    assert writes_before > 0
    assert new_writes == 0, {
        route: n - counts_before.get(route, 0)
        for route, n in stack.emulator.counts().items()
        if n != counts_before.get(route, 0)
    }
    assert all(outcome.get("result") not in ("rejected", "failed") for outcome in replayed)
