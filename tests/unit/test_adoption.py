"""Adopting SBT's tenants with in-memory doubles: what the plan does for each tenant, and applying it
through the lifecycle (never a second customer, an interrupted opening resumed)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sbt_billing.adapters.deployment import deployed_environment
from sbt_billing.adapters.sbt_tenants import sbt_tenant
from sbt_billing.domain.adoption import (
    Adoption,
    AdoptionAction,
    AdoptionResult,
    SbtTenant,
    StripeCustomer,
    StripeIndex,
    plan_step,
)
from sbt_billing.domain.catalogue import TierPlan
from sbt_billing.domain.drift import ObservedItem, ObservedSubscription
from sbt_billing.domain.errors import TransientBillingError
from sbt_billing.domain.models import Account, AccountStatus, CustomerDetails, TenantFacts

from tests.support.doubles import FakeCustomer, FakeSubscription, InMemoryBilling

CATALOGUE = {"basic": TierPlan(price="basic_key"), "premium": TierPlan(price="premium_key")}
T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
TENANT = SbtTenant(tenant_id="t1", name="Acme", email="Ops@Acme.test", tier="premium")


def live(
    customer: str, subscription: str, price: str = "price_basic", key: str = "basic_key"
) -> ObservedSubscription:
    return ObservedSubscription(
        subscription_id=subscription,
        customer_id=customer,
        status="active",
        items=(ObservedItem(item_id=f"si_{subscription}", price_id=price, lookup_key=key, quantity=1),),
    )


def index(
    customers: list[StripeCustomer], subscriptions: list[ObservedSubscription] | None = None
) -> StripeIndex:
    return StripeIndex(customers, subscriptions or [])


# --- The plan ------------------------------------------------------------------------------------------------


def test_a_tenant_without_a_customer_is_opened() -> None:
    step = plan_step(TENANT, None, index([]), CATALOGUE)

    assert step.action is AdoptionAction.OPEN


def test_a_customer_naming_the_tenant_is_linked_with_its_subscription_on_the_catalogue() -> None:
    stripe = index([StripeCustomer(customer_id="cus_1", tenant_id="t1")], [live("cus_1", "sub_1")])

    step = plan_step(TENANT, None, stripe, CATALOGUE)

    assert (step.action, step.customer_id, step.subscription_id) == (AdoptionAction.LINK, "cus_1", "sub_1")
    assert step.subscription_tier == "basic"  # not the tenant's premium: the lifecycle applies premium


def test_two_customers_naming_the_tenant_are_left_to_a_person() -> None:
    stripe = index([StripeCustomer(customer_id=f"cus_{n}", tenant_id="t1") for n in range(2)])

    step = plan_step(TENANT, None, stripe, CATALOGUE)

    assert step.action is AdoptionAction.SKIP
    assert step.reason is not None
    assert "2 Stripe customers name the tenant" in step.reason


def test_an_email_match_is_case_blind_needs_confirmation_and_never_takes_a_customer_of_another_tenant() -> (
    None
):
    mine = StripeCustomer(customer_id="cus_mine", email="ops@acme.test")
    theirs = StripeCustomer(customer_id="cus_theirs", email="ops@acme.test", tenant_id="t2")

    step = plan_step(TENANT, None, index([theirs, mine]), CATALOGUE)

    assert (step.action, step.customer_id) == (AdoptionAction.LINK_BY_EMAIL, "cus_mine")
    two = plan_step(
        TENANT, None, index([mine, StripeCustomer(customer_id="cus_b", email="OPS@acme.test")]), CATALOGUE
    )
    assert two.action is AdoptionAction.SKIP


def test_two_live_subscriptions_on_the_catalogue_or_one_outside_it_are_left_to_a_person() -> None:
    customer = StripeCustomer(customer_id="cus_1", tenant_id="t1")
    two = index([customer], [live("cus_1", "sub_1"), live("cus_1", "sub_2")])
    outside = index([customer], [live("cus_1", "sub_1", price="price_legacy", key="legacy")])

    assert plan_step(TENANT, None, two, CATALOGUE).action is AdoptionAction.SKIP
    assert plan_step(TENANT, None, outside, CATALOGUE).action is AdoptionAction.SKIP


@pytest.mark.parametrize(
    ("tenant", "status", "action"),
    [
        (TENANT.model_copy(update={"offboarded": True}), None, AdoptionAction.SKIP),
        (TENANT.model_copy(update={"tier": None}), None, AdoptionAction.SKIP),
        (TENANT.model_copy(update={"tier": "gold"}), None, AdoptionAction.SKIP),
        (TENANT, AccountStatus.OPEN, AdoptionAction.SKIP),
        (TENANT, AccountStatus.CLOSED, AdoptionAction.SKIP),
        (TENANT, AccountStatus.PENDING, AdoptionAction.OPEN),
        (TENANT, AccountStatus.OPENING, AdoptionAction.RESUME),
    ],
)
def test_what_sbt_and_billing_already_say_decides_first(
    tenant: SbtTenant, status: AccountStatus | None, action: AdoptionAction
) -> None:
    account = Account(tenant_id="t1", status=status) if status else None

    assert plan_step(tenant, account, index([]), CATALOGUE).action is action


# --- Applying it ---------------------------------------------------------------------------------------------


@pytest.fixture
def world() -> InMemoryBilling:
    return InMemoryBilling(CATALOGUE)


def adoption(world: InMemoryBilling) -> Adoption:
    return Adoption(lambda: world.lifecycle(), world.clock)


def test_linking_keeps_the_customer_and_its_subscription_and_creates_nothing(world: InMemoryBilling) -> None:
    world.stripe.customers["cus_1"] = FakeCustomer("cus_1", "t1", CustomerDetails())
    world.stripe.subscriptions["sub_1"] = FakeSubscription("sub_1", "si_1", "cus_1", "price_premium")
    stripe = index(
        [StripeCustomer(customer_id="cus_1", tenant_id="t1")],
        [live("cus_1", "sub_1", "price_premium", "premium_key")],
    )

    result, _ = adoption(world).apply(plan_step(TENANT, None, stripe, CATALOGUE))

    assert result is AdoptionResult.LINKED
    account = world.store.items["t1"]
    assert (account.status, account.customer_id, account.subscription_id) == (
        AccountStatus.OPEN,
        "cus_1",
        "sub_1",
    )
    assert account.applied_tier == "premium"
    assert world.stripe.writes("create_customer") == world.stripe.writes("create_subscription") == 0


def test_an_account_billing_opened_meanwhile_takes_nothing_from_the_adoption(world: InMemoryBilling) -> None:
    step = plan_step(TENANT, None, index([]), CATALOGUE)
    world.lifecycle().open_account(TenantFacts(tenant_id="t1", tier="basic", occurred_at=T0))
    before = world.store.items["t1"]

    result, _ = adoption(world).apply(step)

    assert result is AdoptionResult.UNCHANGED
    assert world.store.items["t1"] == before  # not even its desired tier (SBT's premium) merged
    assert len(world.stripe.customers) == 1


def test_an_opening_stopped_part_way_is_resumed_without_a_second_customer(world: InMemoryBilling) -> None:
    world.stripe.fail_next["create_subscription"] = TransientBillingError("Stripe unavailable")
    with pytest.raises(TransientBillingError):
        adoption(world).apply(plan_step(TENANT, None, index([]), CATALOGUE))
    assert world.store.items["t1"].status is AccountStatus.OPENING

    step = plan_step(TENANT, world.store.items["t1"], index([]), CATALOGUE)
    result, _ = adoption(world).apply(step)

    assert (step.action, result) == (AdoptionAction.RESUME, AdoptionResult.RESUMED)
    assert len(world.stripe.customers) == 1
    assert world.store.items["t1"].status is AccountStatus.OPEN


# --- SBT's records and the deployed settings -----------------------------------------------------------------


def test_sbt_records_are_read_as_sbt_writes_them() -> None:
    record = {
        "tenantId": " t1 ",
        "tenantName": "Acme",
        "email": "o@a.test",
        "tier": "basic",
        "tenantRegistrationId": "r1",
    }

    tenant = sbt_tenant(record)

    assert tenant == SbtTenant(
        tenant_id="t1", name="Acme", email="o@a.test", tier="basic", registration_id="r1"
    )
    assert sbt_tenant({**record, "sbtaws_active": False}).offboarded  # type: ignore[union-attr]
    assert sbt_tenant({**record, "tenantStatus": "Deleting"}).offboarded  # type: ignore[union-attr]
    assert sbt_tenant({**record, "tenantId": "not valid"}) is None


class Stub:
    def __init__(self, **answers: Any) -> None:
        self.answers = answers
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        def call(**kwargs: Any) -> Any:
            self.calls.append((name, kwargs))
            return self.answers[name]

        return call


def test_a_stacks_settings_are_its_reconcile_functions_environment() -> None:
    cloudformation = Stub(
        describe_stack_resource={"StackResourceDetail": {"PhysicalResourceId": "stack-Reconcile-1"}}
    )
    lambdas = Stub(get_function_configuration={"Environment": {"Variables": {"ACCOUNTS_TABLE": "accounts"}}})

    environment = deployed_environment(cloudformation, lambdas, "stack")

    assert environment == {"ACCOUNTS_TABLE": "accounts"}
    assert cloudformation.calls == [
        ("describe_stack_resource", {"StackName": "stack", "LogicalResourceId": "ReconcileFunction"})
    ]
    assert lambdas.calls == [("get_function_configuration", {"FunctionName": "stack-Reconcile-1"})]
