"""Stripe's rate limits, through the real SDK against the emulator: a 429 that Stripe's SDK does not
retry is waited out by the gateway, with doubling jittered pauses, for as long as the invocation can
spare (or a fixed number of times when its end is unknown), then left to the platform."""

from __future__ import annotations

import time

import pytest
from sbt_billing.adapters.stripe_billing import StripeBillingGateway
from sbt_billing.adapters.stripe_seam import RATE_LIMIT_RESERVE_SECONDS, invocation_end
from sbt_billing.domain.billing_policy import BillingPolicy
from sbt_billing.domain.errors import TransientBillingError

from tests.support.harness import Emulator

POLICY = BillingPolicy(
    collection_mode="send_invoice",
    days_until_due=30,
    trial_days=14,
    proration_behavior="create_prorations",
    cancellation_mode="immediately",
    customer_on_delete="mark_offboarded",
)
PRICES = "GET /v1/prices"


@pytest.fixture
def emulator(emulator_url: str) -> Emulator:
    emulator = Emulator(emulator_url)
    emulator.admin("POST", "reset")
    emulator.seed_catalogue()
    emulator.admin("DELETE", "requests")
    return emulator


def gateway(emulator: Emulator, pauses: list[float], sleep: bool = False) -> StripeBillingGateway:
    def record(seconds: float) -> None:
        pauses.append(seconds)
        if sleep:
            time.sleep(seconds)

    return StripeBillingGateway(emulator.client(), POLICY, sleep=record)


def requests_to_prices(emulator: Emulator) -> list[int]:
    listed = emulator.admin("GET", "requests?route=" + PRICES.replace(" ", "%20"))["data"]
    return [int(entry["status"]) for entry in listed]


def test_a_rate_limited_call_is_waited_out_with_doubling_jittered_pauses(emulator: Emulator) -> None:
    emulator.fault(route=PRICES, status=429, count=3)
    pauses: list[float] = []

    price = gateway(emulator, pauses).price_for("sbt_basic_monthly")

    assert price.startswith("price_")
    assert requests_to_prices(emulator) == [429, 429, 429, 200]
    assert len(pauses) == 3
    for attempt, pause in enumerate(pauses):
        assert 0.25 * 2**attempt <= pause <= 0.5 * 2**attempt


def test_without_a_known_end_it_gives_up_after_four_waits(emulator: Emulator) -> None:
    emulator.fault(route=PRICES, status=429, count=10)
    pauses: list[float] = []

    with pytest.raises(TransientBillingError, match="RateLimitError 429"):
        gateway(emulator, pauses).price_for("sbt_basic_monthly")

    assert len(pauses) == 4
    assert requests_to_prices(emulator) == [429] * 5


def test_an_invocation_with_time_to_spare_waits_longer_than_four_times(emulator: Emulator) -> None:
    emulator.fault(route=PRICES, status=429, count=7)
    pauses: list[float] = []

    with invocation_end(30.0):
        price = gateway(emulator, pauses).price_for("sbt_basic_monthly")

    assert price.startswith("price_")
    assert len(pauses) == 7
    assert max(pauses) <= 2.0  # the longest single wait


def test_an_invocation_near_its_end_gives_up_before_its_reserve(emulator: Emulator) -> None:
    emulator.fault(route=PRICES, status=429, count=50)
    pauses: list[float] = []
    spare = 1.0  # seconds beyond the reserve kept for the work after the wait

    started = time.monotonic()
    with invocation_end(RATE_LIMIT_RESERVE_SECONDS + spare), pytest.raises(TransientBillingError):
        gateway(emulator, pauses, sleep=True).price_for("sbt_basic_monthly")
    elapsed = time.monotonic() - started

    assert 1 <= len(pauses) <= 3
    assert sum(pauses) <= spare
    assert elapsed < spare + 0.5
