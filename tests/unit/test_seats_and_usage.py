"""Seats and metered usage, with in-memory doubles: coalesced quantities, usage counted once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sbt_billing.domain.catalogue import TierPlan, UsageMeter
from sbt_billing.domain.models import AccountStatus, TenantFacts
from sbt_billing.domain.published import BILLING_FAILURE
from sbt_billing.domain.usage import RawUsage

from tests.support.doubles import FixedClock, InMemoryBilling

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
CATALOGUE = {
    "basic": TierPlan(price="basic_key"),
    "premium": TierPlan(price="premium_key", seat_price="seat_key"),
}
METERS = {"api_calls": UsageMeter(event_name="sbt_api_calls", price="api_calls_key")}


class World(InMemoryBilling):
    def __init__(self) -> None:
        super().__init__(CATALOGUE, METERS, FixedClock(T0), seats_and_usage=True)

    def open(self, tier: str = "premium") -> None:
        self.lifecycle().open_account(TenantFacts(tenant_id="t1", name="acme", tier=tier, occurred_at=T0))

    def seat_quantity(self) -> int:
        [subscription] = self.stripe.subscriptions.values()
        return subscription.seat_quantity

    def run_scheduled_syncs(self) -> int:
        runs = 0
        while self.scheduler.scheduled:
            tenant = self.scheduler.scheduled.pop(0)
            self.seats.sync(tenant)
            runs += 1
        return runs


def stamp(second: int, present: bool = True) -> str:
    at = (T0 + timedelta(seconds=second)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"{at}|{0 if present else 1}"


@pytest.fixture
def world() -> World:
    return World()


def test_a_seat_tier_opens_with_a_seat_item_at_the_current_user_count(world: World) -> None:
    for n in range(3):
        world.seats.record("t1", f"u{n}", True, stamp(n))

    world.open()

    assert world.seat_quantity() == 3
    assert world.store.items["t1"].seat_item_id is not None


def test_a_burst_of_a_thousand_users_ends_at_the_exact_count_in_a_handful_of_updates(world: World) -> None:
    world.open()
    for n in range(1000):
        world.seats.record("t1", f"u{n}", True, stamp(n))
        if n % 250 == 249:  # the delayed sync fires a few times during the burst
            world.run_scheduled_syncs()
    world.run_scheduled_syncs()

    assert world.seat_quantity() == 1000
    assert world.stripe.writes("set_quantity") <= 5


def test_a_duplicate_user_event_changes_nothing(world: World) -> None:
    world.open()
    world.seats.record("t1", "u1", True, stamp(1))
    world.run_scheduled_syncs()

    outcome = world.seats.record("t1", "u1", True, stamp(1))
    world.run_scheduled_syncs()

    assert outcome.result.value == "unchanged"
    assert world.seat_quantity() == 1
    assert world.stripe.writes("set_quantity") == 1


def test_a_delete_before_its_create_leaves_the_user_out(world: World) -> None:
    world.open()
    world.seats.record("t1", "u1", False, stamp(5, present=False))
    world.seats.record("t1", "u1", True, stamp(1))
    world.run_scheduled_syncs()

    assert world.seat_quantity() == 0


def test_a_change_during_a_sync_schedules_another_so_the_last_change_is_kept(world: World) -> None:
    world.open()
    world.seats.record("t1", "u1", True, stamp(1))
    world.scheduler.scheduled.clear()
    counted = world.ledger.count

    def count_while_a_user_arrives(tenant_id: str) -> int:
        seen = counted(tenant_id)
        if seen == 1:  # the sync has counted; a second user is recorded before it finishes
            world.seats.record("t1", "u2", True, stamp(2))
        return seen

    world.ledger.count = count_while_a_user_arrives  # type: ignore[method-assign]
    outcome = world.seats.sync("t1")
    world.ledger.count = counted  # type: ignore[method-assign]

    assert outcome.quantity == 1
    assert outcome.rescheduled
    assert world.scheduler.scheduled == ["t1"], (
        "the second user's event found a sync claimed and scheduled none"
    )
    world.run_scheduled_syncs()
    assert world.seat_quantity() == 2


def test_a_user_of_a_tenant_whose_opening_stripe_refused_schedules_no_endless_syncs(world: World) -> None:
    world.stripe.refused_prices.add("price_premium")
    world.open()
    world.seats.record("t1", "u1", True, stamp(1))

    for _ in range(10):
        if not world.scheduler.scheduled:
            break
        world.seats.sync(world.scheduler.scheduled.pop(0))

    assert world.scheduler.scheduled == [], "a refused opening waits for a fact; its next generation counts"


def test_usage_is_sent_once_however_often_it_is_delivered(world: World) -> None:
    world.open()
    record = RawUsage(name="api_calls", value=Decimal(42), timestamp=T0, record_id="r-1")

    first = world.usage.ingest("t1", [record])
    second = world.usage.ingest("t1", [record])

    assert (first.new, first.sent) == (1, 1)
    assert (second.new, second.sent) == (0, 0)
    assert len(world.stripe.meter_events) == 1
    [event] = world.stripe.meter_events.values()
    assert (event.event_name, event.value) == ("sbt_api_calls", "42")


def test_ten_thousand_records_go_in_batches_of_a_hundred(world: World) -> None:
    world.open()
    records = [
        RawUsage(name="api_calls", value=Decimal(1), timestamp=T0 - timedelta(seconds=n), record_id=f"r{n}")
        for n in range(10_000)
    ]

    outcome = world.usage.ingest("t1", records)

    assert outcome.sent == 10_000
    assert world.stripe.meter_batches == [100] * 100


def test_usage_older_than_stripes_window_is_a_clear_error(world: World) -> None:
    world.open()
    old = RawUsage(name="api_calls", value=Decimal(1), timestamp=T0 - timedelta(days=36))

    outcome = world.usage.ingest("t1", [old])

    assert outcome.accepted == 0
    assert (
        outcome.rejected[0].reason
        == "usage[0].timestamp: is older than Stripe's 35-day window for meter events"
    )
    assert world.publisher.of_type(BILLING_FAILURE)[0]["operation"] == "ingest_usage"
    assert world.stripe.meter_events == {}


def test_usage_before_the_customer_exists_is_kept_and_sent_later(world: World) -> None:
    kept = world.usage.ingest("t1", [RawUsage(name="api_calls", value=Decimal(3), timestamp=T0)])
    assert (kept.new, kept.sent) == (1, 0)

    world.open()
    sent = world.usage.flush_all()

    assert sent == 1
    assert world.outbox.states() == {"sent": 1}


def test_usage_stripe_could_not_take_stays_pending_and_the_flush_sends_it(world: World) -> None:
    from sbt_billing.domain.errors import TransientBillingError

    world.open()
    world.stripe.fail_next["send_meter_events"] = TransientBillingError("503")
    with pytest.raises(TransientBillingError):
        world.usage.ingest("t1", [RawUsage(name="api_calls", value=Decimal(3), timestamp=T0)])
    assert world.outbox.states() == {"pending": 1}

    assert world.usage.flush_all() == 1
    assert len(world.stripe.meter_events) == 1


def test_offboarding_sends_pending_usage_and_the_last_seat_count_before_cancelling(world: World) -> None:
    world.open()
    world.seats.record("t1", "u1", True, stamp(1))  # scheduled, but the sync has not run yet
    world.outbox.add(
        [world.usage._record("t1", RawUsage(name="api_calls", value=Decimal(7), timestamp=T0), T0)]
    )

    world.lifecycle().close_account(TenantFacts(tenant_id="t1", occurred_at=T0 + timedelta(days=1)))

    calls = world.stripe.calls
    assert calls.index("send_meter_events") < calls.index("cancel_subscription")
    assert calls.index("set_quantity") < calls.index("cancel_subscription")
    assert world.seat_quantity() == 1
    assert world.store.items["t1"].status is AccountStatus.CLOSED


def test_a_tier_change_adds_the_seat_item_in_the_same_single_update(world: World) -> None:
    world.open(tier="basic")
    world.seats.record("t1", "u1", True, stamp(1))
    world.seats.record("t1", "u2", True, stamp(2))
    world.run_scheduled_syncs()  # basic has no seat price: nothing to set
    before = world.stripe.writes()

    world.lifecycle().update_account(
        TenantFacts(tenant_id="t1", tier="premium", occurred_at=T0 + timedelta(hours=1))
    )

    assert world.stripe.writes() - before == 1
    assert world.seat_quantity() == 2


def test_usage_arriving_after_offboarding_is_refused_with_one_report(world: World) -> None:
    world.open()
    world.lifecycle().close_account(TenantFacts(tenant_id="t1", occurred_at=T0 + timedelta(days=1)))
    late = [
        RawUsage(name="api_calls", value=Decimal(1), timestamp=T0, record_id=f"late-{n}") for n in range(3)
    ]

    outcome = world.usage.ingest("t1", late)

    assert outcome.sent == 0
    assert world.outbox.states() == {"rejected": 3}
    [failure] = [e for e in world.publisher.of_type(BILLING_FAILURE) if e["operation"] == "ingest_usage"]
    assert str(failure["reason"]).endswith(
        "(and 2 more records): the tenant was offboarded before this usage could be billed"
    )
