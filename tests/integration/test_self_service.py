"""Self-service end to end: the billing API opens Stripe's hosted pages (the loopback API Gateway, SigV4,
the typed client), the tenant acts in them (the emulator's admin hooks play the hosted page), Stripe's
events come back signed to the webhook function, and the lifecycle's queue applies what only it may
write. moto's server and the Stripe emulator throughout."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sbt_billing_client import BillingClient, Conflict

from devtools.moto_server import AwsClients
from tests.support.harness import TEST_KEY, Stack, sample, stack_on
from tests.support.local_gateway import CREDENTIALS, LocalApiGateway

TENANT = "5d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6"
SECRET = "whsec_self_service_" + "0" * 24
ADMIN_PAGE = "https://admin.saas.test/billing"
PERIOD_END = {"DOWNGRADE_AT": "period_end"}


def provision_success(tier: str, tenant: str = TENANT) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "sbt_aws_provisionSuccess",
        "source": "sbt.application.plane",
        "account": "123456789012",
        "time": datetime.now(UTC).isoformat(),
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "tenantId": tenant,
            "tier": tier,
            "tenantName": "initech",
            "email": "billing@initech.test",
        },
    }


@pytest.fixture
def stack(request: pytest.FixtureRequest, moto_endpoint: str, emulator_url: str) -> Iterator[Stack]:
    """The stack with a webhook secret; `@pytest.mark.parametrize("stack", [{...}], indirect=True)`
    overrides settings."""
    name = f"sbt/stripe-webhook-{uuid.uuid4().hex[:8]}"
    AwsClients(moto_endpoint).secretsmanager().create_secret(Name=name, SecretString=SECRET)
    overrides = {"WEBHOOK_SECRET_NAME": name, **(getattr(request, "param", None) or {})}
    with stack_on(moto_endpoint, emulator_url, overrides) as stack:
        stack.emulator.admin("POST", "webhook_endpoints", {"secret": SECRET})
        yield stack


@pytest.fixture
def client(stack: Stack) -> Iterator[BillingClient]:
    with LocalApiGateway(stack.invoke, CREDENTIALS) as gateway:  # type: ignore[arg-type]
        yield BillingClient(gateway.url, region="us-east-1", credentials=CREDENTIALS, timeout=30)


class Stripe:
    """Stripe's side of the tests: its state, its clock, and its signed deliveries to the webhook,
    each event once, oldest first (Stripe's retries and reordering are the webhook tests' subject)."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.api = stack.emulator.client()
        self.delivered: set[str] = set()

    def deliver(self) -> list[dict[str, Any]]:
        answers = []
        for event in self.stack.emulator.admin("GET", "events")["data"]:
            if event["id"] in self.delivered:
                continue
            self.delivered.add(event["id"])
            delivery = self.stack.emulator.admin("POST", f"events/{event['id']}/signed", {})
            request = sample("webhook_invoice_paid.json")  # the API Gateway request, with this delivery
            request["body"] = delivery["payload"]
            request["headers"] = {**request["headers"], **delivery["headers"]}
            request["multiValueHeaders"] = {name: [value] for name, value in request["headers"].items()}
            response = self.stack.invoke("StripeWebhookFunction", request)
            assert response["statusCode"] == 200, response
            answers.append(json.loads(response["body"]))
        return answers

    def settle(self) -> None:
        """Stripe's events delivered, and what the webhook handed the lifecycle applied (its queue run),
        until nothing new happens."""
        while self.deliver():
            self.stack.run_queue("TenantUpdatedQueue")

    def subscription(self, subscription_id: str) -> Any:
        return self.api.v1.subscriptions.retrieve(subscription_id)

    def price(self, lookup_key: str) -> str:
        return str(self.api.v1.prices.list(params={"lookup_keys": [lookup_key]}).data[0].id)

    def move_clock_to(self, at: int) -> None:
        self.stack.emulator.admin("POST", "clock", {"now": at})


@pytest.fixture
def stripe(stack: Stack) -> Stripe:
    return Stripe(stack)


def opened(stack: Stack, stripe: Stripe, tier: str) -> dict[str, str]:
    [outcome] = stack.deliver(provision_success(tier))
    assert outcome["result"] == "applied", outcome
    stripe.settle()
    stack.published()
    return outcome


def billing_successes(stack: Stack) -> list[dict[str, Any]]:
    return [
        event["detail"] for event in stack.published() if event["detail-type"] == "sbt_aws_billingSuccess"
    ]


def period_end(stripe: Stripe, subscription_id: str) -> int:
    return int(stripe.subscription(subscription_id)["items"].data[0].current_period_end)


# -- a payment method before provisioning ------------------------------------------------------------------


@pytest.mark.parametrize("stack", [{"REQUIRE_PAYMENT_METHOD": "true"}], indirect=True)
def test_a_completed_checkout_flips_the_gate_from_payment_method_required_to_allowed(
    stack: Stack, client: BillingClient, stripe: Stripe
) -> None:
    opened(stack, stripe, "basic")
    before = client.status(TENANT)

    session = client.checkout_session(TENANT, f"{ADMIN_PAGE}?done=1", ADMIN_PAGE)
    stack.emulator.admin(
        "POST", f"checkout/sessions/{session.session_id}/complete", {"payment_method": "pm_card_visa"}
    )
    stripe.deliver()  # the webhook alone: the gate follows Stripe's report at once
    between = client.status(TENANT)

    assert (before.allowed, before.reasons) == (False, ("subscription_active", "payment_method_required"))
    assert session.url.startswith("https://checkout.stripe.com/")
    assert (between.allowed, between.reasons) == (True, ("subscription_active",))


@pytest.mark.parametrize("stack", [{"REQUIRE_PAYMENT_METHOD": "true"}], indirect=True)
def test_a_completed_checkout_makes_the_card_the_default_and_charges_the_subscription_automatically(
    stack: Stack, client: BillingClient, stripe: Stripe
) -> None:
    outcome = opened(stack, stripe, "basic")
    subscription = stripe.subscription(outcome["subscription_id"])
    session = client.checkout_session(TENANT, f"{ADMIN_PAGE}?done=1", ADMIN_PAGE)

    stack.emulator.admin("POST", f"checkout/sessions/{session.session_id}/complete", {})
    stripe.settle()

    customer = stripe.api.v1.customers.retrieve(outcome["customer_id"])
    card = customer.invoice_settings.default_payment_method
    assert subscription.collection_method == "send_invoice"
    assert card is not None
    assert str(card).startswith("pm_")
    assert stripe.subscription(outcome["subscription_id"]).collection_method == "charge_automatically"
    account = stack.account(TENANT)
    assert account is not None
    assert account["applied_payment_method"] == card
    published = billing_successes(stack)
    assert [(e["operation"], e.get("origin")) for e in published] == [
        ("payment_method_updated", "stripe"),
        ("update_account", None),
    ]
    assert client.billing(TENANT).has_payment_method


@pytest.mark.parametrize(
    "stack", [{"REQUIRE_PAYMENT_METHOD": "true", "OPEN_ACCOUNT_ON": "onboardingRequest"}], indirect=True
)
def test_with_billing_opened_at_onboarding_a_tenant_without_a_card_is_not_provisioned(
    stack: Stack, client: BillingClient, stripe: Stripe
) -> None:
    [outcome] = stack.deliver(sample("00_onboarding_request.json"))
    tenant = sample("00_onboarding_request.json")["detail"]["tenantId"]
    stripe.settle()

    gate = client.status(tenant)

    assert outcome["result"] == "applied"
    assert gate.allowed is False
    assert "payment_method_required" in gate.reasons


# -- the customer portal ----------------------------------------------------------------------------------


def test_a_plan_change_in_the_portal_updates_the_account_and_is_published(
    stack: Stack, client: BillingClient, stripe: Stripe
) -> None:
    outcome = opened(stack, stripe, "basic")
    session = client.portal_session(TENANT, ADMIN_PAGE)
    writes = stack.emulator.writes()

    stack.emulator.admin(
        "POST",
        f"billing_portal/sessions/{session.session_id}/subscription_update",
        {"subscription": outcome["subscription_id"], "price": stripe.price("sbt_premium_monthly")},
    )
    stripe.settle()

    account = stack.account(TENANT)
    assert account is not None
    assert (account["applied_tier"], account["desired"]["tier"]["value"]) == ("premium", "premium")
    [published] = billing_successes(stack)
    assert published["operation"] == "plan_changed"
    assert (published["origin"], published["tier"], published["subscriptionStatus"]) == (
        "stripe",
        "premium",
        "active",
    )
    assert stack.emulator.writes() == writes  # the portal made the change: nothing pushed back
    assert client.billing(TENANT).plan.tier == "premium"  # type: ignore[union-attr]


def test_the_portal_offers_the_catalogue_and_its_configuration_is_made_once(
    stack: Stack, client: BillingClient, stripe: Stripe
) -> None:
    from sbt_billing.bootstrap.clients import forget_clients

    opened(stack, stripe, "basic")

    first = client.portal_session(TENANT, ADMIN_PAGE)
    forget_clients()  # a function starting again (a new container, a deploy)
    second = client.portal_session(TENANT, ADMIN_PAGE, flow="payment_method_update")

    [configuration] = stack.emulator.admin("GET", "state")["billing_portal_configurations"]
    offered = configuration["features"]["subscription_update"]["products"]
    prices = {price for product in offered for price in product["prices"]}
    assert prices == {
        stripe.price(key) for key in ("sbt_basic_monthly", "sbt_standard_monthly", "sbt_premium_monthly")
    }
    assert configuration["features"]["subscription_cancel"]["enabled"] is False
    assert configuration["features"]["subscription_update"]["schedule_at_period_end"]["conditions"] == []
    assert first.url.startswith("https://billing.stripe.com/")
    assert second.flow == "payment_method_update"
    assert stack.emulator.counts().get("POST /v1/billing_portal/configurations") == 1


def test_a_changed_deployment_updates_the_portal_configuration_instead_of_making_another(
    stack: Stack, client: BillingClient, stripe: Stripe, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sbt_billing.bootstrap.clients import forget_clients

    opened(stack, stripe, "basic")
    client.portal_session(TENANT, ADMIN_PAGE)

    monkeypatch.setenv("DOWNGRADE_AT", "period_end")  # redeployed with period-end downgrades
    forget_clients()
    client.portal_session(TENANT, ADMIN_PAGE)

    [configuration] = stack.emulator.admin("GET", "state")["billing_portal_configurations"]
    conditions = configuration["features"]["subscription_update"]["schedule_at_period_end"]["conditions"]
    assert conditions == [{"type": "decreasing_item_amount"}]
    counts = stack.emulator.counts()
    assert counts.get("POST /v1/billing_portal/configurations") == 1
    assert counts.get("POST /v1/billing_portal/configurations/{id}") == 1


def test_functions_starting_together_make_one_portal_configuration(stack: Stack) -> None:
    import threading

    from sbt_billing.adapters.stripe_hosted_pages import StripeSelfServiceGateway
    from sbt_billing.bootstrap.api import self_service
    from sbt_billing.bootstrap.settings import settings
    from sbt_billing.bootstrap.stripe import billing_policy, stripe_client

    configuration = self_service().configuration()
    # Two containers' gateways (their own clients and caches), asking at the same time.
    gateways = [
        StripeSelfServiceGateway(stripe_client(settings(), TEST_KEY), billing_policy()) for _ in range(2)
    ]
    found: list[str] = []
    threads = [
        threading.Thread(target=lambda g=gateway: found.append(g.portal_configuration(configuration)))
        for gateway in gateways
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(set(found)) == 1
    assert len(stack.emulator.admin("GET", "state")["billing_portal_configurations"]) == 1


def test_cancellation_is_not_offered_unless_the_deployment_allows_it(
    stack: Stack, client: BillingClient, stripe: Stripe
) -> None:
    from sbt_billing_client import InvalidRequest

    opened(stack, stripe, "basic")

    with pytest.raises(InvalidRequest) as refused:
        client.portal_session(TENANT, ADMIN_PAGE, flow="subscription_cancel")

    assert "flow" in refused.value.message


@pytest.mark.parametrize("stack", [{"PORTAL_CANCELLATION": "true"}], indirect=True)
def test_a_cancellation_in_the_portal_comes_home_and_is_published(
    stack: Stack, client: BillingClient, stripe: Stripe
) -> None:
    outcome = opened(stack, stripe, "basic")
    session = client.portal_session(TENANT, ADMIN_PAGE, flow="subscription_cancel")

    stack.emulator.admin(
        "POST",
        f"billing_portal/sessions/{session.session_id}/subscription_cancel",
        {"subscription": outcome["subscription_id"]},
    )
    stripe.settle()

    gate = client.status(TENANT)
    assert (gate.state, gate.allowed) == ("canceled", False)
    [published] = billing_successes(stack)
    assert (published["operation"], published["subscriptionStatus"]) == ("subscription_canceled", "canceled")


def test_a_tenant_without_a_customer_gets_no_session(stack: Stack, client: BillingClient) -> None:
    stack.deliver(sample("00_onboarding_request.json"))  # recorded; billing opens at provisioning
    tenant = sample("00_onboarding_request.json")["detail"]["tenantId"]

    with pytest.raises(Conflict) as refused:
        client.checkout_session(tenant, ADMIN_PAGE, ADMIN_PAGE)

    assert refused.value.code == "account_not_open"


# -- downgrades at the period's end ------------------------------------------------------------------------


@pytest.mark.parametrize("stack", [PERIOD_END], indirect=True)
def test_a_period_end_downgrade_takes_effect_when_the_clock_passes_the_period_end_not_before(
    stack: Stack, client: BillingClient, stripe: Stripe
) -> None:
    outcome = opened(stack, stripe, "premium")
    subscription = outcome["subscription_id"]
    end = period_end(stripe, subscription)

    change = client.update(TENANT, tier="basic")
    stripe.settle()
    gate = client.status(TENANT)
    stripe.move_clock_to(end - 60)
    stripe.settle()
    before_end = (stack.account(TENANT) or {})["applied_tier"]
    still = stripe.subscription(subscription)["items"].data[0].price.id
    stack.published()
    stripe.move_clock_to(end + 60)
    stripe.settle()

    assert (change.result, change.tier) == ("scheduled", "premium")
    assert change.scheduled_change is not None
    assert (change.scheduled_change.tier, int(change.scheduled_change.at.timestamp())) == ("basic", end)
    assert gate.scheduled_change == change.scheduled_change
    assert (before_end, still) == ("premium", stripe.price("sbt_premium_monthly"))
    assert stripe.subscription(subscription)["items"].data[0].price.id == stripe.price("sbt_basic_monthly")
    account = stack.account(TENANT)
    assert account is not None
    assert (account["applied_tier"], account["scheduled_change"]) == ("basic", None)
    applied = [e for e in billing_successes(stack) if e["operation"] == "scheduled_plan_change_applied"]
    assert [(e["tier"], e["origin"]) for e in applied] == [("basic", "stripe")]
    after = client.billing(TENANT)
    assert (after.plan.tier, after.scheduled_change, after.status.scheduled_change) == ("basic", None, None)  # type: ignore[union-attr]


@pytest.mark.parametrize("stack", [PERIOD_END], indirect=True)
def test_an_upgrade_before_the_period_end_cancels_the_scheduled_downgrade(
    stack: Stack, client: BillingClient, stripe: Stripe
) -> None:
    outcome = opened(stack, stripe, "standard")
    subscription = outcome["subscription_id"]
    end = period_end(stripe, subscription)
    client.update(TENANT, tier="basic")
    scheduled = stripe.subscription(subscription).schedule

    upgrade = client.update(TENANT, tier="premium")
    stripe.settle()
    stripe.move_clock_to(end + 60)
    stripe.settle()

    assert scheduled is not None
    assert (upgrade.result, upgrade.tier, upgrade.scheduled_change) == ("applied", "premium", None)
    assert stripe.api.v1.subscription_schedules.retrieve(str(scheduled)).status == "released"
    assert stripe.subscription(subscription)["items"].data[0].price.id == stripe.price("sbt_premium_monthly")
    account = stack.account(TENANT)
    assert account is not None
    assert (account["applied_tier"], account["scheduled_change"]) == ("premium", None)
    assert client.status(TENANT).scheduled_change is None


@pytest.mark.parametrize("stack", [PERIOD_END], indirect=True)
def test_another_downgrade_before_the_period_end_replaces_the_scheduled_one(
    stack: Stack, client: BillingClient, stripe: Stripe
) -> None:
    outcome = opened(stack, stripe, "premium")
    subscription = outcome["subscription_id"]
    end = period_end(stripe, subscription)
    client.update(TENANT, tier="standard")

    second = client.update(TENANT, tier="basic")
    stripe.settle()
    stripe.move_clock_to(end + 60)
    stripe.settle()

    assert (second.result, second.scheduled_change.tier) == ("scheduled", "basic")  # type: ignore[union-attr]
    assert stripe.subscription(subscription)["items"].data[0].price.id == stripe.price("sbt_basic_monthly")
    assert len(stack.emulator.admin("GET", "state")["subscription_schedules"]) == 1


@pytest.mark.parametrize("stack", [PERIOD_END], indirect=True)
def test_going_back_to_the_current_tier_withdraws_the_scheduled_downgrade(
    stack: Stack, client: BillingClient, stripe: Stripe
) -> None:
    outcome = opened(stack, stripe, "premium")
    end = period_end(stripe, outcome["subscription_id"])
    client.update(TENANT, tier="basic")

    back = client.update(TENANT, tier="premium")
    stripe.move_clock_to(end + 60)
    stripe.settle()

    assert (back.result, back.scheduled_change) == ("applied", None)
    price = stripe.subscription(outcome["subscription_id"])["items"].data[0].price.id
    assert price == stripe.price("sbt_premium_monthly")


@pytest.mark.parametrize("stack", [PERIOD_END], indirect=True)
def test_a_downgrade_scheduled_in_the_portal_shows_in_the_gate_and_applies_at_the_period_end(
    stack: Stack, client: BillingClient, stripe: Stripe
) -> None:
    outcome = opened(stack, stripe, "premium")
    end = period_end(stripe, outcome["subscription_id"])
    session = client.portal_session(TENANT, ADMIN_PAGE)

    stack.emulator.admin(
        "POST",
        f"billing_portal/sessions/{session.session_id}/subscription_update",
        {"subscription": outcome["subscription_id"], "price": stripe.price("sbt_basic_monthly")},
    )
    stripe.settle()
    gate = client.status(TENANT)
    stripe.move_clock_to(end + 60)
    stripe.settle()

    assert gate.scheduled_change is not None
    assert (gate.scheduled_change.tier, int(gate.scheduled_change.at.timestamp())) == ("basic", end)
    account = stack.account(TENANT)
    assert account is not None
    assert account["applied_tier"] == "basic"
    assert client.status(TENANT).scheduled_change is None


# -- payments that need the customer, trials ----------------------------------------------------------------


@pytest.mark.parametrize("stack", [{"COLLECTION_MODE": "trial", "TRIAL_DAYS": "7"}], indirect=True)
def test_a_payment_needing_authentication_is_a_gate_reason_with_its_hosted_invoice(
    stack: Stack, client: BillingClient, stripe: Stripe
) -> None:
    outcome = opened(stack, stripe, "basic")
    session = client.checkout_session(TENANT, ADMIN_PAGE, ADMIN_PAGE)
    stack.emulator.admin(
        "POST",
        f"checkout/sessions/{session.session_id}/complete",
        {"payment_method": "pm_card_authenticationRequired"},
    )
    stripe.settle()
    trial_end = int(stripe.subscription(outcome["subscription_id"]).trial_end)

    stripe.move_clock_to(trial_end + 60)
    stripe.settle()

    gate = client.status(TENANT)
    view = client.billing(TENANT)
    assert "payment_action_required" in gate.reasons
    assert view.payment_action_required is not None
    assert view.payment_action_required.hosted_invoice_url
    invoice = stripe.api.v1.invoices.retrieve(view.payment_action_required.invoice_id)
    assert invoice.hosted_invoice_url == view.payment_action_required.hosted_invoice_url
    assert invoice.status == "open"


@pytest.mark.parametrize("stack", [{"COLLECTION_MODE": "trial", "TRIAL_DAYS": "14"}], indirect=True)
def test_a_trial_about_to_end_is_announced_on_the_bus(
    stack: Stack, client: BillingClient, stripe: Stripe
) -> None:
    outcome = opened(stack, stripe, "basic")
    trial_end = int(stripe.subscription(outcome["subscription_id"]).trial_end)

    stripe.move_clock_to(trial_end - 3 * 86_400 + 60)
    stripe.settle()

    [announced] = [e["detail"] for e in stack.published() if e["detail-type"] == "sbt_aws_tenantTrialWillEnd"]
    assert announced["tenantId"] == TENANT
    assert announced["subscriptionId"] == outcome["subscription_id"]
    assert announced["hasPaymentMethod"] is False
    assert int(datetime.fromisoformat(announced["trialEnd"]).timestamp()) == trial_end
