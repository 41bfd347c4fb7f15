"""Synchronous changes through the billing API: the loopback API Gateway (SigV4 verified, the
template's routes), the typed client, moto's server and the Stripe emulator."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sbt_billing_client import (
    Address,
    BillingApiError,
    BillingChange,
    BillingClient,
    Busy,
    IdempotencyKeyReused,
    InvalidRequest,
    PaymentRequired,
    TenantNotFound,
)

from devtools.template import load_template
from tests.support.harness import Stack, sample, stack_on
from tests.support.local_gateway import CREDENTIALS, LocalApiGateway

TENANT = "8a6f3c1e-5b2d-4e7f-9a10-3c4d5e6f7a8b"
PLAN_UPDATE = "POST /v1/subscriptions/{id}"
DAY = 86_400
ALWAYS_INVOICE = {"PRORATION_BEHAVIOR": "always_invoice"}
# Charged automatically after a trial, changes invoiced at once: Stripe's pending updates apply.
CHARGED_AT_ONCE = {"PRORATION_BEHAVIOR": "always_invoice", "COLLECTION_MODE": "trial"}


def provision_success(
    tenant: str = TENANT, tier: str = "basic", at: datetime | None = None
) -> dict[str, Any]:
    """SBT's provisionSuccess with tenantId and tier at the top of the detail."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "sbt_aws_provisionSuccess",
        "source": "sbt.application.plane",
        "account": "123456789012",
        "time": (at or datetime.now(UTC)).isoformat(),
        "region": "us-east-1",
        "resources": [],
        "detail": {"tenantId": tenant, "tier": tier, "tenantName": "globex", "email": "billing@globex.test"},
    }


def tenant_updated(at: datetime, tenant: str = TENANT, **fields: Any) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "sbt_aws_tenantUpdated",
        "source": "sbt.control.plane",
        "account": "123456789012",
        "time": at.replace(microsecond=0).isoformat(),
        "region": "us-east-1",
        "resources": [],
        "detail": {"tenantId": tenant, "updatedAt": at.isoformat(), **fields},
    }


@pytest.fixture
def stack(request: pytest.FixtureRequest, moto_endpoint: str, emulator_url: str) -> Iterator[Stack]:
    """The stack; `@pytest.mark.parametrize("stack", [{...settings...}], indirect=True)` overrides settings."""
    with stack_on(moto_endpoint, emulator_url, getattr(request, "param", None)) as stack:
        yield stack


@pytest.fixture
def client(stack: Stack) -> Iterator[BillingClient]:
    with LocalApiGateway(stack.invoke, CREDENTIALS) as gateway:  # type: ignore[arg-type]
        yield BillingClient(gateway.url, region="us-east-1", credentials=CREDENTIALS, timeout=30)


@pytest.fixture
def opened(stack: Stack) -> dict[str, str]:
    [outcome] = stack.deliver(provision_success())
    assert outcome["result"] == "applied", outcome
    stack.published()
    return outcome


def stripe_writes(stack: Stack) -> int:
    """Requests that could change Stripe: POSTs and DELETEs, but invoice previews (a POST that writes nothing)."""
    return stack.emulator.writes() - stack.emulator.counts().get("POST /v1/invoices/create_preview", 0)


def billing_successes(stack: Stack) -> list[dict[str, Any]]:
    return [
        event["detail"] for event in stack.published() if event["detail-type"] == "sbt_aws_billingSuccess"
    ]


# -- a change, end to end ----------------------------------------------------------------------------


def test_a_tier_change_answers_the_new_plan_after_exactly_one_stripe_write(
    stack: Stack, client: BillingClient, opened: dict[str, str]
) -> None:
    client.billing(TENANT)  # the premium price's look-up is not the change's
    stack.emulator.admin("DELETE", "requests")

    change = client.update(TENANT, tier="premium")

    assert stack.emulator.writes() == 1
    assert stack.emulator.counts().get(PLAN_UPDATE) == 1
    assert (change.result, change.tier, change.subscription_id) == (
        "applied",
        "premium",
        opened["subscription_id"],
    )
    assert change.status.allowed
    assert change.invoiced_now is None  # create_prorations: on the next invoice
    plan = client.billing(TENANT).plan
    assert plan is not None
    assert (plan.tier, plan.amount) == ("premium", 29900)


def test_the_api_and_the_event_path_publish_the_same_billing_success(
    stack: Stack, client: BillingClient, opened: dict[str, str]
) -> None:
    client.update(TENANT, tier="premium")
    [by_api] = billing_successes(stack)
    stack.deliver(tenant_updated(datetime.now(UTC) + timedelta(seconds=1), tier="standard"))
    [by_event] = billing_successes(stack)

    assert by_api == {**by_event, "tier": "premium"}
    assert (by_event["operation"], by_event["tier"]) == ("update_account", "standard")


def test_a_details_change_updates_the_customer(
    stack: Stack, client: BillingClient, opened: dict[str, str]
) -> None:
    change = client.update(
        TENANT,
        tenant_name="Globex Corporation",
        email="ap@globex.test",
        address=Address(line1="2 Oak Ave", city="Cypress Creek", postal_code="54321", country="us"),
    )

    assert (change.result, change.tier) == ("applied", "basic")
    customer = client.billing(TENANT).customer
    assert customer is not None
    assert customer.address is not None
    assert (customer.name, customer.email) == ("Globex Corporation", "ap@globex.test")
    assert (customer.address.city, customer.address.country) == ("Cypress Creek", "US")


def test_a_change_before_the_account_opens_is_recorded_and_opens_it_with(
    stack: Stack, client: BillingClient
) -> None:
    stack.deliver(tenant_updated(datetime.now(UTC), tier="standard"))  # a pending account, no Stripe yet

    change = client.update(TENANT, tier="premium")
    [opened] = stack.deliver(provision_success(at=datetime.now(UTC) - timedelta(minutes=1)))

    assert (change.result, change.tier, change.subscription_id) == ("recorded", "premium", None)
    assert (opened["result"], opened["tier"]) == ("applied", "premium")


# -- refusals --------------------------------------------------------------------------------------------


def test_an_unknown_tenant_is_a_404_and_creates_nothing(stack: Stack, client: BillingClient) -> None:
    with pytest.raises(TenantNotFound):
        client.update("no-such-tenant", tier="premium")
    with pytest.raises(TenantNotFound):
        client.preview("no-such-tenant", "premium")

    assert stack.account("no-such-tenant") is None


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"tier": "platinum"}, "tier"),
        ({"tier": "premium", "seats": 3}, "seats"),
        ({"email": "not-an-email"}, "email"),
        ({"email": "ap@globex..test"}, "email"),
        ({"tenantName": "g" * 257}, "tenantName"),
        ({"address": {"country": "United States"}}, "country"),
        ({"address": {"country": "ZZ"}}, "country"),
        ({"email": "ap@globex.test", "prorationDate": 1795000000}, "prorationDate"),
        ({}, "nothing to change"),
    ],
)
def test_an_invalid_change_is_a_400_naming_what_is_wrong(
    stack: Stack, client: BillingClient, opened: dict[str, str], body: dict[str, Any], named: str
) -> None:
    before = stack.account(TENANT)

    with pytest.raises(InvalidRequest) as refused:
        client._request("PATCH", f"/tenants/{TENANT}/billing", body=body)

    assert refused.value.code == "invalid_request"
    assert named in refused.value.message
    assert "globex..test" not in refused.value.message
    assert stack.account(TENANT) == before


def test_a_body_nested_too_deep_is_a_400_not_a_crash(stack: Stack) -> None:
    request = sample("api_billing_change.json")
    request["body"] = '{"tier": "premium", "note": ' + "[" * 100_000 + "]" * 100_000 + "}"

    answer = stack.invoke("BillingApiFunction", request)

    assert answer["statusCode"] == 400, answer
    error = json.loads(answer["body"])["error"]
    assert error["code"] == "invalid_request"
    assert "nested deeper than" in error["message"]


def test_a_stale_proration_date_is_a_400(client: BillingClient, opened: dict[str, str]) -> None:
    stale = int(time.time()) - 2 * 3600

    with pytest.raises(InvalidRequest) as refused:
        client.update(TENANT, tier="premium", proration_date=stale)

    assert "prorationDate" in refused.value.message


def test_an_offboarded_tenant_is_a_409(stack: Stack, client: BillingClient, opened: dict[str, str]) -> None:
    deleted = {**tenant_updated(datetime.now(UTC)), "detail-type": "sbt_aws_tenantDeleted"}
    stack.deliver(deleted)

    with pytest.raises(BillingApiError) as refused:
        client.update(TENANT, tier="premium")

    assert (refused.value.status, refused.value.code) == (409, "tenant_offboarded")


def test_the_sample_requests_change_and_preview_as_sam_local_invoke_would_send_them(stack: Stack) -> None:
    change, preview = sample("api_billing_change.json"), sample("api_billing_preview.json")
    tenant = change["pathParameters"]["tenantId"]
    opened_at = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)  # before the samples' requestTimeEpoch
    stack.emulator.admin("POST", "clock", {"now": opened_at.timestamp(), "allow_backwards": True})
    stack.deliver(provision_success(tenant, at=opened_at))

    changed = stack.invoke("BillingApiFunction", change)
    previewed = stack.invoke("BillingApiFunction", preview)

    assert changed["statusCode"] == 200, changed
    assert json.loads(changed["body"])["tier"] == "premium"
    assert previewed["statusCode"] == 200, previewed
    assert json.loads(previewed["body"])["currentTier"] == "premium"


# -- ordering with the event path ------------------------------------------------------------------------


def test_a_patch_and_a_tenant_updated_event_order_by_their_times(
    stack: Stack, client: BillingClient, opened: dict[str, str]
) -> None:
    before_patch = datetime.now(UTC) - timedelta(seconds=5)
    client.update(TENANT, tier="premium")

    [older] = stack.deliver(tenant_updated(before_patch, tier="standard"))
    assert older["result"] == "unchanged"
    assert client.billing(TENANT).plan.tier == "premium"  # type: ignore[union-attr]

    [newer] = stack.deliver(tenant_updated(datetime.now(UTC) + timedelta(seconds=1), tier="standard"))
    assert (newer["result"], newer["tier"]) == ("applied", "standard")
    late_patch = client.update(TENANT, email="late@globex.test")
    assert late_patch.tier == "standard"


# -- concurrency and idempotency ---------------------------------------------------------------------------


def test_two_concurrent_changes_one_applies_the_other_is_busy_and_the_later_wins(
    stack: Stack, client: BillingClient, opened: dict[str, str]
) -> None:
    # The first change holds the tenant's lease while Stripe takes its time over the update.
    stack.emulator.fault(route=PLAN_UPDATE, stage="endpoint", delay_ms=1500, count=1)
    answers: dict[str, BillingChange | BillingApiError] = {}
    key = str(uuid.uuid4())

    def change(tier: str) -> None:
        try:
            answers[tier] = client.update(TENANT, tier=tier, idempotency_key=f"{key}-{tier}")
        except BillingApiError as error:
            answers[tier] = error

    first = threading.Thread(target=change, args=("standard",))
    first.start()
    time.sleep(0.5)
    change("premium")  # later: recorded while the first holds the lease
    first.join()

    busy, applied = answers["premium"], answers["standard"]
    assert isinstance(busy, Busy)
    assert (busy.code, busy.retry_after) == ("tenant_busy", 1)
    assert isinstance(applied, BillingChange)
    assert applied.tier == "premium"  # the holder applied the change recorded meanwhile
    assert stack.emulator.counts()[PLAN_UPDATE] == 2
    retried = client.update(TENANT, tier="premium", idempotency_key=f"{key}-premium")  # the 409 was not kept
    assert (retried.result, retried.tier) == ("unchanged", "premium")
    assert client.billing(TENANT).plan.tier == "premium"  # type: ignore[union-attr]


def test_a_retry_with_the_same_idempotency_key_returns_the_first_answer(
    stack: Stack, client: BillingClient, opened: dict[str, str]
) -> None:
    key = str(uuid.uuid4())
    first = client.update(TENANT, tier="premium", idempotency_key=key)
    stack.deliver(tenant_updated(datetime.now(UTC) + timedelta(seconds=1), tier="standard"))
    writes = stack.emulator.writes()

    again = client.update(TENANT, tier="premium", idempotency_key=key)

    assert again == first
    assert again.tier == "premium"  # the first answer, though the tenant is on standard since
    assert stack.emulator.writes() == writes
    assert client.billing(TENANT).plan.tier == "standard"  # type: ignore[union-attr]


def test_the_same_idempotency_key_with_another_body_is_refused(
    stack: Stack, client: BillingClient, opened: dict[str, str]
) -> None:
    key = str(uuid.uuid4())
    client.update(TENANT, tier="premium", idempotency_key=key)
    writes = stack.emulator.writes()

    with pytest.raises(IdempotencyKeyReused) as refused:
        client.update(TENANT, tier="standard", idempotency_key=key)

    assert (refused.value.status, refused.value.code) == (422, "idempotency_key_reused")
    assert stack.emulator.writes() == writes
    assert client.billing(TENANT).plan.tier == "premium"  # type: ignore[union-attr]


def test_a_duplicate_in_progress_is_a_409_and_a_busy_answer_is_not_kept(
    stack: Stack, client: BillingClient, opened: dict[str, str]
) -> None:
    stack.emulator.fault(route=PLAN_UPDATE, stage="endpoint", delay_ms=1500, count=1)
    key = str(uuid.uuid4())
    answers: list[BillingChange | BillingApiError] = []

    def change() -> None:
        try:
            answers.append(client.update(TENANT, tier="premium", idempotency_key=key))
        except BillingApiError as error:
            answers.append(error)

    first = threading.Thread(target=change)
    first.start()
    time.sleep(0.5)
    change()
    first.join()

    duplicate, original = answers
    assert isinstance(duplicate, Busy)
    assert duplicate.code == "idempotency_in_progress"
    assert isinstance(original, BillingChange)
    assert client.update(TENANT, tier="premium", idempotency_key=key) == original
    assert stack.emulator.counts()[PLAN_UPDATE] == 1


# -- previews --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", [ALWAYS_INVOICE], indirect=True)
def test_a_change_is_invoiced_to_the_cent_what_its_preview_said(
    stack: Stack, client: BillingClient, opened: dict[str, str]
) -> None:
    preview = client.preview(TENANT, "premium")
    stack.emulator.admin("POST", "clock", {"advance_seconds": 3 * DAY})  # Stripe's now moves on

    change = client.update(TENANT, tier="premium", proration_date=preview.proration_date)

    assert (preview.current_tier, preview.proration_behavior) == ("basic", "always_invoice")
    assert preview.due_now is not None
    assert change.invoiced_now is not None
    assert (change.invoiced_now.amount_due, change.invoiced_now.currency) == (
        preview.due_now.amount_due,
        preview.due_now.currency,
    )
    assert 0 < preview.due_now.amount_due <= 29900 - 2900
    assert change.invoiced_now.hosted_invoice_url
    assert preview.next_invoice is not None
    assert preview.next_invoice.amount_due == 29900  # the next period on the new price alone


@pytest.mark.parametrize("stack", [ALWAYS_INVOICE], indirect=True)
def test_a_preview_depends_on_its_proration_date_and_changes_nothing(
    stack: Stack, client: BillingClient
) -> None:
    now = int(time.time())
    stack.emulator.admin(
        "POST", "clock", {"now": now - 2 * 3600, "allow_backwards": True}
    )  # a period 2 h old
    stack.emulator.admin("POST", "clock", {"frozen": False})
    stack.deliver(provision_success())
    writes = stripe_writes(stack)

    earlier, later = (
        client.preview(TENANT, "premium", proration_date=now - 3000),
        client.preview(TENANT, "premium"),
    )

    assert earlier.due_now is not None
    assert later.due_now is not None
    assert earlier.due_now.amount_due > later.due_now.amount_due  # more of the period left to charge
    assert stripe_writes(stack) == writes
    assert client.billing(TENANT).plan.tier == "basic"  # type: ignore[union-attr]


def test_with_prorations_on_the_next_invoice_the_preview_is_the_next_invoice(
    client: BillingClient, opened: dict[str, str]
) -> None:
    preview = client.preview(TENANT, "premium")
    client.update(TENANT, tier="premium", proration_date=preview.proration_date)

    next_invoice = client.billing(TENANT).next_invoice
    assert preview.due_now is None
    assert preview.next_invoice is not None
    assert next_invoice is not None
    assert preview.next_invoice.amount_due == next_invoice.amount_due
    assert next_invoice.amount_due > 29900  # the new price and the prorations of the change


def test_a_preview_of_an_account_not_open_yet_is_a_409(stack: Stack, client: BillingClient) -> None:
    stack.deliver(tenant_updated(datetime.now(UTC), tier="standard"))

    with pytest.raises(BillingApiError) as refused:
        client.preview(TENANT, "premium")

    assert (refused.value.status, refused.value.code) == (409, "account_not_open")


# -- payment required (Stripe's pending updates) ---------------------------------------------------------------


def paying_tenant(stack: Stack, opened: dict[str, str], payment_method: str) -> None:
    """The trial is over and the tenant pays by card: the subscription is active and charged at once."""
    stripe = stack.emulator.client()
    stripe.v1.customers.update(
        opened["customer_id"], params={"invoice_settings": {"default_payment_method": "pm_card_visa"}}
    )
    stack.emulator.admin("POST", "clock", {"advance_seconds": 15 * DAY})
    assert stripe.v1.subscriptions.retrieve(opened["subscription_id"]).status == "active"
    stripe.v1.customers.update(
        opened["customer_id"], params={"invoice_settings": {"default_payment_method": payment_method}}
    )


@pytest.mark.parametrize("stack", [CHARGED_AT_ONCE], indirect=True)
def test_an_upgrade_whose_payment_fails_is_a_402_with_the_invoice_to_pay_and_the_plan_unchanged(
    stack: Stack, client: BillingClient, opened: dict[str, str]
) -> None:
    paying_tenant(stack, opened, "pm_card_chargeDeclined")
    key = str(uuid.uuid4())

    with pytest.raises(PaymentRequired) as refused:
        client.update(TENANT, tier="premium", idempotency_key=key)

    invoice = refused.value.invoice
    assert (refused.value.status, refused.value.code) == (402, "payment_required")
    assert invoice is not None
    assert (invoice.status, invoice.amount_paid) == ("open", 0)
    assert invoice.amount_due > 0
    assert invoice.hosted_invoice_url
    assert client.billing(TENANT).plan.tier == "basic"  # type: ignore[union-attr]
    assert client.status(TENANT).allowed
    [failure] = [e["detail"] for e in stack.published() if e["detail-type"] == "sbt_aws_billingFailure"]
    assert (failure["operation"], failure["tier"], failure["invoiceId"]) == (
        "update_account",
        "premium",
        invoice.id,
    )
    assert failure["reason"].startswith("payment_required")
    with pytest.raises(PaymentRequired):  # the same request again: the first answer, no second charge
        client.update(TENANT, tier="premium", idempotency_key=key)
    assert stack.emulator.counts()[PLAN_UPDATE] == 1


@pytest.mark.parametrize("stack", [CHARGED_AT_ONCE], indirect=True)
def test_a_change_waiting_for_payment_is_not_retried_and_the_account_follows_once_it_is_paid(
    stack: Stack, client: BillingClient, opened: dict[str, str]
) -> None:
    paying_tenant(stack, opened, "pm_card_chargeDeclined")
    with pytest.raises(PaymentRequired) as refused:
        client.update(TENANT, tier="premium")
    assert refused.value.invoice is not None

    # Later changes of other fields do not try the upgrade again.
    client.update(TENANT, email="ap@globex.test")
    assert stack.emulator.counts()[PLAN_UPDATE] == 1
    # The tenant pays the invoice with a good card: Stripe applies the upgrade.
    stripe = stack.emulator.client()
    stripe.v1.customers.update(
        opened["customer_id"], params={"invoice_settings": {"default_payment_method": "pm_card_visa"}}
    )
    stripe.v1.invoices.pay(refused.value.invoice.id)
    assert client.billing(TENANT).plan.tier == "premium"  # type: ignore[union-attr]

    change = client.update(TENANT, tenant_name="Globex Corporation")  # the next drive follows Stripe

    assert (change.result, change.tier) == ("applied", "premium")
    assert stack.emulator.counts()[PLAN_UPDATE] == 1
    assert stack.account(TENANT)["pending_plan"] is None  # type: ignore[index]


@pytest.mark.parametrize("stack", [CHARGED_AT_ONCE], indirect=True)
def test_an_upgrade_paid_at_once_is_applied_with_its_paid_invoice(
    stack: Stack, client: BillingClient, opened: dict[str, str]
) -> None:
    paying_tenant(stack, opened, "pm_card_visa")

    change = client.update(TENANT, tier="premium")

    assert (change.result, change.tier) == ("applied", "premium")
    assert change.invoiced_now is not None
    assert change.invoiced_now.status == "paid"
    assert change.invoiced_now.amount_paid == change.invoiced_now.amount_due > 0


# -- the function's role -----------------------------------------------------------------------------------

# What SAM's policy templates grant (https://docs.aws.amazon.com/serverless-application-model/latest/
# developerguide/serverless-policy-template-list.html), for the ones the billing API's role uses.
POLICY_TEMPLATE_ACTIONS = {
    "DynamoDBCrudPolicy": (
        "dynamodb",
        {
            "GetItem",
            "DeleteItem",
            "PutItem",
            "Scan",
            "Query",
            "UpdateItem",
            "BatchWriteItem",
            "BatchGetItem",
            "DescribeTable",
            "ConditionCheckItem",
        },
    ),
    "DynamoDBReadPolicy": ("dynamodb", {"GetItem", "Scan", "Query", "BatchGetItem", "DescribeTable"}),
    "EventBridgePutEventsPolicy": ("events", {"PutEvents"}),
}
SEATS_ON_PREMIUM = {
    "TIER_CATALOGUE": json.dumps(
        {
            "basic": {"price": "sbt_basic_monthly"},
            "premium": {"price": "sbt_premium_monthly", "seat_price": "sbt_premium_seat"},
        }
    )
}


def granted(function_id: str) -> set[tuple[str, str, str]]:
    """(service, action, logical id of the table or parameter of the bus) the function's policies grant."""
    grants = set()
    for policy in load_template()["Resources"][function_id]["Properties"]["Policies"]:
        [(name, argument)] = policy.items()
        if name in POLICY_TEMPLATE_ACTIONS:
            service, actions = POLICY_TEMPLATE_ACTIONS[name]
            [target] = argument.values()
            grants |= {(service, action, target["Ref"]) for action in actions}
    return grants


@pytest.mark.parametrize("stack", [SEATS_ON_PREMIUM], indirect=True)
def test_the_api_functions_role_grants_every_aws_call_its_routes_make(
    stack: Stack, client: BillingClient, opened: dict[str, str]
) -> None:
    """moto enforces no IAM: the calls are recorded and checked against the template's grants."""
    from sbt_billing.bootstrap.clients import aws_client as _aws_client

    stack.emulator.seed_usage_catalogue()
    logical = {name: logical_id for logical_id, name in stack.resources.tables.items()}
    logical[stack.resources.event_bus_name] = "EventBusName"
    calls: set[tuple[str, str, str]] = set()

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        target = params.get("TableName") or params.get("Entries", [{}])[0].get("EventBusName")
        calls.add((model.service_model.service_name, model.name, logical.get(target, target)))

    clients = [_aws_client(service) for service in ("dynamodb", "events", "sqs", "secretsmanager")]
    for aws in clients:
        aws.meta.events.register("provide-client-params.*.*", record)
    try:
        client.status(TENANT)
        client.billing(TENANT)
        client.preview(TENANT, "premium")
        client.update(TENANT, tier="premium", idempotency_key=str(uuid.uuid4()))  # adds the seat item
        client.update(TENANT, email="ap@globex.test")
    finally:
        for aws in clients:
            aws.meta.events.unregister("provide-client-params.*.*", record)

    assert ("dynamodb", "Query", "UsageTable") in calls  # the seats are counted
    assert ("dynamodb", "PutItem", "IdempotencyTable") in calls
    assert ("events", "PutEvents", "EventBusName") in calls
    assert calls - granted("BillingApiFunction") == set()
