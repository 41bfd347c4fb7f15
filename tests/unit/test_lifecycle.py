"""The lifecycle's rules, with in-memory doubles: exactly once, in any order, nothing orphaned."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sbt_billing.domain.catalogue import TierPlan
from sbt_billing.domain.errors import InvalidEvent, PermanentBillingError, TransientBillingError
from sbt_billing.domain.lifecycle import Lifecycle
from sbt_billing.domain.models import AccountStatus, Address, CustomerDetails, Lease, TenantFacts
from sbt_billing.domain.published import BILLING_FAILURE, BILLING_SUCCESS
from sbt_billing.domain.results import Result

from tests.support.doubles import FakeCustomer, InMemoryBilling

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
CATALOGUE = {"basic": TierPlan(price="basic_key"), "premium": TierPlan(price="premium_key")}


class World(InMemoryBilling):
    def __init__(self) -> None:
        super().__init__(CATALOGUE)

    def account(self, tenant: str = "t1"):  # type: ignore[no-untyped-def]
        return self.store.items[tenant]


def provision(at: datetime = T0, tenant: str = "t1", tier: str = "basic", **fields: object) -> TenantFacts:
    return TenantFacts(
        tenant_id=tenant, name="acme", email="ops@acme.test", tier=tier, occurred_at=at, **fields
    )  # type: ignore[arg-type]


def update(at: datetime, tenant: str = "t1", **fields: object) -> TenantFacts:
    return TenantFacts(tenant_id=tenant, occurred_at=at, **fields)  # type: ignore[arg-type]


def delete(at: datetime, tenant: str = "t1") -> TenantFacts:
    return TenantFacts(tenant_id=tenant, occurred_at=at)


@pytest.fixture
def world() -> World:
    return World()


def test_opening_creates_one_customer_and_one_subscription(world: World) -> None:
    outcome = world.lifecycle().open_account(provision())

    assert outcome.result is Result.APPLIED
    assert world.stripe.calls == ["create_customer", "create_subscription"]
    account = world.account()
    assert account.status is AccountStatus.OPEN
    assert account.customer_id
    assert account.subscription_id
    assert account.subscription_item_id
    assert account.applied_tier == "basic"
    assert account.lease is None
    assert world.publisher.of_type(BILLING_SUCCESS)[0]["customerId"] == account.customer_id


def test_opening_twice_makes_no_second_call(world: World) -> None:
    world.lifecycle().open_account(provision())

    again = world.lifecycle().open_account(provision(at=T0 + timedelta(seconds=5)))

    assert again.result is Result.UNCHANGED
    assert world.stripe.writes() == 2
    assert len(world.stripe.customers) == 1


def test_opening_uses_three_account_round_trips(world: World) -> None:
    world.lifecycle().open_account(provision())

    assert (world.store.reads, world.store.writes) == (1, 2)


def test_a_detail_update_is_one_customer_update(world: World) -> None:
    world.lifecycle().open_account(provision())

    outcome = world.lifecycle().update_account(update(T0 + timedelta(hours=1), email="new@acme.test"))

    assert outcome.result is Result.APPLIED
    assert world.stripe.calls[2:] == ["update_customer"]
    assert next(iter(world.stripe.customers.values())).details.email == "new@acme.test"


def test_a_tier_change_swaps_the_price_on_the_same_subscription(world: World) -> None:
    world.lifecycle().open_account(provision())

    world.lifecycle().update_account(update(T0 + timedelta(hours=1), tier="premium"))

    assert world.stripe.calls[2:] == ["change_plan"]
    assert [s.price_id for s in world.stripe.subscriptions.values()] == ["price_premium"]
    assert world.account().applied_tier == "premium"


def test_tier_a_then_b_then_a_again_is_three_changes(world: World) -> None:
    world.lifecycle().open_account(provision())
    for hours, tier in ((1, "premium"), (2, "basic"), (3, "premium")):
        world.lifecycle().update_account(update(T0 + timedelta(hours=hours), tier=tier))

    assert world.stripe.writes("change_plan") == 3
    assert [s.price_id for s in world.stripe.subscriptions.values()] == ["price_premium"]


def test_an_older_update_after_a_newer_one_changes_nothing(world: World) -> None:
    world.lifecycle().open_account(provision())
    world.lifecycle().update_account(update(T0 + timedelta(hours=2), email="newest@acme.test"))

    outcome = world.lifecycle().update_account(update(T0 + timedelta(hours=1), email="older@acme.test"))

    assert outcome.result is Result.UNCHANGED
    assert world.account().desired.email is not None
    assert world.account().desired.email.value == "newest@acme.test"
    assert world.stripe.writes("update_customer") == 1


def test_an_update_before_the_account_opens_is_kept_and_applied_at_opening(world: World) -> None:
    early = world.lifecycle().update_account(update(T0 + timedelta(hours=1), tier="premium"))
    assert early.result is Result.RECORDED
    assert world.stripe.writes() == 0

    world.lifecycle().open_account(provision(tier="basic"))

    assert world.stripe.calls == ["create_customer", "create_subscription"]
    assert [s.price_id for s in world.stripe.subscriptions.values()] == ["price_premium"]


def test_a_delete_before_the_create_leaves_nothing_in_stripe(world: World) -> None:
    closed = world.lifecycle().close_account(delete(T0 + timedelta(minutes=5)))
    opened = world.lifecycle().open_account(provision())

    assert closed.result is Result.APPLIED
    assert opened.result is Result.IGNORED
    assert world.stripe.writes() == 0
    assert world.account().status is AccountStatus.CLOSED


def test_closing_cancels_then_marks_the_customer(world: World) -> None:
    world.lifecycle().open_account(provision())

    outcome = world.lifecycle().close_account(delete(T0 + timedelta(days=1)))

    assert outcome.result is Result.APPLIED
    assert world.stripe.calls[2:] == ["cancel_subscription", "close_customer"]
    assert world.account().status is AccountStatus.CLOSED
    assert next(iter(world.stripe.customers.values())).offboarded


def test_a_closed_account_ignores_later_updates(world: World) -> None:
    world.lifecycle().open_account(provision())
    world.lifecycle().close_account(delete(T0 + timedelta(days=1)))

    outcome = world.lifecycle().update_account(update(T0 + timedelta(days=2), tier="premium"))

    assert outcome.result is Result.IGNORED
    assert world.stripe.writes("change_plan") == 0


def test_a_close_stripe_took_but_the_record_lost_is_sent_again_as_it_was(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.lifecycle().open_account(provision())
    save = world.store.save
    down = [True]  # the table is unreachable once Stripe has the close: nothing of it is recorded

    def unreachable_once_closed(account, expected_revision):  # type: ignore[no-untyped-def]
        if down[0] and world.stripe.writes("close_customer"):
            raise TransientBillingError("DynamoDB put_item failed: timeout")
        return save(account, expected_revision)

    monkeypatch.setattr(world.store, "save", unreachable_once_closed)
    with pytest.raises(TransientBillingError):
        world.lifecycle().close_account(delete(T0 + timedelta(days=1)))
    assert world.account().status is not AccountStatus.CLOSED
    down[0] = False
    world.clock.advance(minutes=5)  # the retry comes later: its clock is not the first attempt's

    world.lifecycle().close_account(delete(T0 + timedelta(days=1)))

    assert world.account().status is AccountStatus.CLOSED
    assert world.stripe.writes("close_customer") == 1  # the retry replayed the first close's answer
    assert world.account().closed_at == T0 + timedelta(days=1)  # when the tenant was offboarded


def test_a_transient_failure_after_the_customer_then_a_retry_makes_one_customer(world: World) -> None:
    world.stripe.fail_next["create_subscription"] = TransientBillingError("500 from Stripe")
    with pytest.raises(TransientBillingError):
        world.lifecycle().open_account(provision())
    assert world.account().lease is None, "the failed attempt hands the lease back"
    assert world.account().customer_id is not None, "and keeps what Stripe already did"

    outcome = world.lifecycle().open_account(provision())

    assert outcome.result is Result.APPLIED
    assert len(world.stripe.customers) == 1
    assert len(world.stripe.subscriptions) == 1


def test_an_opening_interrupted_beyond_the_key_window_finds_what_it_created(world: World) -> None:
    world.stripe.fail_next["create_subscription"] = TransientBillingError("timeout")
    crashed = world.lifecycle()
    with pytest.raises(TransientBillingError):
        crashed.open_account(provision())
    # The crash also lost the record of the customer; Stripe's key window has since passed.
    lost = world.account().model_copy(update={"customer_id": None})
    world.store.items["t1"] = lost
    world.stripe.replays.clear()
    world.clock.advance(hours=30)

    world.lifecycle().open_account(provision())

    assert len(world.stripe.customers) == 1
    assert len(world.stripe.subscriptions) == 1


def test_a_permanent_refusal_is_reported_and_releases_the_lease(world: World) -> None:
    world.stripe.fail_next["create_customer"] = PermanentBillingError(
        "InvalidRequestError 400: email invalid"
    )

    outcome = world.lifecycle().open_account(provision())

    assert outcome.result is Result.FAILED
    assert "email invalid" in (outcome.reason or "")
    assert world.publisher.of_type(BILLING_FAILURE) == [
        {"tenantId": "t1", "operation": "open_account", "reason": "InvalidRequestError 400: email invalid"}
    ]
    assert world.account().lease is None


def test_an_opening_stripe_refused_opens_once_a_corrected_email_arrives(world: World) -> None:
    world.stripe.refused_emails.add("ops@acme.test")
    refused = world.lifecycle().open_account(provision())
    assert refused.result is Result.FAILED
    assert world.account().opening is not None
    assert world.account().opening.refused

    outcome = world.lifecycle().update_account(update(T0 + timedelta(hours=1), email="billing@acme.test"))

    assert outcome.result is Result.APPLIED
    [customer] = world.stripe.customers.values()
    assert customer.details.email == "billing@acme.test"
    assert len(world.stripe.subscriptions) == 1
    account = world.account()
    assert (account.status, account.opening.generation, account.opening.refused) == (
        AccountStatus.OPEN,
        1,
        False,
    )
    assert "sbt-billing:t1:customer:create:g1" in world.stripe.replays
    assert world.stripe.searches == ["t1"], "the new generation looks for a customer before creating one"


def test_a_correction_merged_while_stripe_refuses_the_opening_opens_it_in_the_same_invocation(
    world: World,
) -> None:
    world.stripe.refused_emails.add("ops@acme.test")
    corrected: list[Result] = []
    world.stripe.before_next["create_customer"] = lambda: corrected.append(
        world.lifecycle(owner="other")
        .update_account(update(T0 + timedelta(minutes=1), email="billing@acme.test"))
        .result
    )

    outcome = world.lifecycle().open_account(provision())

    assert corrected == [Result.RECORDED], "the correction was left to the lease holder"
    assert outcome.result is Result.APPLIED
    [customer] = world.stripe.customers.values()
    assert customer.details.email == "billing@acme.test"
    assert world.account().lease is None


def test_a_refused_opening_sent_again_unchanged_is_refused_again_and_creates_nothing(world: World) -> None:
    world.stripe.refused_emails.add("ops@acme.test")
    world.lifecycle().open_account(provision())

    again = world.lifecycle().open_account(provision(at=T0 + timedelta(minutes=1)))

    assert again.result is Result.FAILED
    assert world.stripe.customers == {}
    assert world.account().lease is None
    assert world.account().opening.generation == 1


def test_after_a_refusal_the_next_generation_adopts_a_customer_an_earlier_attempt_made(world: World) -> None:
    # Stripe refused the create (its key was used before with other parameters), after an earlier
    # attempt under that key had made the customer: a new generation must not make a second one.
    world.stripe.customers["cus_earlier"] = FakeCustomer(
        "cus_earlier", "t1", CustomerDetails(email="old@acme.test")
    )
    world.stripe.fail_next["create_customer"] = PermanentBillingError(
        "IdempotencyError 400 idempotency_error: Keys for idempotent requests can only be used with the same "
        "parameters they were first used with"
    )
    assert world.lifecycle().open_account(provision()).result is Result.FAILED

    outcome = world.lifecycle().update_account(update(T0 + timedelta(hours=1), email="billing@acme.test"))

    assert outcome.result is Result.APPLIED
    assert list(world.stripe.customers) == ["cus_earlier"]
    assert world.account().customer_id == "cus_earlier"
    assert world.stripe.customers["cus_earlier"].details.email == "billing@acme.test", "its details follow"
    assert len(world.stripe.subscriptions) == 1


def test_a_subscription_refused_on_an_archived_price_opens_on_the_next_tier_with_the_same_customer(
    world: World,
) -> None:
    world.stripe.refused_prices.add("price_premium")
    assert world.lifecycle().open_account(provision(tier="premium")).result is Result.FAILED
    customer_id = world.account().customer_id
    assert customer_id is not None

    outcome = world.lifecycle().update_account(update(T0 + timedelta(hours=1), tier="basic"))

    assert outcome.result is Result.APPLIED
    assert list(world.stripe.customers) == [customer_id]
    assert [s.price_id for s in world.stripe.subscriptions.values()] == ["price_basic"]
    assert world.account().applied_tier == "basic"


def test_offboarding_a_refused_opening_closes_it_and_creates_nothing(world: World) -> None:
    world.stripe.refused_emails.add("ops@acme.test")
    world.lifecycle().open_account(provision())

    outcome = world.lifecycle().close_account(delete(T0 + timedelta(days=1)))

    assert outcome.result is Result.APPLIED
    assert world.account().status is AccountStatus.CLOSED
    assert world.stripe.customers == {}
    assert world.stripe.writes("create_customer") == 1, "only the refused attempt"


def test_an_unknown_tier_is_invalid_before_anything_is_written(world: World) -> None:
    with pytest.raises(InvalidEvent, match="tier"):
        world.lifecycle().open_account(provision(tier="platinum"))

    assert world.store.writes == 0
    assert world.stripe.writes() == 0


def test_facts_recorded_while_another_worker_holds_the_lease_are_applied_by_it(world: World) -> None:
    world.lifecycle().open_account(provision())
    holder = world.lifecycle(owner="holder")
    # Another worker took the lease to apply a change; meanwhile a newer fact arrives.
    leased = world.account().model_copy(
        update={"lease": Lease(owner="holder", expires_at=world.clock.now() + timedelta(minutes=2))}
    )
    world.store.items["t1"] = leased
    recorded = world.lifecycle(owner="other").update_account(update(T0 + timedelta(hours=1), tier="premium"))
    assert recorded.result is Result.RECORDED
    assert world.stripe.writes("change_plan") == 0

    # The holder finishes its own fact; before releasing it applies the one recorded meanwhile.
    holder.update_account(update(T0 + timedelta(hours=2), email="holder@acme.test"))

    assert world.stripe.writes("change_plan") == 1
    assert world.account().applied_tier == "premium"
    assert world.account().lease is None


EVENTS: dict[str, Callable[[Lifecycle], object]] = {
    "provision": lambda lc: lc.open_account(provision(address=Address(city="Springfield"))),
    "email": lambda lc: lc.update_account(update(T0 + timedelta(hours=1), email="later@acme.test")),
    "tier": lambda lc: lc.update_account(update(T0 + timedelta(hours=2), tier="premium")),
    "older_tier": lambda lc: lc.update_account(update(T0 + timedelta(minutes=30), tier="basic")),
}


@pytest.mark.parametrize("order", list(itertools.permutations(EVENTS)))
def test_every_delivery_order_of_provision_and_updates_converges(order: tuple[str, ...]) -> None:
    world = World()
    for name in order:
        EVENTS[name](world.lifecycle())

    customer = next(iter(world.stripe.customers.values()))
    assert len(world.stripe.customers) == 1
    assert len(world.stripe.subscriptions) == 1
    assert customer.details.email == "later@acme.test"
    assert [s.price_id for s in world.stripe.subscriptions.values()] == ["price_premium"]
    assert world.account().applied_tier == "premium"


@pytest.mark.parametrize("order", list(itertools.permutations([*EVENTS, "delete"])))
def test_every_delivery_order_with_a_delete_ends_closed_with_nothing_live(order: tuple[str, ...]) -> None:
    world = World()
    for name in order:
        if name == "delete":
            world.lifecycle().close_account(delete(T0 + timedelta(days=1)))
        else:
            EVENTS[name](world.lifecycle())

    assert world.account().status is AccountStatus.CLOSED
    assert all(sub.status == "canceled" for sub in world.stripe.subscriptions.values())
    assert all(customer.offboarded for customer in world.stripe.customers.values())
    assert len(world.stripe.customers) <= 1


def test_a_copy_of_a_fact_being_driven_is_in_flight_until_the_drivers_invocation_ends(world: World) -> None:
    # A driver took the lease for the opening; its invocation runs for 30 more seconds.
    world.stripe.fail_next["create_subscription"] = TransientBillingError("503")
    with pytest.raises(TransientBillingError):
        world.lifecycle(owner="driver").open_account(provision())
    ends = world.clock.now() + timedelta(seconds=30)
    world.store.items["t1"] = world.account().model_copy(
        update={
            "lease": Lease(
                owner="driver", expires_at=world.clock.now() + timedelta(seconds=120), working_until=ends
            )
        }
    )

    copy = world.lifecycle(owner="copy").open_account(provision())
    assert copy.result is Result.IN_FLIGHT  # not a failure: the driver is still at work
    world.clock.advance(seconds=31)  # the driver's invocation is over, its lease is not
    with pytest.raises(TransientBillingError, match="lease"):
        world.lifecycle(owner="copy").open_account(provision())
    world.clock.advance(seconds=90)  # the lease has expired: the retry takes over
    assert world.lifecycle(owner="copy").open_account(provision()).result is Result.APPLIED
    assert (len(world.stripe.customers), len(world.stripe.subscriptions)) == (1, 1)


def test_the_lease_records_when_the_drivers_invocation_ends(world: World) -> None:
    ends = world.clock.now() + timedelta(seconds=20)
    world.stripe.fail_next["create_subscription"] = TransientBillingError("503")
    seen: list[Lease | None] = []
    save = world.store.save

    def spy(account, expected_revision):  # type: ignore[no-untyped-def]
        seen.append(account.lease)
        return save(account, expected_revision)

    world.store.save = spy  # type: ignore[method-assign]
    with pytest.raises(TransientBillingError):
        world.lifecycle(owner="driver", working_until=ends).open_account(provision())

    taken = seen[0]
    assert taken is not None
    assert (taken.owner, taken.working_until) == ("driver", ends)
    assert taken.expires_at == world.clock.now() + timedelta(seconds=120)


def test_a_retry_that_finds_stripe_behind_under_another_lease_fails_so_the_platform_retries(
    world: World,
) -> None:
    world.stripe.fail_next["create_subscription"] = TransientBillingError("503")
    with pytest.raises(TransientBillingError):
        world.lifecycle(owner="first").open_account(provision())
    # The first attempt died before it could hand the lease back.
    world.store.items["t1"] = world.account().model_copy(
        update={"lease": Lease(owner="first", expires_at=world.clock.now() + timedelta(seconds=60))}
    )

    with pytest.raises(TransientBillingError, match="lease"):
        world.lifecycle(owner="retry").open_account(provision())
    world.clock.advance(seconds=61)
    outcome = world.lifecycle(owner="retry").open_account(provision())

    assert outcome.result is Result.APPLIED
    assert len(world.stripe.customers) == 1
    assert len(world.stripe.subscriptions) == 1
