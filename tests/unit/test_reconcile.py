"""Reconciling with in-memory doubles: the pass's paging and resumption, the replay's order, and the
rules of what differs and which side the facts take."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sbt_billing.domain.catalogue import TierPlan
from sbt_billing.domain.drift import (
    DriftAction,
    DriftKind,
    ObservedItem,
    ObservedSubscription,
    compare,
)
from sbt_billing.domain.errors import RevisionConflict
from sbt_billing.domain.event_replay import Replayed, replay_page, replay_windows
from sbt_billing.domain.models import Account, AccountStatus, Lease, PendingPlan, StripeStamp, TenantFacts
from sbt_billing.domain.reconcile import Reconciler
from sbt_billing.domain.reconcile_state import (
    EventWindow,
    PassState,
    Phase,
    ReconcileReport,
    Tally,
    WindowKind,
)
from sbt_billing.domain.stripe_events import StripeEvent
from sbt_billing.domain.values import AccountRef, Page

from tests.support.doubles import FakeSubscription, FixedClock, InMemoryBilling

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
CATALOGUE = {
    "basic": TierPlan(price="basic_key"),
    "premium": TierPlan(price="premium_key", seat_price="seat_key"),
}


# --- Doubles -------------------------------------------------------------------------------------------------


class FakeListings:
    """Stripe's lists, 100 a page, newest first, each request counted."""

    def __init__(self) -> None:
        self.subs: list[ObservedSubscription] = []  # oldest first
        self.stripe_events: list[dict[str, Any]] = []  # oldest first
        self.requests: list[str] = []

    def subscriptions(self, after: str | None) -> Page[ObservedSubscription]:
        self.requests.append("subscriptions")
        newest_first = self.subs[::-1]
        start = 0 if after is None else [s.subscription_id for s in newest_first].index(after) + 1
        page = newest_first[start : start + 100]
        return Page(tuple(page), start + 100 < len(newest_first))

    def observe_subscription(self, subscription_id: str) -> ObservedSubscription | None:
        self.requests.append("subscription")
        return next((s for s in self.subs if s.subscription_id == subscription_id), None)

    def events(
        self, window: EventWindow, after: str | None = None, before: str | None = None
    ) -> Page[Mapping[str, Any]]:
        self.requests.append("events")
        since, until = int(window.since.timestamp()), int(window.until.timestamp())
        kept = [e for e in self.stripe_events[::-1] if since <= e["created"] <= until]
        ids = [e["id"] for e in kept]
        if before is not None:
            end = ids.index(before)
            return Page(tuple(kept[max(0, end - 100) : end]), end - 100 > 0)
        start = 0 if after is None else ids.index(after) + 1
        return Page(tuple(kept[start : start + 100]), start + 100 < len(kept))


class InMemoryReconcileStore:
    def __init__(self) -> None:
        self.state: PassState | None = None
        self.pages: dict[tuple[str, int], list[str]] = {}
        self.mark: StripeStamp | None = None

    def load_pass(self) -> PassState | None:
        return self.state

    def save_pass(self, state: PassState, expected_revision: int | None) -> PassState:
        current = self.state.revision if self.state else None
        if current != expected_revision:
            raise RevisionConflict(None)
        self.state = state.model_copy(
            update={"revision": 0 if expected_revision is None else expected_revision + 1}
        )
        return self.state

    def add_seen(self, pass_id: str, page: int, subscription_ids: Sequence[str]) -> None:
        self.pages[(pass_id, page)] = list(subscription_ids)

    def seen(self, pass_id: str, pages: int) -> set[str]:
        return {sid for page in range(1, pages + 1) for sid in self.pages.get((pass_id, page), [])}

    def applied_mark(self) -> StripeStamp | None:
        return self.mark

    def advance_applied_mark(self, stamp: StripeStamp) -> None:
        if self.mark is None or stamp.at > self.mark.at:
            self.mark = stamp


class Directory:
    def __init__(self, world: InMemoryBilling) -> None:
        self.store = world.store

    def get_many(self, tenant_ids: Sequence[str]) -> dict[str, Account]:
        return {t: self.store.items[t] for t in tenant_ids if t in self.store.items}

    def refs(self, after: str | None, limit: int) -> Page[AccountRef]:
        ordered = sorted(self.store.items)
        start = 0 if after is None else ordered.index(after) + 1
        accounts = [self.store.items[t] for t in ordered[start : start + limit]]
        refs = tuple(
            AccountRef(tenant_id=a.tenant_id, status=a.status, subscription_id=a.subscription_id)
            for a in accounts
        )
        return Page(refs, start + limit < len(ordered))


class TickingClock(FixedClock):
    """Time moves a second each time it is read (a run's work takes time)."""

    def now(self) -> datetime:
        self.at += timedelta(seconds=1)
        return self.at


class World(InMemoryBilling):
    def __init__(self) -> None:
        super().__init__(CATALOGUE, clock=TickingClock(T0))
        self.listings = FakeListings()
        self.reconcile_store = InMemoryReconcileStore()
        self.applied: list[str] = []
        self.directory = Directory(self)
        self._sub_ids = itertools.count()

    def apply(self, event: StripeEvent) -> Replayed:
        self.applied.append(event.id)
        return Replayed.APPLIED

    def reconciler(self, owner: str = "run-1") -> Reconciler:
        return Reconciler(
            store=self.reconcile_store,
            listings=self.listings,
            accounts=self.directory,
            lifecycle=self.lifecycle(owner=owner),
            apply_event=self.apply,
            publisher=self.publisher,
            clock=self.clock,
            catalogue=CATALOGUE,
            owner=owner,
        )

    def open_account(self, tenant: str, tier: str = "basic", price: str = "price_basic") -> Account:
        """An account opened on `tier`, and its subscription as Stripe lists it."""
        n = next(self._sub_ids)
        desired = Account(tenant_id=tenant).desired.merge(
            TenantFacts(tenant_id=tenant, tier=tier, occurred_at=T0)
        )
        account = Account(
            tenant_id=tenant,
            status=AccountStatus.OPEN,
            desired=desired,
            customer_id=f"cus_{n}",
            subscription_id=f"sub_{n}",
            subscription_item_id=f"si_{n}",
            subscription_status="active",
            price_id=price,
            applied_tier=tier,
            applied_details_digest=desired.details().digest(),
        )
        self.store.save(account, expected_revision=None)
        self.listings.subs.append(observed(account, price=price))
        return self.store.items[tenant]


def observed(account: Account, price: str = "price_basic", **changes: Any) -> ObservedSubscription:
    assert account.subscription_id is not None
    assert account.customer_id is not None
    return ObservedSubscription(
        subscription_id=account.subscription_id,
        customer_id=account.customer_id,
        tenant=account.tenant_id,
        status="active",
        items=(
            ObservedItem(
                item_id=account.subscription_item_id or "si",
                price_id=price,
                lookup_key=price.replace("price_", "") + "_key",
                quantity=1,
            ),
        ),
    ).model_copy(update=changes)


@pytest.fixture
def world() -> World:
    return World()


def far() -> datetime:
    return T0 + timedelta(days=365)


# --- The pass ------------------------------------------------------------------------------------------------


def test_a_pass_over_a_thousand_accounts_reads_stripe_a_hundred_subscriptions_a_request(world: World) -> None:
    # Given a thousand open accounts in step with Stripe
    for n in range(1000):
        world.open_account(f"t{n:04d}")

    # When one run reconciles them
    run = world.reconciler().run(deadline=far())

    # Then it completes in 10 subscription pages, 2 event requests (one per replay window) and nothing
    # account by account: N/100 + 2; every account checked, no drift, no write to Stripe
    assert run.complete
    assert world.listings.requests.count("subscriptions") == 10
    assert world.listings.requests.count("events") == 2
    assert "subscription" not in world.listings.requests
    assert run.counts["stripe_requests"] == len(world.listings.requests) == 12
    assert run.counts["accounts_checked"] == 1000
    assert not any(name.startswith("drift:") for name in run.counts)
    assert world.stripe.writes() == 0


def test_a_pass_that_runs_out_of_time_continues_where_it_stopped_and_checks_each_account_once(
    world: World,
) -> None:
    # Given 350 accounts and invocations that each have time for about one page
    for n in range(350):
        world.open_account(f"t{n:04d}")
    runs = []

    # When invocations run until the pass is complete
    for invocation in range(10):
        deadline = world.clock.at + timedelta(seconds=150)
        runs.append(world.reconciler(owner=f"run-{invocation}").run(deadline=deadline))
        if runs[-1].complete:
            break

    # Then it took several, which together listed and checked each account exactly once
    assert len(runs) > 2
    report = runs[-1].report
    assert report is not None
    assert report.complete
    assert report.invocations == len(runs)
    assert report.count("subscriptions_listed") == 350
    assert report.count("accounts_checked") == 350
    assert world.listings.requests.count("subscriptions") == 4


def test_a_pass_held_by_a_running_invocation_is_not_run_twice(world: World) -> None:
    # Given a pass another invocation is running (its claim runs until far in the future)
    world.open_account("t1")
    store = world.reconcile_store
    world.reconciler(owner="first").run(deadline=world.clock.at)  # claims, then its time is up at once
    assert store.state is not None
    store.state = store.state.model_copy(update={"owner": "first", "owner_until": far()})

    # When another invocation starts
    run = world.reconciler(owner="second").run(deadline=far())

    # Then it does nothing
    assert run.busy
    assert store.state.owner == "first"


def test_an_account_the_listing_did_not_show_is_read_on_its_own_and_a_missing_one_reported(
    world: World,
) -> None:
    # Given an account whose subscription Stripe does not list (nor has)
    account = world.open_account("t1")
    world.listings.subs.clear()

    # When a run reconciles
    run = world.reconciler().run(deadline=far())

    # Then it asked Stripe for that subscription alone, and reports it missing
    assert world.listings.requests.count("subscription") == 1
    assert run.counts["drift:subscription_missing"] == 1
    [event] = world.publisher.of_type("sbt_aws_billingDrift")
    assert event["drifts"] == [
        {"kind": "subscription_missing", "action": "reported", "account": account.subscription_id}
    ]


def test_a_price_of_another_tier_is_repaired_through_the_lifecycle(world: World) -> None:
    # Given a basic account whose subscription Stripe lists on the premium price
    account = world.open_account("t1")
    assert account.subscription_id
    assert account.subscription_item_id
    assert account.customer_id
    world.stripe.subscriptions[account.subscription_id] = FakeSubscription(
        account.subscription_id, account.subscription_item_id, account.customer_id, "price_premium"
    )
    world.listings.subs[0] = observed(account, price="price_premium")

    # When a run reconciles
    run = world.reconciler().run(deadline=far())

    # Then the lifecycle moves it back to basic in one plan change, under the tenant's lease
    assert run.counts["drift:price"] == 1
    assert world.stripe.writes("change_plan") == 1
    assert world.stripe.plan_changes[0].base_price == "price_basic"
    after = world.store.items["t1"]
    assert (after.applied_tier, after.price_id, after.lease) == ("basic", "price_basic", None)


def test_an_account_someone_is_driving_is_left_for_the_next_run(world: World) -> None:
    # Given an account whose lease another worker holds, Stripe listing it on another price
    account = world.open_account("t1")
    leased = account.model_copy(update={"lease": Lease(owner="worker", expires_at=far())})
    world.store.items["t1"] = leased
    world.listings.subs[0] = observed(account, price="price_premium")

    # When a run reconciles
    run = world.reconciler().run(deadline=far())

    # Then it neither compares nor repairs it
    assert run.counts["accounts_busy"] == 1
    assert world.stripe.writes() == 0
    assert world.publisher.of_type("sbt_aws_billingDrift") == []


def test_a_live_subscription_naming_a_tenant_with_another_one_is_reported(world: World) -> None:
    account = world.open_account("t1")
    world.listings.subs.append(observed(account, subscription_id="sub_extra"))

    run = world.reconciler().run(deadline=far())

    assert run.counts["drift:extra_subscription"] == 1
    [event] = world.publisher.of_type("sbt_aws_billingDrift")
    assert event["drifts"] == [
        {
            "kind": "extra_subscription",
            "action": "reported",
            "account": account.subscription_id,
            "stripe": "sub_extra",
        }
    ]


# --- The replay ----------------------------------------------------------------------------------------------


def stripe_event(n: int, created: int) -> dict[str, Any]:
    return {
        "id": f"evt_{n:04d}",
        "object": "event",
        "type": "customer.updated",
        "created": created,
        "livemode": False,
        "data": {"object": {"id": "cus_1", "object": "customer"}},
    }


def test_a_window_longer_than_a_page_is_applied_oldest_first_each_once(world: World) -> None:
    # Given 250 missed events in a window
    base = int(T0.timestamp())
    world.listings.stripe_events = [stripe_event(n, base + n) for n in range(250)]
    window = EventWindow(kind=WindowKind.AFTER_MARK, since=T0, until=T0 + timedelta(hours=1))
    tally = Tally()

    # When the window is replayed page by page
    requests = 0
    while not window.done:
        window = replay_page(window, world.listings, world.apply, tally)
        requests += 1

    # Then every event is applied once, in the order Stripe made them, and the window knows its newest
    assert world.applied == [f"evt_{n:04d}" for n in range(250)]
    assert tally.counts["events_applied"] == 250
    assert requests == 5  # 2 pages read back to the oldest, then 3 applied forward
    assert window.newest is not None
    assert window.newest.event_id == "evt_0249"


def test_a_window_that_fits_one_page_is_one_request(world: World) -> None:
    base = int(T0.timestamp())
    world.listings.stripe_events = [stripe_event(n, base + n) for n in range(3)]
    window = EventWindow(kind=WindowKind.AFTER_MARK, since=T0, until=T0 + timedelta(hours=1))

    window = replay_page(window, world.listings, world.apply, Tally())

    assert window.done
    assert world.applied == ["evt_0000", "evt_0001", "evt_0002"]
    assert world.listings.requests == ["events"]


def test_the_replay_starts_a_little_before_the_last_event_applied_and_never_past_stripes_30_days() -> None:
    mark = StripeStamp(at=T0 - timedelta(hours=2), event_id="evt_mark")

    after_mark, undelivered = replay_windows(T0, mark, None)

    assert after_mark.since == mark.at - timedelta(minutes=10)
    assert after_mark.until == undelivered.until == T0
    assert undelivered.since == T0 - timedelta(days=30) + timedelta(hours=1)
    [oldest, _] = replay_windows(T0, StripeStamp(at=T0 - timedelta(days=90), event_id="e"), None)
    assert oldest.since == T0 - timedelta(days=30) + timedelta(hours=1)


def test_the_next_pass_looks_for_undelivered_events_from_where_the_last_replay_reached() -> None:
    reached = EventWindow(
        kind=WindowKind.UNDELIVERED, since=T0 - timedelta(days=2), until=T0 - timedelta(days=1), done=True
    )
    started = T0 - timedelta(days=1)
    previous = PassState(
        pass_id="p",
        started_at=started,
        windows=(reached,),
        phase=Phase.DONE,
        report=ReconcileReport(pass_id="p", started_at=started),
    )

    _, undelivered = replay_windows(T0, None, previous)

    assert undelivered.since == reached.until - timedelta(minutes=10)


# --- What differs, and which side the facts take -----------------------------------------------------------------


def an_account(**changes: Any) -> Account:
    desired = Account(tenant_id="t").desired.merge(TenantFacts(tenant_id="t", tier="basic", occurred_at=T0))
    return Account(
        tenant_id="t",
        status=AccountStatus.OPEN,
        desired=desired,
        customer_id="cus_1",
        subscription_id="sub_1",
        subscription_item_id="si_1",
        subscription_status="active",
        price_id="price_basic",
        applied_tier="basic",
    ).model_copy(update=changes)


def test_a_status_stripe_changed_is_recorded_not_driven() -> None:
    comparison = compare(an_account(), observed(an_account(), status="past_due"), CATALOGUE)

    assert [(d.kind, d.action) for d in comparison.drifts] == [(DriftKind.STATUS, DriftAction.RECORDED)]
    assert comparison.findings is not None
    assert comparison.findings.subscription_status == "past_due"
    assert comparison.findings.plan is None


def test_a_cancellation_someone_scheduled_is_reported_each_pass() -> None:
    comparison = compare(an_account(), observed(an_account(), cancel_at_period_end=True), CATALOGUE)

    assert [(d.kind, d.action) for d in comparison.drifts] == [
        (DriftKind.CANCELLATION_SCHEDULED, DriftAction.REPORTED)
    ]
    assert comparison.findings is None


def test_a_closed_account_whose_subscription_ends_with_its_period_is_not_drift() -> None:
    closed = an_account(
        desired=an_account().desired.close(TenantFacts(tenant_id="t", occurred_at=T0).stamp())
    )
    assert compare(closed, observed(closed, cancel_at_period_end=True), CATALOGUE).drifts == ()
    live = compare(closed, observed(closed), CATALOGUE)
    assert [(d.kind, d.action) for d in live.drifts] == [(DriftKind.NOT_CANCELED, DriftAction.REPAIRED)]
    assert live.findings is not None
    assert live.findings.still_live


def test_a_plan_change_waiting_for_its_invoice_leaves_the_old_price_in_place() -> None:
    stamp = TenantFacts(tenant_id="t", tier="premium", occurred_at=T0).stamp()
    waiting = an_account(pending_plan=PendingPlan(tier="premium", stamp=stamp))

    assert compare(waiting, observed(waiting, price="price_basic"), CATALOGUE).drifts == ()


def test_a_seat_count_off_the_user_count_is_repaired_and_the_seat_item_found_by_its_own_id() -> None:
    account = an_account(
        applied_tier="premium", price_id="price_premium", seat_item_id="si_seat", seat_price_id="price_seat"
    )
    stripe = observed(
        account,
        items=(
            ObservedItem(item_id="si_1", price_id="price_premium", lookup_key="premium_key", quantity=1),
            ObservedItem(item_id="si_seat", price_id="price_seat", lookup_key="seat_key", quantity=7),
        ),
    )

    comparison = compare(account, stripe, CATALOGUE, users=3)

    assert [(d.kind, d.action, d.account, d.stripe) for d in comparison.drifts] == [
        (DriftKind.SEATS, DriftAction.REPAIRED, "3", "7")
    ]
    assert comparison.seat_quantity == 7
    assert compare(account, stripe, CATALOGUE, users=None).drifts == ()  # a sync is on its way


def test_a_missing_seat_item_is_a_price_drift_the_lifecycle_repairs() -> None:
    account = an_account(applied_tier="premium", price_id="price_premium")
    stripe = observed(
        account,
        items=(ObservedItem(item_id="si_1", price_id="price_premium", lookup_key="premium_key", quantity=1),),
    )

    comparison = compare(account, stripe, CATALOGUE)

    assert [(d.kind, d.action) for d in comparison.drifts] == [(DriftKind.PRICE, DriftAction.REPAIRED)]
    assert comparison.findings is not None
    assert comparison.findings.plan is not None
    assert comparison.findings.plan.seat_item_id is None


def test_the_pacer_holds_requests_to_its_rate() -> None:
    from sbt_billing.adapters.pacing import Pacer

    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pacer = Pacer(10.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(21):
        pacer.acquire()

    assert pacer.requests == 21
    assert now[0] == pytest.approx(2.0)  # the first at once, then one every tenth of a second
