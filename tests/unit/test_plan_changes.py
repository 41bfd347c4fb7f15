"""Synchronous plan changes through the lifecycle (the billing API's PATCH and preview), with doubles:
a change that waits for its invoice is never tried again by itself, and the account follows Stripe
once the invoice is paid."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sbt_billing.domain.catalogue import TierPlan
from sbt_billing.domain.errors import NotBillable, TenantBusy, UnknownTenant
from sbt_billing.domain.models import Lease, TenantFacts
from sbt_billing.domain.published import BILLING_FAILURE, BILLING_SUCCESS
from sbt_billing.domain.results import Result

from tests.support.doubles import InMemoryBilling

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
CATALOGUE = {"basic": TierPlan(price="basic_key"), "premium": TierPlan(price="premium_key")}


class World(InMemoryBilling):
    def __init__(self) -> None:
        super().__init__(CATALOGUE)

    def open(self, tenant: str = "t1") -> None:
        facts = TenantFacts(tenant_id=tenant, name="acme", tier="basic", occurred_at=T0)
        assert self.lifecycle().open_account(facts).result is Result.APPLIED

    def change(self, at: datetime, tenant: str = "t1", **fields: object) -> TenantFacts:
        return TenantFacts(tenant_id=tenant, occurred_at=at, **fields)  # type: ignore[arg-type]


@pytest.fixture
def world() -> World:
    world = World()
    world.open()
    world.publisher.events.clear()
    return world


def test_a_change_for_a_tenant_without_an_account_is_unknown_and_writes_nothing(world: World) -> None:
    writes = world.store.writes

    with pytest.raises(UnknownTenant):
        world.lifecycle().update_account(world.change(T0, tenant="nobody", tier="premium"), must_exist=True)

    assert world.store.writes == writes
    assert "nobody" not in world.store.items


def test_a_tier_change_invoiced_at_once_answers_with_its_invoice(world: World) -> None:
    world.stripe.invoice_changes = True

    outcome = world.lifecycle().update_account(world.change(T0 + timedelta(hours=1), tier="premium"))

    assert (outcome.result, outcome.tier) == (Result.APPLIED, "premium")
    assert outcome.invoice is not None
    assert outcome.invoice.status == "paid"
    assert outcome.account is not None
    assert outcome.account.plan_invoice_id == outcome.invoice.invoice_id


def test_an_invoice_an_earlier_change_made_is_not_reported_as_this_ones(world: World) -> None:
    world.stripe.invoice_changes = True
    world.lifecycle().update_account(world.change(T0 + timedelta(hours=1), tier="premium"))
    world.stripe.invoice_changes = False  # this change makes no invoice; Stripe's latest is the earlier one

    outcome = world.lifecycle().update_account(world.change(T0 + timedelta(hours=2), tier="basic"))

    assert (outcome.result, outcome.tier) == (Result.APPLIED, "basic")
    assert outcome.invoice is None


def test_a_proration_date_goes_with_the_tier_to_stripe(world: World) -> None:
    at = T0 + timedelta(minutes=30)

    world.lifecycle().update_account(world.change(T0 + timedelta(hours=1), tier="premium", proration_date=at))

    [change] = world.stripe.plan_changes
    assert change.proration_date == at


def test_a_failed_payment_leaves_the_plan_and_reports_payment_required(world: World) -> None:
    world.stripe.invoice_changes = world.stripe.payments_fail = True

    outcome = world.lifecycle().update_account(world.change(T0 + timedelta(hours=1), tier="premium"))

    assert (outcome.result, outcome.tier) == (Result.PAYMENT_REQUIRED, "basic")
    assert outcome.invoice is not None
    assert outcome.invoice.hosted_invoice_url
    account = world.store.items["t1"]
    assert account.applied_tier == "basic"
    assert account.pending_plan is not None
    assert account.pending_plan.tier == "premium"
    assert account.lease is None
    assert not account.needs_driving()
    [failure] = world.publisher.of_type(BILLING_FAILURE)
    assert failure["reason"].startswith("payment_required")  # type: ignore[union-attr]
    assert (failure["tier"], failure["invoiceId"]) == ("premium", outcome.invoice.invoice_id)
    assert world.publisher.of_type(BILLING_SUCCESS) == []


def test_a_change_waiting_for_payment_is_not_tried_again_by_later_drives(world: World) -> None:
    world.stripe.invoice_changes = world.stripe.payments_fail = True
    world.lifecycle().update_account(world.change(T0 + timedelta(hours=1), tier="premium"))

    outcome = world.lifecycle().update_account(world.change(T0 + timedelta(hours=2), email="new@acme.test"))

    assert outcome.result is Result.APPLIED
    assert len(world.stripe.plan_changes) == 1
    assert world.stripe.writes("update_customer") == 1
    assert world.store.items["t1"].applied_tier == "basic"


def test_once_the_invoice_is_paid_the_next_drive_follows_stripe(world: World) -> None:
    world.stripe.invoice_changes = world.stripe.payments_fail = True
    world.lifecycle().update_account(world.change(T0 + timedelta(hours=1), tier="premium"))
    subscription_id = world.store.items["t1"].subscription_id
    assert subscription_id is not None
    world.stripe.pay_latest_invoice(subscription_id)

    outcome = world.lifecycle().update_account(world.change(T0 + timedelta(hours=2), email="new@acme.test"))

    account = world.store.items["t1"]
    assert (outcome.tier, account.applied_tier, account.pending_plan) == ("premium", "premium", None)
    assert len(world.stripe.plan_changes) == 1
    assert world.stripe.calls.count("retrieve_subscription") == 1


def test_a_new_request_for_the_same_tier_tries_the_change_again(world: World) -> None:
    world.stripe.invoice_changes = world.stripe.payments_fail = True
    world.lifecycle().update_account(world.change(T0 + timedelta(hours=1), tier="premium"))
    world.stripe.payments_fail = False

    outcome = world.lifecycle().update_account(world.change(T0 + timedelta(hours=2), tier="premium"))

    assert (outcome.result, outcome.tier) == (Result.APPLIED, "premium")
    assert len(world.stripe.plan_changes) == 2
    assert world.store.items["t1"].pending_plan is None


def test_a_change_under_a_lease_whose_holder_is_gone_is_busy_until_the_lease_expires(world: World) -> None:
    account = world.store.items["t1"]
    expires_at = world.clock.now() + timedelta(seconds=40)
    held = account.model_copy(
        update={"lease": Lease(owner="someone-else", expires_at=expires_at, working_until=world.clock.now())}
    )
    facts = world.change(T0 + timedelta(hours=1), tier="premium")
    held = held.model_copy(update={"desired": held.desired.merge(facts), "last_fact_at": facts.occurred_at})
    world.store.items["t1"] = held

    with pytest.raises(TenantBusy) as busy:
        world.lifecycle().update_account(facts, must_exist=True)

    assert busy.value.retry_after == 40


def test_a_preview_asks_stripe_for_the_very_change_at_the_given_date(world: World) -> None:
    at = T0 + timedelta(minutes=10)

    preview = world.lifecycle().preview_plan_change("t1", "premium", at)

    [change] = world.stripe.previews
    account = world.store.items["t1"]
    assert (change.subscription_id, change.base_item_id) == (
        account.subscription_id,
        account.subscription_item_id,
    )
    assert (change.base_price, change.proration_date) == ("price_premium", at)
    assert (preview.from_tier, preview.proration_date) == ("basic", at)
    assert world.stripe.plan_changes == []


def test_a_preview_needs_an_open_account(world: World) -> None:
    world.lifecycle().update_account(world.change(T0, tenant="t2", tier="basic"))

    with pytest.raises(NotBillable):
        world.lifecycle().preview_plan_change("t2", "premium", T0)
    with pytest.raises(UnknownTenant):
        world.lifecycle().preview_plan_change("nobody", "premium", T0)
