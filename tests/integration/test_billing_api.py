"""The billing API through a loopback API Gateway (the template's routes, SigV4 verified) and the
typed client, against moto's server and the Stripe emulator."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.credentials import Credentials
from openapi_spec_validator import validate
from sbt_billing_client import AccessDenied, BillingClient, InvalidRequest, TenantNotFound

from tests.support.harness import Stack, sample, stack_on
from tests.support.local_gateway import CREDENTIALS, LocalApiGateway

PROVISION = "01_provision_success.json"
ONBOARDING = "00_onboarding_request.json"  # SBT registered the tenant: its id, registration and tier
TENANT = sample(ONBOARDING)["detail"]["tenantId"]
DAY = 86_400


@pytest.fixture
def stack(moto_endpoint: str, emulator_url: str) -> Iterator[Stack]:
    with stack_on(moto_endpoint, emulator_url) as stack:
        stack.deliver(sample(ONBOARDING))  # provisioning events name only the registration
        yield stack


@pytest.fixture
def gateway(stack: Stack) -> Iterator[LocalApiGateway]:
    with LocalApiGateway(stack.invoke, CREDENTIALS) as gateway:  # type: ignore[arg-type]
        yield gateway


@pytest.fixture
def client(gateway: LocalApiGateway) -> BillingClient:
    return BillingClient(gateway.url, region="us-east-1", credentials=CREDENTIALS)


@pytest.fixture
def opened(stack: Stack) -> dict[str, str]:
    [outcome] = stack.deliver(sample(PROVISION))
    return outcome


def call(stack: Stack, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response: dict[str, Any] = stack.request(event)
    return int(response["statusCode"]), json.loads(response["body"])


# -- the gate ------------------------------------------------------------------------------------------------


def test_the_gate_answers_for_an_open_account(client: BillingClient, opened: dict[str, str]) -> None:
    status = client.status(TENANT)

    assert (status.tenant_id, status.state, status.allowed) == (TENANT, "active", True)
    assert status.reasons == ("subscription_active",)


def test_the_gate_is_one_consistent_get_item_and_no_stripe_call(stack: Stack, opened: dict[str, str]) -> None:
    from sbt_billing.bootstrap.stores import account_store

    calls: list[tuple[str, dict[str, Any]]] = []
    client = account_store()._client
    stripe_before = stack.emulator.counts()

    def count(params: dict[str, Any], model: Any, **_: Any) -> None:
        calls.append((model.name, params))

    client.meta.events.register("provide-client-params.dynamodb.*", count)
    try:
        status, body = call(stack, sample("api_billing_status.json"))
    finally:
        client.meta.events.unregister("provide-client-params.dynamodb.*", count)

    assert (status, body["state"]) == (200, "active")
    assert [name for name, _ in calls] == ["GetItem"]
    assert calls[0][1]["ConsistentRead"] is True
    assert stack.emulator.counts() == stripe_before


def test_an_unknown_tenant_is_a_404(stack: Stack, client: BillingClient) -> None:
    status, body = call(stack, sample("api_billing_unknown_tenant.json"))

    assert (status, body["error"]["code"]) == (404, "tenant_not_found")
    with pytest.raises(TenantNotFound):
        client.billing("no-such-tenant")


def test_an_invalid_limit_is_a_400(stack: Stack, client: BillingClient, opened: dict[str, str]) -> None:
    status, body = call(stack, sample("api_billing_invalid_limit.json"))

    assert (status, body["error"]["code"]) == (400, "invalid_request")
    assert body["error"]["details"][0]["loc"] == ["query", "limit"]
    with pytest.raises(InvalidRequest):
        client.billing(TENANT, limit=0)


def test_an_invalid_tenant_id_or_cursor_is_a_400(client: BillingClient, opened: dict[str, str]) -> None:
    with pytest.raises(InvalidRequest):
        client.status("bad tenant!")
    with pytest.raises(InvalidRequest):
        client.billing(TENANT, starting_after="not-an-invoice")
    with pytest.raises(InvalidRequest) as unknown:
        client.billing(TENANT, starting_after="in_doesnotexist")
    assert unknown.value.code == "invalid_cursor"


def test_an_unsigned_request_is_a_403_at_the_gateway(
    gateway: LocalApiGateway, opened: dict[str, str]
) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{gateway.url}/tenants/{TENANT}/billing/status", timeout=5)

    assert refused.value.code == 403


def test_a_request_signed_with_other_credentials_is_a_403(gateway: LocalApiGateway) -> None:
    stranger = BillingClient(gateway.url, region="us-east-1", credentials=Credentials("AKIAOTHER", "nope"))

    with pytest.raises(AccessDenied):
        stranger.status(TENANT)


def test_the_function_refuses_a_request_api_gateway_did_not_authenticate(
    stack: Stack, opened: dict[str, str]
) -> None:
    status, body = call(stack, sample("api_billing_unauthenticated.json"))

    assert (status, body["error"]["code"]) == (403, "forbidden")


# -- the full view ------------------------------------------------------------------------------------------


def test_billing_shows_customer_plan_subscription_and_invoices(
    client: BillingClient, opened: dict[str, str]
) -> None:
    billing = client.billing(TENANT)

    assert billing.customer is not None
    assert (billing.customer.id, billing.customer.email) == (opened["customer_id"], "billing@acme.test")
    assert billing.customer.address is not None
    assert billing.customer.address.city == "Springfield"
    assert billing.plan is not None
    assert (billing.plan.tier, billing.plan.amount, billing.plan.currency, billing.plan.interval) == (
        "basic",
        2900,
        "usd",
        "month",
    )
    assert billing.subscription is not None
    assert (billing.subscription.id, billing.subscription.status) == (opened["subscription_id"], "active")
    assert billing.subscription.current_period_start is not None
    assert billing.subscription.current_period_end is not None
    assert billing.subscription.current_period_end > billing.subscription.current_period_start
    assert billing.next_invoice is not None
    assert billing.next_invoice.amount_due == 2900
    [invoice] = billing.invoices.invoices
    assert (invoice.status, invoice.amount_due, invoice.amount_paid) == ("open", 2900, 0)
    assert invoice.number
    assert invoice.hosted_invoice_url
    assert invoice.due_date is not None
    assert billing.status.allowed


def test_invoices_come_page_by_page(stack: Stack, client: BillingClient, opened: dict[str, str]) -> None:
    for _ in range(2):
        stack.emulator.admin("POST", "clock", {"advance_seconds": 32 * DAY})

    first = client.billing(TENANT, limit=1).invoices
    everything = list(client.invoices(TENANT, page_size=1))

    assert first.has_more
    assert first.next_cursor == first.invoices[0].id
    assert len(everything) == 3
    assert len({invoice.id for invoice in everything}) == 3
    assert everything[0].id == first.invoices[0].id


# -- the OpenAPI document -----------------------------------------------------------------------------------


def test_the_served_openapi_document_validates(client: BillingClient) -> None:
    document = client.openapi()

    validate(document)
    assert set(document["paths"]) == {
        "/tenants/{tenantId}/billing",
        "/tenants/{tenantId}/billing/status",
        "/tenants/{tenantId}/billing/preview",
        "/tenants/{tenantId}/billing/portal-session",
        "/tenants/{tenantId}/billing/checkout-session",
    }
    assert set(document["paths"]["/tenants/{tenantId}/billing"]) == {"get", "patch"}
    status = document["paths"]["/tenants/{tenantId}/billing/status"]["get"]
    assert {"200", "400", "403", "404"} <= set(status["responses"])
    assert document["components"]["securitySchemes"]["sigv4"]["name"] == "Authorization"


def test_the_documented_openapi_document_is_the_generated_one() -> None:
    from sbt_billing.entrypoints.api.billing_api import make_resolver, openapi_document

    from devtools.template import ROOT

    generated = json.loads(openapi_document(make_resolver(lambda: None)))  # type: ignore[arg-type, return-value]
    documented = json.loads((ROOT / "docs" / "openapi.json").read_text())

    assert documented == generated, "regenerate docs/openapi.json (see docs/API.md, 'The OpenAPI document')"
