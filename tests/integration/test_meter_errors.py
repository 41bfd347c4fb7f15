"""Usage Stripe drops after accepting it, end to end: the emulator's stream validates asynchronously and
reports the dropped events as a v2 thin event, which the webhook function (signed delivery, data fetched
from /v2/core/events/{id}) applies to the usage table on moto and reports on the bus."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from devtools.local_run import rebased
from devtools.moto_server import AwsClients
from tests.support.harness import Stack, sample, stack_on
from tests.support.usage import TENANT, USAGE_SETTINGS, provision

SECRET = "whsec_thin_integration_" + "0" * 24


@pytest.fixture
def stack(moto_endpoint: str, emulator_url: str) -> Iterator[Stack]:
    name = f"sbt/stripe-webhook-{uuid.uuid4().hex[:8]}"
    AwsClients(moto_endpoint).secretsmanager().create_secret(Name=name, SecretString=SECRET)
    with stack_on(moto_endpoint, emulator_url, {**USAGE_SETTINGS, "WEBHOOK_SECRET_NAME": name}) as stack:
        stack.emulator.seed_usage_catalogue()
        yield stack


def usage(record_id: str, value: int = 5) -> dict[str, Any]:
    event = rebased(sample("13_ingest_usage.json"))
    event["id"] = f"usage-{record_id}"
    first = event["detail"]["usage"][0]
    event["detail"]["usage"] = [{**first, "id": record_id, "value": value}]
    return event


def meter_id(stack: Stack) -> str:
    meters = stack.emulator.client().v1.billing.meters.list(params={"limit": 100}).data
    return next(meter.id for meter in meters if meter.event_name == "sbt_api_calls")


def thin_delivery(stack: Stack, secret: str = SECRET) -> dict[str, Any]:
    """The newest v2 event, delivered as a thin event destination would: signed, without its data."""
    [event] = stack.emulator.client().v2.core.events.list().data
    delivery = stack.emulator.admin("POST", f"events/{event.id}/signed", {"secret": secret})
    request = sample("webhook_invoice_paid.json")
    request["body"] = delivery["payload"]
    request["headers"] = {**request["headers"], **delivery["headers"]}
    request["multiValueHeaders"] = {name: [value] for name, value in request["headers"].items()}
    return request


def post(stack: Stack, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = stack.invoke("StripeWebhookFunction", request)
    return int(response["statusCode"]), json.loads(response["body"])


def usage_states(stack: Stack) -> dict[str, str]:
    return {
        item["sk"]["S"]: item["state"]["S"]
        for item in stack.table_items("UsageTable")
        if item["sk"]["S"].startswith("usage#")
    }


def failures(stack: Stack) -> list[dict[str, Any]]:
    return [e["detail"] for e in stack.published() if e["detail-type"] == "sbt_aws_billingFailure"]


def test_usage_stripe_drops_after_accepting_it_is_marked_rejected_and_reported(stack: Stack) -> None:
    # Given a tenant whose usage went out while its meter was active (the check is cached per container)
    provision(stack)
    [first] = stack.deliver(usage("early"))
    assert first["sent"] == 1
    # And the meter deactivated in Stripe afterwards, so that the next usage is taken, then dropped
    stack.emulator.client().v1.billing.meters.deactivate(meter_id(stack))
    [late] = stack.deliver(usage("late"))
    assert late["sent"] == 1
    stack.published()
    # When Stripe's error report reaches the webhook as a thin event
    status, answer = post(stack, thin_delivery(stack))
    # Then the dropped record is rejected (the other stays sent) and the tenant is told
    assert status == 200
    assert (answer["rejected"], answer["unknown"], answer["unidentified"]) == (1, 0, 0)
    assert sorted(usage_states(stack).values()) == ["rejected", "sent"]
    [failure] = failures(stack)
    assert failure["tenantId"] == TENANT
    assert failure["operation"] == "ingest_usage"
    assert "archived_meter" in failure["reason"]
    # And the same report delivered again changes nothing
    status, again = post(stack, thin_delivery(stack))
    assert (status, again["rejected"], again["already"]) == (200, 0, 1)
    assert failures(stack) == []


def test_a_thin_event_with_a_bad_signature_changes_nothing(stack: Stack) -> None:
    provision(stack)
    stack.deliver(usage("early"))
    stack.emulator.client().v1.billing.meters.deactivate(meter_id(stack))
    stack.deliver(usage("late"))

    status, answer = post(stack, thin_delivery(stack, secret="whsec_not_ours_" + "0" * 24))

    assert (status, answer) == (400, {"error": "invalid_signature"})
    assert sorted(usage_states(stack).values()) == ["sent", "sent"]


def test_usage_for_a_deactivated_meter_is_kept_pending_until_the_meter_is_back(stack: Stack) -> None:
    # Given a meter deactivated before the function first looks at it
    opened = provision(stack)
    meter = meter_id(stack)
    stack.emulator.client().v1.billing.meters.deactivate(meter)
    # When usage arrives
    [outcome] = stack.deliver(usage("held"))
    # Then nothing is sent, the record stays pending, and the configuration error is on the bus
    assert (outcome["new"], outcome["sent"]) == (1, 0)
    assert stack.emulator.counts().get("POST /v2/billing/meter_event_stream") is None
    assert list(usage_states(stack).values()) == ["pending"]
    [failure] = failures(stack)
    assert "sbt_api_calls (inactive)" in failure["reason"]
    # And once the meter is active again (and a new container looks), the scheduled flush sends it
    from sbt_billing.bootstrap.clients import forget_clients

    stack.emulator.client().v1.billing.meters.reactivate(meter)
    forget_clients()
    flushed = stack.invoke("UsageFlushFunction", {"source": "aws.events", "detail-type": "Scheduled Event"})
    assert flushed["sent"] == 1
    assert list(usage_states(stack).values()) == ["sent"]
    assert opened["customer_id"]
