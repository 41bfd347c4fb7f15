"""Usage that Stripe would drop is not lost: meter error reports, meter checks, record identity and value
bounds, with in-memory doubles."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sbt_billing.bootstrap.settings import Settings
from sbt_billing.domain.catalogue import TierPlan, UsageMeter
from sbt_billing.domain.errors import InvalidEvent, SettingsError
from sbt_billing.domain.meter_errors import MeterErrorReport, MeterErrors, MeterErrorSample
from sbt_billing.domain.models import TenantFacts
from sbt_billing.domain.published import BILLING_FAILURE
from sbt_billing.domain.usage import RawUsage
from sbt_billing.domain.usage_values import MeterStatus
from sbt_billing.entrypoints.sbt_inbound import parse
from sbt_billing.entrypoints.sbt_usage_events import UsageEvent, usage_records
from sbt_billing.entrypoints.stripe_events import ThinEvent, thin_event

from tests.support.doubles import FixedClock, InMemoryBilling

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
CATALOGUE = {"basic": TierPlan(price="basic_key")}
METERS = {
    "api_calls": UsageMeter(event_name="sbt_api_calls", integer=True, max_value=Decimal(1_000_000)),
    "storage_gb_hours": UsageMeter(event_name="sbt_storage"),
}


class World(InMemoryBilling):
    def __init__(self) -> None:
        super().__init__(CATALOGUE, METERS, FixedClock(T0), seats_and_usage=True)

    def open(self, tenant_id: str = "t1") -> None:
        self.lifecycle().open_account(
            TenantFacts(tenant_id=tenant_id, name="acme", tier="basic", occurred_at=T0)
        )

    def send(self, tenant_id: str, *values: int, name: str = "api_calls") -> list[str]:
        records = [
            RawUsage(name=name, value=Decimal(v), timestamp=T0, record_id=f"{tenant_id}-{i}")
            for i, v in enumerate(values)
        ]
        outcome = self.usage.ingest(tenant_id, records)
        assert outcome.sent == len(values)
        return sorted(self.outbox.records)


@pytest.fixture
def world() -> World:
    return World()


def failures(world: World) -> list[dict[str, object]]:
    return world.publisher.of_type(BILLING_FAILURE)


# -- Stripe's meter error reports ----------------------------------------------------------------


def _report(*samples: tuple[str, str], error_count: int | None = None) -> MeterErrorReport:
    return MeterErrorReport(
        event_id="evt_test_1",
        meter_id="mtr_1",
        error_count=len(samples) if error_count is None else error_count,
        samples=tuple(MeterErrorSample(code=code, identifier=identifier) for code, identifier in samples),
    )


def test_a_meter_error_report_rejects_the_records_it_names_and_tells_each_tenant_once(world: World) -> None:
    # Given usage of two tenants that Stripe took (the stream answered) and then dropped
    world.open("t1")
    world.open("t2")
    t1 = [i for i in world.send("t1", 5, 6) if world.outbox.find(i).tenant_id == "t1"]  # type: ignore[union-attr]
    t2 = [i for i in world.send("t2", 7) if world.outbox.find(i).tenant_id == "t2"]  # type: ignore[union-attr]
    # When the report names them (and one identifier that is not ours), and counts 10 errors in all
    report = _report(
        ("archived_meter", t1[0]),
        ("archived_meter", t1[1]),
        ("meter_event_customer_not_found", t2[0]),
        ("archived_meter", "someone-elses-event"),
        error_count=10,
    )
    outcome = MeterErrors(world.outbox, world.publisher).apply(report)
    # Then those records are rejected with Stripe's code, and each tenant gets one billingFailure
    assert (outcome.rejected, outcome.unknown, outcome.unidentified) == (3, 1, 6)
    assert {world.outbox.state(i)[0] for i in t1 + t2} == {"rejected"}
    assert "archived_meter" in str(world.outbox.state(t1[0])[1])
    sent = {str(f["tenantId"]): f for f in failures(world)}
    assert set(sent) == {"t1", "t2"}
    assert sent["t1"]["operation"] == "ingest_usage"
    assert "(and 1 more records)" in str(sent["t1"]["reason"])
    assert "meter_event_customer_not_found" in str(sent["t2"]["reason"])


def test_a_report_delivered_twice_changes_nothing_the_second_time(world: World) -> None:
    world.open()
    [identifier] = world.send("t1", 5)
    errors = MeterErrors(world.outbox, world.publisher)
    errors.apply(_report(("archived_meter", identifier)))

    again = errors.apply(_report(("archived_meter", identifier)))

    assert (again.rejected, again.already) == (0, 1)
    assert len(failures(world)) == 1


def test_a_thin_delivery_is_told_from_a_snapshot_event() -> None:
    thin = {
        "id": "evt_test_65R",
        "object": "v2.core.event",
        "type": "v1.billing.meter.error_report_triggered",
        "livemode": False,
        "created": "2026-11-24T12:00:00.000Z",
        "related_object": {"id": "mtr_1", "type": "billing.meter", "url": "/v1/billing/meters/mtr_1"},
    }
    assert thin_event(json.dumps(thin).encode()) == ThinEvent(
        event_id="evt_test_65R", type=thin["type"], livemode=False, related_id="mtr_1"
    )
    assert thin_event(json.dumps({"id": "evt_1", "object": "event", "type": "invoice.paid"}).encode()) is None
    assert thin_event(b"not json") is None
    with pytest.raises(InvalidEvent):
        thin_event(json.dumps({"object": "v2.core.event"}).encode())


# -- meters checked before usage goes out --------------------------------------------------------


@pytest.mark.parametrize("state", [MeterStatus.INACTIVE, MeterStatus.MISSING, MeterStatus.MISCONFIGURED])
def test_usage_for_an_unusable_meter_stays_pending_and_is_reported(world: World, state: MeterStatus) -> None:
    # Given a meter that Stripe would accept events for and then drop them
    world.open()
    world.stripe.meters["sbt_api_calls"] = state
    # When usage for it arrives
    outcome = world.usage.ingest("t1", [RawUsage(name="api_calls", value=Decimal(3), timestamp=T0)])
    # Then nothing is sent, the record stays pending, and the configuration error is reported
    assert (outcome.new, outcome.sent) == (1, 0)
    assert world.stripe.meter_events == {}
    assert world.outbox.states() == {"pending": 1}
    [failure] = failures(world)
    assert f"sbt_api_calls ({state.value})" in str(failure["reason"])
    assert world.usage.unavailable == {"sbt_api_calls": state}
    # And once the meter is fixed, the scheduled flush sends it
    world.stripe.meters.clear()
    assert world.usage.flush_all() == 1


def test_a_usable_meter_does_not_hold_back_another_meters_usage(world: World) -> None:
    world.open()
    world.stripe.meters["sbt_storage"] = MeterStatus.INACTIVE
    outcome = world.usage.ingest(
        "t1",
        [
            RawUsage(name="api_calls", value=Decimal(3), timestamp=T0),
            RawUsage(name="storage_gb_hours", value=Decimal("0.5"), timestamp=T0),
        ],
    )
    assert outcome.sent == 1
    assert [e.event_name for e in world.stripe.meter_events.values()] == ["sbt_api_calls"]


# -- one instant, one record ---------------------------------------------------------------------


def test_one_instant_written_with_two_offsets_is_one_record(world: World) -> None:
    world.open()
    utc = datetime(2026, 11, 24, 4, 27, 33, tzinfo=UTC)
    paris = utc.astimezone(timezone(timedelta(hours=2)))

    first = world.usage.ingest("t1", [RawUsage(name="api_calls", value=Decimal(9), timestamp=utc)])
    second = world.usage.ingest("t1", [RawUsage(name="api_calls", value=Decimal(9), timestamp=paris)])

    assert (first.new, second.new) == (1, 0)
    assert len(world.stripe.meter_events) == 1


# -- bounded values ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("storage_gb_hours", Decimal("1e400"), "digits"),
        ("storage_gb_hours", Decimal("1234567890123456"), "digits"),
        ("storage_gb_hours", Decimal("0.0000000000000001"), "digits"),
        ("storage_gb_hours", Decimal(-1), "at least 0"),
        ("api_calls", Decimal("2.5"), "whole number"),
        ("api_calls", Decimal(1_000_001), "maximum of 1000000"),
    ],
)
def test_values_stripe_would_drop_or_the_meter_refuses_are_rejected_cleanly(
    world: World, name: str, value: Decimal, problem: str
) -> None:
    world.open()

    outcome = world.usage.ingest("t1", [RawUsage(name=name, value=value, timestamp=T0)])

    assert outcome.accepted == 0
    assert outcome.rejected[0].reason.startswith("usage[0].value: ")
    assert problem in outcome.rejected[0].reason
    assert failures(world)[0]["operation"] == "ingest_usage"
    assert world.stripe.meter_events == {}


@pytest.mark.parametrize(
    ("name", "value", "sent"),
    [
        ("storage_gb_hours", Decimal("0.25"), "0.25"),
        ("storage_gb_hours", Decimal("999999999999999"), "999999999999999"),
        ("api_calls", Decimal("1000000.000"), "1000000"),
        ("api_calls", Decimal("-0"), "0"),
    ],
)
def test_values_within_the_bounds_go_out_as_plain_numbers(
    world: World, name: str, value: Decimal, sent: str
) -> None:
    world.open()
    world.usage.ingest("t1", [RawUsage(name=name, value=value, timestamp=T0)])
    [event] = world.stripe.meter_events.values()
    assert event.value == sent


def _usage_event(value: object) -> dict[str, object]:
    return {
        "version": "0",
        "id": "e-1",
        "detail-type": "sbt_aws_ingestUsage",
        "source": "sbt.application.plane",
        "account": "123456789012",
        "time": T0.isoformat(),
        "region": "us-east-1",
        "resources": [],
        "detail": {"tenantId": "t1", "usage": [{"name": "storage_gb_hours", "value": value}]},
    }


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", float("inf"), float("nan")])
def test_a_non_finite_value_refuses_the_event_at_the_door(value: object) -> None:
    with pytest.raises(InvalidEvent) as refused:
        usage_records(parse(UsageEvent, _usage_event(value)))
    assert refused.value.field == "detail.usage.0.value"


@pytest.mark.parametrize("value", ["1e400", 1e308, "12345678901234567890"])
def test_a_huge_value_in_an_event_is_refused_with_a_reason(world: World, value: object) -> None:
    # Given an ingestUsage event whose value has more digits than Stripe keeps
    world.open()
    # When it is parsed and ingested
    outcome = world.usage.ingest("t1", usage_records(parse(UsageEvent, _usage_event(value))))
    # Then the record is refused with a reason, and nothing reaches Stripe
    assert outcome.accepted == 0
    assert "digits" in outcome.rejected[0].reason
    assert world.stripe.meter_events == {}


def test_usage_meters_take_max_value_and_integer_from_the_environment() -> None:
    base = {
        "ACCOUNTS_TABLE": "a",
        "IDEMPOTENCY_TABLE": "i",
        "EVENT_BUS_NAME": "b",
        "TIER_CATALOGUE": '{"basic": "price_1"}',
    }
    meters = '{"api_calls": {"event_name": "sbt_api_calls", "max_value": 1000, "integer": true}}'
    config = Settings.from_environment({**base, "USAGE_METERS": meters})
    assert config.usage_meters["api_calls"] == UsageMeter(
        event_name="sbt_api_calls", max_value=Decimal(1000), integer=True
    )
    assert (
        Settings.from_environment({**base, "USAGE_METERS": '{"a": "b"}'}).usage_meters["a"].integer is False
    )
    with pytest.raises(SettingsError, match=r"USAGE_METERS: a\.max_value"):
        Settings.from_environment({**base, "USAGE_METERS": '{"a": {"event_name": "b", "max_value": 0}}'})
