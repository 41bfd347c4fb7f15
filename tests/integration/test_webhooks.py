"""Stripe's webhooks, signed by the emulator as Stripe signs them, through the webhook function's handler
(API Gateway proxy events), against moto's server and the Stripe emulator."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from devtools.moto_server import AwsClients
from tests.support.harness import Stack, sample, stack_on

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


@pytest.mark.parametrize(
    "header",
    ["t=\u00b2,v1=" + "0" * 64, f"t={int(time.time())},v1=" + "\u00e9" * 64],
    ids=["superscript-two-timestamp", "non-ascii-signature"],
)
def test_a_signature_header_that_broke_the_parser_is_a_400_not_a_crash(stack: Stack, header: str) -> None:
    opened(stack)
    [created] = events(stack, "customer.subscription.created")
    delivery = signed(stack, created["id"])

    status, body = post(stack, {**delivery, "headers": {**delivery["headers"], "Stripe-Signature": header}})

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
    from sbt_billing.entrypoints.stripe_signature import signature_header

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

    from tests.support.local_gateway import LocalApiGateway

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


# -- only the tenant's own objects ---------------------------------------------------------------------


def gate(stack: Stack) -> dict[str, Any]:
    """The billing API's payment gate for the tenant."""
    response = stack.request(sample("api_billing_status.json"))
    assert response["statusCode"] == 200, response
    answer: dict[str, Any] = json.loads(response["body"])
    return answer


def delivered_since(stack: Stack, seen: set[str]) -> list[tuple[int, dict[str, Any]]]:
    """Delivers the events Stripe recorded since `seen` (and adds them to it)."""
    fresh = [event for event in events(stack) if event["id"] not in seen]
    seen.update(event["id"] for event in fresh)
    return deliver_all(stack, fresh)


def basic_price(stack: Stack) -> str:
    prices = stack.emulator.client().v1.prices.list(params={"lookup_keys": ["sbt_basic_monthly"]})
    return prices.data[0].id


def test_a_cancelled_add_on_subscription_on_the_tenants_customer_leaves_the_gate_active(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    opening = opened(stack)
    seen: set[str] = set()
    delivered_since(stack, seen)
    client = stack.emulator.client()
    add_on = client.v1.subscriptions.create(
        params={
            "customer": opening["customer_id"],
            "items": [{"price": basic_price(stack)}],
            "metadata": {"tenantId": TENANT},  # made in the Dashboard, copying the tenant's metadata
        }
    )
    client.v1.subscriptions.cancel(add_on.id)

    answers = delivered_since(stack, seen)

    assert {status for status, _ in answers} == {200}
    subscription_answers = [
        body for _, body in answers if body["eventType"].startswith("customer.subscription")
    ]
    assert subscription_answers
    assert {body["result"] for body in subscription_answers} == {"ignored"}
    emitted = capsys.readouterr().out  # Powertools metrics (EMF) go to stdout
    assert emitted.count('"WebhookForeignObject":[1.0]') >= len(subscription_answers), "counted"
    assert (gate(stack)["state"], gate(stack)["allowed"]) == ("active", True)
    account = stack.account(TENANT)
    assert account is not None
    assert account["reported"]["subscription"]["value"]["subscription_id"] == opening["subscription_id"]


def test_an_unpaid_subscription_of_another_customer_naming_the_tenant_deactivates_nothing(
    stack: Stack,
) -> None:
    opened(stack)
    seen: set[str] = set()
    delivered_since(stack, seen)
    stack.published()
    client = stack.emulator.client()
    other = client.v1.customers.create(params={"metadata": {"tenantId": TENANT}})
    copy = client.v1.subscriptions.create(
        params={
            "customer": other.id,
            "items": [{"price": basic_price(stack)}],
            "metadata": {"tenantId": TENANT},
            "collection_method": "send_invoice",
            "days_until_due": 1,
        }
    )
    [finalized] = [
        event
        for event in events(stack, "invoice.finalized")
        if event["id"] not in seen and event["data"]["object"]["customer"] == other.id
    ]
    for _ in range(5):
        stack.emulator.admin("POST", f"invoices/{finalized['data']['object']['id']}/fail", {})
    assert client.v1.subscriptions.retrieve(copy.id).status in ("past_due", "unpaid", "canceled")

    answers = delivered_since(stack, seen)

    assert {status for status, _ in answers} == {200}
    assert bus_types(stack) == []
    assert (gate(stack)["state"], gate(stack)["allowed"]) == ("active", True)


def test_a_foreign_customer_update_during_an_interrupted_opening_does_not_reach_the_real_customer(
    stack: Stack,
) -> None:
    from sbt_billing.bootstrap.stores import account_store
    from sbt_billing.bootstrap.stripe import billing_gateway
    from sbt_billing.domain.models import AccountStatus, OpeningSnapshot

    # Given an opening that created the tenant's customer and died before recording it
    store = account_store()
    pending = store.get(TENANT)
    assert pending is not None
    details = pending.desired.details()
    snapshot = OpeningSnapshot(
        details=details, tier="basic", price_id=basic_price(stack), started_at=datetime.now(UTC)
    )
    store.save(
        pending.model_copy(update={"status": AccountStatus.OPENING, "opening": snapshot}),
        expected_revision=pending.revision,
    )
    real = billing_gateway().create_customer(
        TENANT, details, idempotency_key=f"sbt-billing:{TENANT}:customer:create"
    )
    # and another customer naming the tenant, whose email is edited meanwhile
    client = stack.emulator.client()
    other = client.v1.customers.create(params={"metadata": {"tenantId": TENANT}})
    client.v1.customers.update(other.id, params={"email": "someone-else@elsewhere.test"})

    answers = deliver_all(stack, events(stack, "customer.updated"))
    stack.deliver(sample(PROVISION))  # the retry resumes the opening

    assert {status for status, _ in answers} == {200}
    account = stack.account(TENANT)
    assert account is not None
    assert (account["status"], account["customer_id"]) == ("open", real)
    assert account["desired"]["email"]["value"] == details.email
    assert client.v1.customers.retrieve(real).email == details.email
