"""The three lifecycle handlers fed the sample events, against moto's server and the Stripe emulator."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sbt_billing.bootstrap.clients import forget_clients

from devtools.moto_server import environment_applied
from tests.support.harness import Stack, sample, stack_on

PROVISION = "01_provision_success.json"
ONBOARDING = "00_onboarding_request.json"  # SBT registered the tenant: its id, registration and tier
TENANT = sample(ONBOARDING)["detail"]["tenantId"]


@pytest.fixture
def stack(moto_endpoint: str, emulator_url: str) -> Iterator[Stack]:
    with stack_on(moto_endpoint, emulator_url) as stack:
        stack.deliver(sample(ONBOARDING))  # provisioning events name only the registration
        yield stack


def republished(event: dict[str, Any], n: int) -> dict[str, Any]:
    """The same fact put on the bus again: a new EventBridge id (and a later time)."""
    return {
        **event,
        "id": f"{event['id'][:-4]}{n:04d}",
        "time": event["time"].replace(":00Z", f":{n % 60:02d}Z"),
    }


def test_provisioning_creates_one_customer_and_one_subscription(stack: Stack) -> None:
    [outcome] = stack.deliver(sample(PROVISION))

    assert outcome["result"] == "applied"
    counts = stack.emulator.counts()
    assert counts.get("POST /v1/customers") == 1
    assert counts.get("POST /v1/subscriptions") == 1
    assert stack.emulator.writes() == 2
    account = stack.account(TENANT)
    assert account is not None
    assert account["status"] == "open"
    assert account["applied_tier"] == "basic"
    assert account["customer_id"] == outcome["customer_id"]
    state = stack.emulator.admin("GET", "state")
    [customer] = state["customers"].values() if isinstance(state["customers"], dict) else state["customers"]
    assert customer["metadata"]["tenantId"] == TENANT
    assert customer["email"] == "billing@acme.test"
    assert customer["address"]["city"] == "Springfield"
    published = stack.published()
    assert [e["detail-type"] for e in published] == ["sbt_aws_billingSuccess"]
    assert published[0]["detail"]["tenantId"] == TENANT


def test_ten_deliveries_and_republished_copies_make_one_customer(stack: Stack) -> None:
    event = sample(PROVISION)
    outcomes = [stack.deliver(event)[0] for _ in range(10)]
    outcomes += [stack.deliver(republished(event, n))[0] for n in range(1, 4)]
    outcomes += stack.deliver(sample("02_provision_success_duplicate.json"))

    assert outcomes[0]["result"] == "applied"
    assert {o["result"] for o in outcomes[1:]} == {"unchanged"}, "the account already holds the fact"
    assert stack.emulator.writes() == 2
    assert len(stack.table_items("AccountsTable")) == 1


def test_twenty_concurrent_deliveries_make_one_customer_and_no_failure(stack: Stack) -> None:
    event = sample(PROVISION)
    with ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = list(pool.map(lambda n: stack.deliver(republished(event, n))[0], range(20)))

    # A copy finds the fact recorded and the first delivery driving it (in flight), or done (unchanged);
    # a republished copy, whose later time restamps the fact, is recorded for the driver to apply.
    assert {o["result"] for o in outcomes} <= {"applied", "in_flight", "unchanged", "recorded"}
    assert [o["result"] for o in outcomes].count("applied") == 1
    counts = stack.emulator.counts()
    assert counts.get("POST /v1/customers") == 1
    assert counts.get("POST /v1/subscriptions") == 1


def test_a_detail_update_is_one_stripe_call(stack: Stack) -> None:
    stack.deliver(sample(PROVISION))
    before = stack.emulator.writes()

    [outcome] = stack.deliver(sample("04_tenant_updated.json"))

    assert outcome["result"] == "applied"
    assert stack.emulator.writes() - before == 1
    assert stack.emulator.counts().get("POST /v1/customers/{id}") == 1


def test_a_tier_change_is_one_stripe_call_on_the_same_subscription(stack: Stack) -> None:
    [opened] = stack.deliver(sample(PROVISION))
    before = stack.emulator.writes()

    [outcome] = stack.deliver(sample("05_tenant_updated_tier_change.json"))

    assert outcome["result"] == "applied"
    assert outcome["tier"] == "premium"
    assert stack.emulator.writes() - before == 1
    assert outcome["subscription_id"] == opened["subscription_id"]
    subscription = stack.emulator.client().v1.subscriptions.retrieve(opened["subscription_id"])
    assert subscription["items"].data[0].price.lookup_key == "sbt_premium_monthly"


def test_deleting_cancels_and_marks_the_customer_in_at_most_two_calls(stack: Stack) -> None:
    [opened] = stack.deliver(sample(PROVISION))
    before = stack.emulator.writes()

    [outcome] = stack.deliver(sample("06_tenant_deleted.json"))

    assert outcome["result"] == "applied"
    assert stack.emulator.writes() - before <= 2
    client = stack.emulator.client()
    assert client.v1.subscriptions.retrieve(opened["subscription_id"]).status == "canceled"
    assert client.v1.customers.retrieve(opened["customer_id"]).metadata["offboarded"] == "true"
    account = stack.account(TENANT)
    assert account is not None
    assert account["status"] == "closed"


def test_a_delete_before_the_create_leaves_nothing_in_stripe(stack: Stack) -> None:
    [closed] = stack.deliver(sample("07_deleted_before_create_offboarding.json"))
    [ignored] = stack.deliver(sample("08_deleted_before_create_provision.json"))

    assert (closed["result"], ignored["result"]) == ("applied", "ignored")
    assert stack.emulator.writes() == 0


def test_a_tenant_without_email_still_gets_a_subscription(stack: Stack) -> None:
    [outcome] = stack.deliver(sample("03_provision_success_flat_missing_email.json"))

    assert outcome["result"] == "applied"
    assert outcome["subscription_status"] == "active"
    customer = stack.emulator.client().v1.customers.retrieve(outcome["customer_id"])
    assert customer.email is None
    assert customer.name == "globex"


@pytest.mark.parametrize(
    ("sample_name", "field"),
    [
        ("09_invalid_missing_tenant_id.json", "detail.tenantRegistrationId"),
        ("10_invalid_unknown_tier.json", "tier"),
    ],
)
def test_bad_input_is_rejected_naming_the_field_with_no_write_anywhere(
    stack: Stack, sample_name: str, field: str
) -> None:
    accounts, registrations = stack.table_items("AccountsTable"), stack.table_items("RegistrationsTable")

    [outcome] = stack.deliver(sample(sample_name))

    assert outcome["result"] == "rejected"
    assert outcome["reason"].startswith(field)
    assert stack.emulator.writes() == 0
    assert stack.table_items("AccountsTable") == accounts
    assert stack.table_items("RegistrationsTable") == registrations
    assert stack.table_items("IdempotencyTable") == []


def test_an_opening_stripe_refused_opens_on_the_next_fact_with_one_customer(stack: Stack) -> None:
    # The deployment's basic tier names a price that was archived in Stripe: its subscription is refused.
    client = stack.emulator.client()
    archived = client.v1.prices.create(
        params={
            "currency": "usd",
            "unit_amount": 2900,
            "recurring": {"interval": "month"},
            "product_data": {"name": "Basic (old)"},
        }
    )
    client.v1.prices.update(archived.id, params={"active": False})
    catalogue = {"basic": {"price": archived.id}, "premium": {"price": "sbt_premium_monthly"}}
    with environment_applied({"TIER_CATALOGUE": json.dumps(catalogue)}):
        forget_clients()
        [refused] = stack.deliver(sample(PROVISION))
        assert refused["result"] == "failed"
        assert "inactive" in refused["reason"]

        [outcome] = stack.deliver(sample("05_tenant_updated_tier_change.json"))
    forget_clients()

    assert outcome["result"] == "applied"
    counts = stack.emulator.counts()
    assert counts.get("POST /v1/customers") == 1
    account = stack.account(TENANT)
    assert account is not None
    assert (account["status"], account["applied_tier"], account["opening"]["generation"]) == (
        "open",
        "premium",
        1,
    )
    state = stack.emulator.admin("GET", "state")
    subscriptions = state["subscriptions"]
    listed = subscriptions.values() if isinstance(subscriptions, dict) else subscriptions
    assert [s["status"] for s in listed] == ["active"]


def test_a_stripe_500_then_success_makes_one_customer(stack: Stack) -> None:
    stack.emulator.fault(route="POST /v1/customers", status=500, count=1)

    [outcome] = stack.deliver(sample(PROVISION))

    assert outcome["result"] == "applied"
    assert stack.emulator.counts().get("POST /v1/customers") == 1


def test_stripe_down_fails_the_invocation_and_the_platform_retry_makes_one_customer(stack: Stack) -> None:
    from sbt_billing.domain.errors import TransientBillingError

    stack.emulator.fault(route="POST /v1/subscriptions", status=503, count=3)
    with pytest.raises(TransientBillingError):
        stack.deliver(sample(PROVISION))
    assert stack.account(TENANT)["lease"] is None, "a failed attempt hands the tenant back at once"

    [outcome] = stack.deliver(sample(PROVISION))

    assert outcome["result"] == "applied"
    counts = stack.emulator.counts()
    assert counts.get("POST /v1/customers") == 1
    assert counts.get("POST /v1/subscriptions") == 1


def test_redelivery_after_every_key_has_expired_creates_nothing(stack: Stack) -> None:
    stack.deliver(sample(PROVISION))
    assert stack.table_items("IdempotencyTable") == [], "the account item is the only memory of the fact"
    stack.emulator.admin("POST", "clock", {"advance_seconds": 25 * 3600})  # Stripe's key window passes

    [outcome] = stack.deliver(republished(sample(PROVISION), 7))

    assert outcome["result"] == "unchanged"
    assert stack.emulator.writes() == 2


LIFECYCLE = ["01_provision_success.json", "04_tenant_updated.json", "05_tenant_updated_tier_change.json"]


@pytest.mark.parametrize("order", list(itertools.permutations(LIFECYCLE)))
def test_every_order_of_create_and_updates_converges(stack: Stack, order: tuple[str, ...]) -> None:
    for name in order:
        stack.deliver(sample(name))

    account = stack.account(TENANT)
    assert account is not None
    assert account["status"] == "open"
    assert account["applied_tier"] == "premium"
    customer = stack.emulator.client().v1.customers.retrieve(account["customer_id"])
    assert customer.email == "accounts@acme.test"
    assert stack.emulator.counts().get("POST /v1/customers") == 1


@pytest.mark.parametrize("order", list(itertools.permutations([*LIFECYCLE, "06_tenant_deleted.json"])))
def test_every_order_with_a_delete_ends_closed_with_no_live_subscription(
    stack: Stack, order: tuple[str, ...]
) -> None:
    for name in order:
        stack.deliver(sample(name))

    account = stack.account(TENANT)
    assert account is not None
    assert account["status"] == "closed"
    live = stack.emulator.client().v1.subscriptions.list(params={"status": "active"})
    assert live.data == []
    customers = stack.emulator.client().v1.customers.list()
    assert all(c.to_dict()["metadata"].get("offboarded") == "true" for c in customers.data)
    assert len(customers.data) <= 1


def test_through_its_queue_a_failing_event_is_received_five_times_then_dead_lettered_and_redrives(
    stack: Stack,
) -> None:
    """The deployed path end to end: the rule puts the event on ProvisionSuccessQueue; while Stripe is
    down each receive is reported failed, and after the fifth SQS moves the event, intact, to the
    dead-letter queue. Once Stripe is back, a redrive opens the account once."""
    stack.emulator.fault(route="POST /v1/customers", status=503, count=1000)
    stack.put_on_bus([sample(PROVISION)])

    failing = stack.run_queue("ProvisionSuccessQueue", concurrency=1, visibility_timeout=0)

    assert (failing.records, failing.failed_records) == (5, 5)
    [dead] = stack.dead_letters()
    assert (dead["detail-type"], dead["detail"]) == ("sbt_aws_provisionSuccess", sample(PROVISION)["detail"])
    account = stack.account(TENANT)
    assert account is not None
    assert (account["status"], account["customer_id"], account["lease"]) == ("opening", None, None)
    assert stack.emulator.counts().get("POST /v1/subscriptions") is None

    stack.emulator.admin("DELETE", "faults")
    stack.clients.sqs().send_message(
        QueueUrl=stack.resources.queues["ProvisionSuccessQueue"], MessageBody=json.dumps(dead)
    )
    redriven = stack.run_queue("ProvisionSuccessQueue", concurrency=1)

    assert (redriven.records, redriven.failed_records) == (1, 0)
    assert stack.account(TENANT)["status"] == "open"
    assert len(stack.emulator.admin("GET", "state")["subscriptions"]) == 1
