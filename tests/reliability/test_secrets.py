"""Secrets stay out of the logs: a run of every sample event, the webhook's deliveries included, with
the functions logging at DEBUG, prints no Stripe key, no webhook signing secret and no email address."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from tests.support.harness import EVENTS, TEST_KEY, Stack, sample
from tests.support.reliability import WEBHOOK_SECRET, day_of_events, deliver_day, for_tenant

pytestmark = pytest.mark.reliability

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
STRIPE_KEY = re.compile(r"\b[sr]k_(test|live)_[A-Za-z0-9]+")
SIGNING_SECRET = re.compile(r"whsec_[A-Za-z0-9_]+")
FUNCTIONS_BY_SAMPLE = {
    "15_seat_sync_batch.json": "SeatSyncFunction",
    "16_usage_flush_schedule.json": "UsageFlushFunction",
}


def webhook_request(payload: str, headers: dict[str, str]) -> dict[str, Any]:
    event = sample("webhook_invoice_paid.json")
    event["body"] = payload
    event["headers"] = {**event["headers"], **headers}
    event["multiValueHeaders"] = {name: [value] for name, value in event["headers"].items()}
    return event


def run_every_sample(stack: Stack) -> int:
    """Returns the number of invocations."""
    outcomes = deliver_day(stack, day_of_events())
    for path in sorted(Path(EVENTS).glob("*.json")):
        event = sample(path.name)
        if path.name.startswith("api_"):
            outcomes.append(stack.request(event))
        elif path.name.startswith("webhook_"):
            outcomes.append(stack.invoke("StripeWebhookFunction", event))
        elif path.name in FUNCTIONS_BY_SAMPLE:
            outcomes.append(stack.invoke(FUNCTIONS_BY_SAMPLE[path.name], event))
        else:
            tenant = event.get("detail", {}).get("tenantId")
            event = for_tenant(path.name, tenant) if isinstance(tenant, str) else event
            outcomes += stack.deliver(event)
    # Every event Stripe recorded, delivered to the webhook as Stripe signs it (customers carry emails).
    for recorded in stack.emulator.admin("GET", "events")["data"]:
        delivery = stack.emulator.admin("POST", f"events/{recorded['id']}/signed", {})
        outcomes.append(
            stack.invoke("StripeWebhookFunction", webhook_request(delivery["payload"], delivery["headers"]))
        )
    return len(outcomes)


def test_no_key_signing_secret_or_email_reaches_the_logs(
    stack: Stack, capfd: pytest.CaptureFixture[str]
) -> None:
    from sbt_billing.entrypoints.observability import logger

    # The logger's handler holds the stdout of whenever it was made (under pytest, possibly another
    # test's capture): point it at a buffer for this run, and read what reaches stdout itself (metrics)
    # from capfd.
    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    previous_stream = handler.setStream(buffer)
    previous = logger.log_level
    logger.setLevel("DEBUG")
    try:
        invocations = run_every_sample(stack)
    finally:
        logger.setLevel(previous)
        handler.setStream(previous_stream)
    output = buffer.getvalue() + capfd.readouterr().out

    lines = output.splitlines()
    logged = [json.loads(line) for line in lines if line.startswith("{") and '"level"' in line]
    keys, secrets, emails = STRIPE_KEY.findall(output), SIGNING_SECRET.findall(output), EMAIL.findall(output)
    print(
        f"\nsecrets: {invocations} invocations, {len(lines)} stdout lines ({len(logged)} log records) -> "
        f"{len(keys)} Stripe keys, {len(secrets)} signing secrets, {len(emails)} email addresses"
    )
    assert len(logged) > invocations / 2, "the run logged"
    assert {"webhook processed", "event processed", "user recorded"} <= {r["message"] for r in logged}
    assert TEST_KEY not in output
    assert WEBHOOK_SECRET not in output
    assert keys == []
    assert secrets == []
    assert emails == []
