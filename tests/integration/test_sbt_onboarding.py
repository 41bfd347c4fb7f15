"""SBT's onboarding as sbt-aws puts it on the bus: the onboarding request (tenant id, registration id,
tier), then the provisioning job's success or failure naming only the registration. Through the
deployed path (bus -> the template's rules -> the function's queue -> the function), against moto's
server and the Stripe emulator, for both OpenAccountOn values and both of SBT's naming lines."""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.harness import Stack, sample, stack_on

ONBOARDING = "00_onboarding_request.json"
PROVISION = "01_provision_success.json"
TENANT = sample(ONBOARDING)["detail"]["tenantId"]
QUEUE = "ProvisionSuccessQueue"


@pytest.fixture(params=["provisionSuccess", "onboardingRequest"])
def open_on(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def stack(moto_endpoint: str, emulator_url: str, open_on: str) -> Iterator[Stack]:
    with stack_on(moto_endpoint, emulator_url, parameters={"OpenAccountOn": open_on}) as stack:
        yield stack


def through_the_bus(stack: Stack, *events: dict[str, Any]) -> None:
    """Each event put on the SBT bus in turn, and its queue drained before the next."""
    for event in events:
        stack.put_on_bus([event])
        run = stack.run_queue(QUEUE)
        assert run.failed_records == 0


def billing_events(stack: Stack) -> list[dict[str, Any]]:
    """What this stack published (the capture sees SBT's own events on the bus too)."""
    return [e for e in stack.published() if e["detail-type"].removeprefix("sbt_aws_").startswith("billing")]


def stripe_objects(stack: Stack) -> tuple[list[Any], list[Any]]:
    client = stack.emulator.client()
    return client.v1.customers.list().data, client.v1.subscriptions.list(params={"status": "all"}).data


def test_sbt_events_as_they_ship_open_one_account_on_the_tiers_price(stack: Stack) -> None:
    provision = sample(PROVISION)
    assert "tenantId" not in provision["detail"]
    assert "tier" not in str(provision["detail"])

    through_the_bus(stack, sample(ONBOARDING), provision, sample("02_provision_success_duplicate.json"))

    [customer], [subscription] = stripe_objects(stack)
    assert customer.metadata["tenantId"] == TENANT
    assert customer.email == "billing@acme.test"
    assert subscription.items.data[0].price.lookup_key == "sbt_basic_monthly"
    account = stack.account(TENANT)
    assert account is not None
    assert (account["status"], account["applied_tier"]) == ("open", "basic")
    assert account["registration_id"] == sample(ONBOARDING)["detail"]["tenantRegistrationId"]
    counts = stack.emulator.counts()
    assert (counts.get("POST /v1/customers"), counts.get("POST /v1/subscriptions")) == (1, 1)
    assert [e["detail-type"] for e in billing_events(stack)] == ["sbt_aws_billingSuccess"]


def test_when_billing_starts_follows_open_account_on(stack: Stack, open_on: str) -> None:
    through_the_bus(stack, sample(ONBOARDING))

    customers, _ = stripe_objects(stack)
    account = stack.account(TENANT)
    assert account is not None
    if open_on == "onboardingRequest":
        assert len(customers) == 1
        assert account["status"] == "open"
    else:
        assert customers == []
        assert account["status"] == "pending"


@pytest.mark.parametrize(
    "order", list(itertools.permutations([ONBOARDING, PROVISION, "02_provision_success_duplicate.json"]))
)
def test_every_arrival_order_and_duplicates_make_one_customer_and_one_subscription(
    stack: Stack, order: tuple[str, ...]
) -> None:
    through_the_bus(stack, *(sample(name) for name in order))

    customers, subscriptions = stripe_objects(stack)
    assert [c.metadata["tenantId"] for c in customers] == [TENANT]
    assert len(subscriptions) == 1
    account = stack.account(TENANT)
    assert account is not None
    assert (account["status"], account["applied_tier"]) == ("open", "basic")


def test_a_provisioning_before_its_onboarding_request_is_kept_then_applied(stack: Stack) -> None:
    early = sample("18_provision_success_before_onboarding.json")
    tenant = sample("19_onboarding_request_after_provision.json")["detail"]["tenantId"]

    [kept] = stack.deliver(early)

    assert kept["result"] == "recorded"
    assert stack.account(tenant) is None
    assert stack.emulator.writes() == 0

    [applied] = stack.deliver(sample("19_onboarding_request_after_provision.json"))

    assert applied["result"] == "applied"
    account = stack.account(tenant)
    assert account is not None
    assert (account["status"], account["applied_tier"]) == ("open", "standard")


def test_a_failed_provisioning_closes_the_account_without_charging_the_tenant(
    stack: Stack, open_on: str
) -> None:
    onboarding = sample("20_onboarding_request_failed_later.json")
    tenant = onboarding["detail"]["tenantId"]

    through_the_bus(stack, onboarding, sample("21_provision_failure.json"))

    account = stack.account(tenant)
    assert account is not None
    assert account["status"] == "closed"
    customers, subscriptions = stripe_objects(stack)
    client = stack.emulator.client()
    if open_on == "onboardingRequest":
        [subscription] = subscriptions
        assert subscription.status == "canceled"
        invoices = client.v1.invoices.list(params={"subscription": subscription.id}).data
        assert invoices, "the subscription's first invoice exists"
        assert all(invoice.status == "void" for invoice in invoices), "nothing is left to pay"
    else:
        assert (customers, subscriptions) == ([], [])
    assert not [e for e in billing_events(stack) if e["detail-type"] == "sbt_aws_billingFailure"]


def test_a_tenant_whose_tier_no_event_carries_is_reported_and_opens_once_a_tier_arrives(
    stack: Stack, open_on: str
) -> None:
    onboarding = sample("22_onboarding_request_without_tier.json")
    tenant = onboarding["detail"]["tenantId"]

    outcomes = stack.deliver(onboarding) + stack.deliver(sample("23_provision_success_without_tier.json"))

    failed = [o for o in outcomes if o["result"] == "failed"]
    assert len(failed) == 1
    assert failed[0]["reason"].startswith("tier_missing: ")
    assert "tenantData" in failed[0]["reason"]
    [failure] = [e for e in billing_events(stack) if e["detail-type"] == "sbt_aws_billingFailure"]
    assert failure["detail"] == {
        "tenantId": tenant,
        "operation": "open_account",
        "reason": failed[0]["reason"],
    }
    assert stack.emulator.writes() == 0

    update = copy.deepcopy(sample("05_tenant_updated_tier_change.json"))
    update["detail"]["tenantId"] = tenant
    [opened] = stack.deliver(update)

    assert opened["result"] == "applied"
    account = stack.account(tenant)
    assert account is not None
    assert (account["status"], account["applied_tier"]) == ("open", "premium")


def test_the_gate_names_a_failed_provisioning(stack: Stack) -> None:
    onboarding = sample("20_onboarding_request_failed_later.json")
    tenant = onboarding["detail"]["tenantId"]
    stack.deliver(onboarding)
    stack.deliver(sample("21_provision_failure.json"))
    event = copy.deepcopy(sample("api_billing_status.json"))
    event["pathParameters"] = {"tenantId": tenant}
    event["path"] = event["path"].replace(event["path"].split("/")[2], tenant)

    response = stack.request(event)

    assert response["statusCode"] == 200
    assert '"reasons":["provisioning_failed"]' in response["body"].replace(" ", "")


def test_an_event_fed_to_a_function_not_configured_for_it_is_refused(stack: Stack) -> None:
    """A provisioning event given to the deletion function must not offboard the tenant."""
    through_the_bus(stack, sample(ONBOARDING), sample(PROVISION))
    wrong = sample(PROVISION)
    wrong["detail"]["tenantId"] = TENANT

    answer = stack.invoke("TenantDeletedFunction", wrong)

    assert answer["result"] == "rejected"
    assert answer["reason"].startswith("detail-type: ")
    account = stack.account(TENANT)
    assert account is not None
    assert account["status"] == "open"


def legacy(event: dict[str, Any]) -> dict[str, Any]:
    """The same event as SBT releases before the sbt_aws_ prefix (0.8 and earlier) put it."""
    renamed = copy.deepcopy(event)
    renamed["detail-type"] = renamed["detail-type"].removeprefix("sbt_aws_")
    renamed["source"] = {
        "sbt.control.plane": "controlPlaneEventSource",
        "sbt.application.plane": "applicationPlaneEventSource",
    }[renamed["source"]]
    return renamed


def test_older_sbt_naming_is_one_switch(moto_endpoint: str, emulator_url: str) -> None:
    with stack_on(moto_endpoint, emulator_url, parameters={"SbtRelease": "legacy"}) as stack:
        assert stack.deliver(sample(ONBOARDING)) == [], "the current names match no legacy rule"

        through_the_bus(stack, legacy(sample(ONBOARDING)), legacy(sample(PROVISION)))

        account = stack.account(TENANT)
        assert account is not None
        assert account["status"] == "open"
        assert [(e["detail-type"], e["source"]) for e in billing_events(stack)] == [
            ("billingSuccess", "controlPlaneEventSource")
        ]


def test_an_onboarding_refused_at_the_door_is_announced_on_the_bus_without_the_value(stack: Stack) -> None:
    onboarding = copy.deepcopy(sample(ONBOARDING))
    onboarding["detail"]["email"] = "not-an-address@"

    [answer] = stack.deliver(onboarding)

    assert answer["result"] == "rejected"
    assert answer["reason"].startswith("detail.email")
    [failure] = billing_events(stack)
    assert failure["detail-type"] == "sbt_aws_billingFailure"
    assert failure["detail"]["tenantId"] == TENANT
    assert failure["detail"]["reason"].startswith("detail.email")
    assert "not-an-address" not in json.dumps(failure)
    assert stack.account(TENANT) is None
