"""Ordering: any interleaving of SBT's onboarding request, the provisioning job's success or failure,
detail updates, tier changes, users, usage and offboarding for a few tenants (duplicates included),
with billing opening at either point SBT allows (OpenAccountOn), ends, once the seat syncs have run,
in the state the latest facts describe. In-memory doubles, wired as tests/unit/test_seats_and_usage.py
wires them."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule
from sbt_billing.domain.billing_policy import OpenOn
from sbt_billing.domain.catalogue import TierPlan, UsageMeter
from sbt_billing.domain.lifecycle import Lifecycle
from sbt_billing.domain.models import AccountStatus, Facts, TenantFacts
from sbt_billing.domain.onboarding import Onboarding
from sbt_billing.domain.usage import RawUsage

from tests.support.doubles import FixedClock, InMemoryBilling

pytestmark = pytest.mark.reliability

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
CATALOGUE = {
    "basic": TierPlan(price="basic_key"),
    "premium": TierPlan(price="premium_key", seat_price="seat_key"),
}
PRICES = {"basic": "price_basic", "premium": "price_premium"}
METERS = {"api_calls": UsageMeter(event_name="sbt_api_calls", price="api_calls_key")}
TENANTS = ("t1", "t2", "t3")
USERS = ("u1", "u2", "u3")

tenants = st.sampled_from(TENANTS)
seconds = st.integers(min_value=0, max_value=3_000)  # when the fact happened, unrelated to delivery order
emails = st.sampled_from(["a@t1.test", "b@t1.test", "c@t1.test"])
tiers = st.sampled_from(sorted(CATALOGUE))


@dataclass
class Expected:
    """What the facts delivered so far say about one tenant."""

    onboarding: TenantFacts  # SBT's onboarding request: name, email, tier, with the registration
    provision: Facts  # what the provisioning job reports, by registration only: its name, no tier
    fails: bool  # the provisioning job fails for this tenant
    onboarded: bool = False
    provisioned: bool = False
    deleted: bool = False
    emails: list[tuple[datetime, str]] = field(default_factory=list)
    tiers: list[tuple[datetime, str]] = field(default_factory=list)
    users: dict[str, tuple[datetime, bool]] = field(default_factory=dict)
    usage: set[str] = field(default_factory=set)

    def latest_email(self) -> str | None:
        return max(self.emails)[1] if self.emails else None

    def latest_tier(self) -> str:
        return max(self.tiers)[1]

    def seats(self) -> int:
        return sum(1 for _, present in self.users.values() if present)


class LifecycleInterleavings(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.billing = InMemoryBilling(
            CATALOGUE, METERS, FixedClock(T0 + timedelta(hours=2)), seats_and_usage=True
        )
        self.store, self.stripe, self.publisher = (
            self.billing.store,
            self.billing.stripe,
            self.billing.publisher,
        )
        self.ledger, self.scheduler, self.outbox = (
            self.billing.ledger,
            self.billing.scheduler,
            self.billing.outbox,
        )
        self.clock, self.seats, self.usage = self.billing.clock, self.billing.seats, self.billing.usage
        self.expected: dict[str, Expected] = {}
        self.sequence = itertools.count(1)

    def at(self, second: int) -> datetime:
        """A unique time: facts never tie, so "the latest" is well defined."""
        return T0 + timedelta(seconds=second, microseconds=next(self.sequence))

    def lifecycle(self) -> Lifecycle:
        return self.billing.lifecycle()

    @initialize(
        open_on=st.sampled_from(OpenOn),
        onboardings=st.tuples(*(st.tuples(seconds, emails, tiers, st.booleans()) for _ in TENANTS)),
    )
    def tenants_to_be(self, open_on: OpenOn, onboardings: tuple[tuple[int, str, str, bool], ...]) -> None:
        self.open_on = open_on
        for n, (tenant, (second, email, tier, fails)) in enumerate(zip(TENANTS, onboardings, strict=True)):
            onboarding = TenantFacts(
                tenant_id=tenant, name=tenant, email=email, tier=tier, occurred_at=self.at(second)
            )
            provision = Facts(
                name=tenant,
                occurred_at=self.at(second + 60),
                open_requested=not (fails and n == 0),
                provisioning_failed=fails and n == 0,  # only the first tenant's job may fail
            )
            self.expected[tenant] = Expected(
                onboarding=onboarding, provision=provision, fails=fails and n == 0
            )

    def onboarding(self) -> Onboarding:
        return Onboarding(self.lifecycle(), self.billing.registrations, self.open_on)

    @rule(tenant=tenants)
    def onboard(self, tenant: str) -> None:
        """SBT's onboarding request (again, if it was delivered before)."""
        expected = self.expected[tenant]
        self.onboarding().request(expected.onboarding, f"reg-{tenant}")
        if not expected.onboarded:
            expected.onboarded = True
            expected.emails.append((expected.onboarding.occurred_at, str(expected.onboarding.email)))
            expected.tiers.append((expected.onboarding.occurred_at, str(expected.onboarding.tier)))

    @rule(tenant=tenants)
    def provision(self, tenant: str) -> None:
        """The provisioning job's one success or failure, naming the registration only (again, too)."""
        expected = self.expected[tenant]
        self.onboarding().report(expected.provision, None, f"reg-{tenant}")
        expected.provisioned = True

    @rule(tenant=tenants, second=seconds, email=emails)
    def update_details(self, tenant: str, second: int, email: str) -> None:
        at = self.at(second)
        self.lifecycle().update_account(TenantFacts(tenant_id=tenant, email=email, occurred_at=at))
        self.expected[tenant].emails.append((at, email))

    @rule(tenant=tenants, second=seconds, tier=tiers)
    def change_tier(self, tenant: str, second: int, tier: str) -> None:
        at = self.at(second)
        self.lifecycle().update_account(TenantFacts(tenant_id=tenant, tier=tier, occurred_at=at))
        self.expected[tenant].tiers.append((at, tier))

    @rule(tenant=tenants, user=st.sampled_from(USERS), second=seconds, present=st.booleans())
    def user(self, tenant: str, user: str, second: int, present: bool) -> None:
        at = self.at(second)
        stamp = f"{at.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}|{0 if present else 1}"
        self.seats.record(tenant, user, present, stamp)
        users = self.expected[tenant].users
        if user not in users or users[user][0] < at:
            users[user] = (at, present)

    @rule(tenant=tenants, record=st.integers(min_value=0, max_value=4))
    def report_usage(self, tenant: str, record: int) -> None:
        raw = RawUsage(name="api_calls", value=Decimal(record + 1), timestamp=T0, record_id=f"r{record}")
        self.usage.ingest(tenant, [raw])
        if not self.expected[tenant].deleted:
            self.expected[tenant].usage.add(f"r{record}")

    @rule(tenant=tenants, second=seconds)
    def offboard(self, tenant: str, second: int) -> None:
        self.lifecycle().close_account(TenantFacts(tenant_id=tenant, occurred_at=self.at(second)))
        self.expected[tenant].deleted = True

    @rule()
    def seat_syncs_run(self) -> None:
        self.drain_seat_syncs()

    def drain_seat_syncs(self) -> None:
        for _ in range(100):
            if not self.scheduler.scheduled:
                return
            self.seats.sync(self.scheduler.scheduled.pop(0))
        raise AssertionError("the seat syncs keep rescheduling themselves")

    def teardown(self) -> None:
        # In the end every event arrives: what the steps did not deliver comes last, in either order.
        for tenant, expected in self.expected.items():
            if not expected.onboarded:
                self.onboard(tenant)
            if not expected.provisioned:
                self.provision(tenant)
        self.drain_seat_syncs()
        self.usage.flush_all()
        sent = sum(self.stripe.meter_batches)
        assert sent == len(self.stripe.meter_events), "a usage record was sent twice"
        for tenant, expected in self.expected.items():
            self.check(tenant, expected)

    def check(self, tenant: str, expected: Expected) -> None:
        account = self.store.items.get(tenant)
        customers = [c for c in self.stripe.customers.values() if c.tenant_id == tenant]
        owned = {c.id for c in customers}
        subs = [s for s in self.stripe.subscriptions.values() if s.customer_id in owned]
        assert len(customers) <= 1, f"{tenant}: {len(customers)} customers"
        assert len(subs) <= 1, f"{tenant}: {len(subs)} subscriptions"
        if expected.fails and expected.provisioned and expected.onboarded:
            # The job failed: closed, and whatever was opened is cancelled without charging the tenant.
            assert account is not None
            assert account.status is AccountStatus.CLOSED
            assert all(s.status == "canceled" for s in subs), f"{tenant}: closed with a live subscription"
            if not expected.deleted or account.desired.provisioning_failed is not None:
                assert all(s.unbilled for s in subs), f"{tenant}: charged for a failed provisioning"
            return
        if expected.deleted:
            assert account is not None
            assert account.status is AccountStatus.CLOSED
            assert all(s.status == "canceled" for s in subs), f"{tenant}: closed with a live subscription"
            assert all(c.offboarded or c.deleted for c in customers)
            return
        opens = expected.onboarded and (expected.provisioned or self.open_on is OpenOn.ONBOARDING_REQUEST)
        if expected.fails and not (expected.provisioned and expected.onboarded):
            opens = expected.onboarded and self.open_on is OpenOn.ONBOARDING_REQUEST
        if not opens:
            assert customers == [], f"{tenant}: a customer before it was asked for"
            return
        assert account is not None
        assert account.status is AccountStatus.OPEN
        assert account.lease is None
        [customer], [subscription] = customers, subs
        assert customer.details.email == expected.latest_email()
        assert subscription.status == "active"
        assert subscription.price_id == PRICES[expected.latest_tier()]
        if expected.latest_tier() == "premium":
            assert subscription.seat_item_id is not None
            assert subscription.seat_quantity == expected.seats()
        else:
            assert subscription.seat_item_id is None
        counted = {
            event.identifier
            for event in self.stripe.meter_events.values()
            if event.customer_id == customer.id
        }
        assert len(counted) == len(expected.usage), f"{tenant}: usage {len(counted)} != {len(expected.usage)}"


LifecycleInterleavings.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_every_interleaving_converges_to_what_the_latest_facts_describe() -> None:
    LifecycleInterleavings.TestCase().runTest()
    print(
        "\nordering: 60 interleavings x up to 30 steps of onboarding request, provisioning success or "
        "failure (by registration), detail update, tier change, user add/remove, usage, offboarding and "
        "seat syncs over 3 tenants, opening at either OpenAccountOn -> every one converged"
    )
