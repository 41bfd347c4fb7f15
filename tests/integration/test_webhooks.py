"""Stripe's webhooks, signed by the emulator as Stripe signs them, through the webhook function's handler
(API Gateway proxy events), against moto's server and the Stripe emulator."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from devtools.moto_server import AwsClients
from tests.harness import Stack, sample, stack_on

PROVISION = "01_provision_success.json"
ONBOARDING = "00_onboarding_request.json"  # SBT registered the tenant: its id, registration and tier
TENANT = sample(ONBOARDING)["detail"]["tenantId"]
SECRET = "whsec_integration_" + "0" * 24
FUNCTION = "StripeWebhookFunction"


def webhook_secret(moto_endpoint: str, value: str = SECRET) -> str:
    name = f"sbt/stripe-webhook-{uuid.uuid4().hex[:8]}"
    AwsClients(moto_endpoint).secretsmanager().create_secret(Name=name, SecretString=value)
    return name


@pytest.fixture
def stack(moto_endpoint: str, emulator_url: str) -> Iterator[Stack]:
    overrides = {"WEBHOOK_SECRET_NAME": webhook_secret(moto_endpoint), "PUBLISH_DEACTIVATE_REQUESTS": "true"}
    with stack_on(moto_endpoint, emulator_url, overrides) as stack:
        stack.emulator.admin("POST", "webhook_endpoints", {"secret": SECRET})
        stack.deliver(sample(ONBOARDING))  # provisioning events name only the registration
        yield stack


def request(payload: str, headers: dict[str, str]) -> dict[str, Any]:
    """The sample webhook request carrying this delivery."""
    event = sample("webhook_invoice_paid.json")
    event["body"] = payload
    event["headers"] = {**event["headers"], **headers}
    event["multiValueHeaders"] = {name: [value] for name, value in event["headers"].items()}
    return event


def signed(stack: Stack, event_id: str, **options: Any) -> dict[str, Any]:
    delivery = stack.emulator.admin("POST", f"events/{event_id}/signed", options)
    return request(delivery["payload"], delivery["headers"])


def post(stack: Stack, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response: dict[str, Any] = stack.invoke(FUNCTION, event)  # type: ignore[assignment]
    return int(response["statusCode"]), json.loads(response["body"])


def events(stack: Stack, *types: str) -> list[dict[str, Any]]:
    recorded: list[dict[str, Any]] = stack.emulator.admin("GET", "events")["data"]
    return [event for event in recorded if not types or event["type"] in types]


def deliver_all(stack: Stack, recorded: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    return [post(stack, signed(stack, event["id"])) for event in recorded]


def opened(stack: Stack) -> dict[str, str]:
    [outcome] = stack.deliver(sample(PROVISION))
    stack.published()  # the lifecycle's own billingSuccess
    return outcome


def bus_types(stack: Stack) -> list[str]:
    return [event["detail-type"] for event in stack.published()]


def test_every_event_of_an_opening_passes_the_signature_check_and_lands(stack: Stack) -> None:
    opening = opened(stack)

    answers = deliver_all(stack, events(stack))

    assert {status for status, _ in answers} == {200}
    account = stack.account(TENANT)
    assert account is not None
    report = account["reported"]
    assert report["subscription"]["value"]["subscription_id"] == opening["subscription_id"]
    assert report["subscription"]["value"]["status"] == "active"
    assert report["invoice"]["value"]["status"] == "open"
    assert account["status"] == "open"


def test_a_paid_invoice_publishes_billing_success(stack: Stack) -> None:
    opened(stack)
    [finalized] = events(stack, "invoice.finalized")
    stack.emulator.admin("POST", f"invoices/{finalized['data']['object']['id']}/pay", {})
    deliver_all(stack, events(stack))

    published = stack.published()

    success = [e for e in published if e["detail-type"] == "sbt_aws_billingSuccess"]
    assert len(success) == 1
    assert success[0]["detail"]["tenantId"] == TENANT
    assert success[0]["detail"]["operation"] == "invoice_paid"
    assert success[0]["detail"]["amountPaid"] == 2900


def test_failed_payments_publish_billing_failure_and_unpaid_asks_to_deactivate(stack: Stack) -> None:
    opened(stack)
    [finalized] = events(stack, "invoice.finalized")
    invoice_id = finalized["data"]["object"]["id"]
    for _ in range(5):
        stack.emulator.admin("POST", f"invoices/{invoice_id}/fail", {})
    deliver_all(stack, events(stack))

    kinds = bus_types(stack)

    assert "sbt_aws_billingFailure" in kinds
    assert kinds.count("sbt_aws_deactivateRequest") == 1
    status = stack.account(TENANT)
    assert status is not None
    assert status["reported"]["suspended"] is True


def test_a_duplicate_delivery_is_applied_once(stack: Stack) -> None:
    opened(stack)
    [finalized] = events(stack, "invoice.finalized")
    stack.emulator.admin("POST", f"invoices/{finalized['data']['object']['id']}/pay", {})
    [paid] = events(stack, "invoice.paid")
    delivery = signed(stack, paid["id"])

    first = post(stack, delivery)
    again = post(stack, signed(stack, paid["id"]))  # Stripe's retry: signed anew, same event

    assert first == again
    assert bus_types(stack).count("sbt_aws_billingSuccess") == 1


def test_a_bad_signature_is_a_400_and_writes_nothing(stack: Stack) -> None:
    opened(stack)
    before = stack.account(TENANT)
    [created] = events(stack, "customer.subscription.created")

    status, body = post(stack, signed(stack, created["id"], secret="whsec_not_ours_000000000000"))

    assert (status, body["error"]) == (400, "invalid_signature")
    assert stack.account(TENANT) == before
    assert all("webhook" not in item["id"]["S"] for item in stack.table_items("IdempotencyTable"))


def test_a_replay_with_an_old_timestamp_is_a_400(stack: Stack) -> None:
    opened(stack)
    [created] = events(stack, "customer.subscription.created")

    status, body = post(stack, signed(stack, created["id"], timestamp=int(time.time()) - 301))

    assert (status, body["error"]) == (400, "invalid_signature")
    assert stack.account(TENANT)["reported"] is None  # type: ignore[index]


def test_the_unsigned_sample_is_refused(stack: Stack) -> None:
    accounts = stack.table_items("AccountsTable")

    status, body = post(stack, sample("webhook_invoice_paid.json"))

    assert (status, body["error"]) == (400, "invalid_signature")
    assert stack.table_items("AccountsTable") == accounts


def test_a_malformed_body_even_signed_is_a_400_and_writes_nothing(stack: Stack) -> None:
    malformed = sample("webhook_malformed_body.json")["body"]
    timestamp = int(time.time())
    from sbt_billing.stripe_webhooks import signature_header

    header = signature_header(malformed.encode(), SECRET, timestamp)
    accounts = stack.table_items("AccountsTable")

    status, body = post(stack, request(malformed, {"Stripe-Signature": header}))

    assert (status, body["error"]) == (400, "invalid_event")
    assert stack.table_items("AccountsTable") == accounts
    assert stack.table_items("IdempotencyTable") == []


def test_without_a_secret_the_webhook_fails_closed(moto_endpoint: str, emulator_url: str) -> None:
    with stack_on(moto_endpoint, emulator_url, {"WEBHOOK_SECRET_NAME": ""}) as stack:
        stack.emulator.admin("POST", "webhook_endpoints", {"secret": SECRET})
        stack.emulator.client().v1.customers.create(params={"metadata": {"tenantId": "t-x"}})
        [created] = events(stack, "customer.created")

        status, _ = post(stack, signed(stack, created["id"]))

        assert status == 500
        assert stack.table_items("AccountsTable") == []
        assert stack.table_items("IdempotencyTable") == []


def test_subscription_events_delivered_backwards_end_in_the_latest_state(stack: Stack) -> None:
    opening = opened(stack)
    client = stack.emulator.client()
    stack.emulator.admin("POST", "clock", {"advance_seconds": 5})
    client.v1.subscriptions.update(opening["subscription_id"], params={"cancel_at_period_end": True})
    stack.emulator.admin("POST", "clock", {"advance_seconds": 5})
    client.v1.subscriptions.update(opening["subscription_id"], params={"cancel_at_period_end": False})
    stack.emulator.admin("POST", "clock", {"advance_seconds": 5})
    client.v1.subscriptions.cancel(opening["subscription_id"])
    recorded = events(
        stack,
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
    )

    answers = deliver_all(stack, list(reversed(recorded)))

    assert [body["result"] for _, body in answers][1:] == ["unchanged"] * (len(recorded) - 1)
    account = stack.account(TENANT)
    assert account is not None
    assert account["reported"]["subscription"]["value"]["status"] == "canceled"


def test_a_webhook_before_the_account_record_is_not_lost(stack: Stack) -> None:
    client = stack.emulator.client()
    customer = client.v1.customers.create(params={"metadata": {"tenantId": "t-early"}})
    prices = client.v1.prices.list(params={"lookup_keys": ["sbt_basic_monthly"]})
    client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": prices.data[0].id}],
            "metadata": {"tenantId": "t-early"},
        }
    )

    answers = deliver_all(stack, events(stack, "customer.subscription.created"))

    assert [body["result"] for _, body in answers] == ["recorded"]
    account = stack.account("t-early")
    assert account is not None
    assert account["status"] == "pending"
    assert account["reported"]["subscription"]["value"]["tier"] == "basic"


def test_the_emulator_delivers_to_the_public_route_through_api_gateway(stack: Stack) -> None:
    from botocore.credentials import Credentials

    from tests.integration.local_gateway import LocalApiGateway

    opened(stack)
    with LocalApiGateway(stack.invoke, Credentials("unused", "unused")) as gateway:  # type: ignore[arg-type]
        endpoint = stack.emulator.admin(
            "POST", "webhook_endpoints", {"secret": SECRET, "url": f"{gateway.url}/billing/stripe/webhook"}
        )
        delivered = stack.emulator.admin("POST", f"webhook_endpoints/{endpoint['id']}/deliver", {})["data"]

    assert delivered
    assert {delivery["status"] for delivery in delivered} == {200}
    account = stack.account(TENANT)
    assert account is not None
    assert account["reported"]["subscription"]["value"]["status"] == "active"
