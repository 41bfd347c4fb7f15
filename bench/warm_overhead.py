"""Warm per-event overhead of the lifecycle itself: open, update and close with the in-memory doubles
(tests/doubles.py), so that no network or AWS time is in the figure, measured in one run.

Each event gets its own Lifecycle, as each invocation does (app.lifecycle()); the doubles record
every account write and every Stripe call as the real adapters would be asked to make them.

    .venv/bin/python bench/warm_overhead.py [--tenants 2000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "handlers"), str(ROOT)]

from sbt_billing.lifecycle import Lifecycle  # noqa: E402
from sbt_billing.models import Result, TenantFacts  # noqa: E402
from sbt_billing.settings import TierPlan  # noqa: E402

from tests.doubles import (  # noqa: E402
    FakeBillingGateway,
    FakeStripe,
    FixedClock,
    InMemoryAccountStore,
    RecordingPublisher,
)

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
CATALOGUE = {"basic": TierPlan(price="basic_key"), "premium": TierPlan(price="premium_key")}


def one_round(tenants: int) -> dict[str, float]:
    """Seconds per event for each operation, over `tenants` tenants."""
    store, stripe, publisher, clock = (
        InMemoryAccountStore(),
        FakeStripe(),
        RecordingPublisher(),
        FixedClock(T0),
    )

    def lifecycle() -> Lifecycle:
        return Lifecycle(store, FakeBillingGateway(stripe), publisher, clock, CATALOGUE, 120)

    ids = [f"tenant-{n:05d}" for n in range(tenants)]
    operations: dict[str, Callable[[str], object]] = {
        "open": lambda t: lifecycle().open_account(
            TenantFacts(tenant_id=t, name="acme", email="ops@acme.test", tier="basic", occurred_at=T0)
        ),
        "update": lambda t: lifecycle().update_account(
            TenantFacts(tenant_id=t, email="billing@acme.test", occurred_at=T0 + timedelta(hours=1))
        ),
        "close": lambda t: lifecycle().close_account(
            TenantFacts(tenant_id=t, occurred_at=T0 + timedelta(days=1))
        ),
    }
    per_event: dict[str, float] = {}
    for name, operation in operations.items():
        started = time.perf_counter()
        for tenant in ids:
            outcome = operation(tenant)
            assert outcome.result is Result.APPLIED, outcome  # type: ignore[attr-defined]
        per_event[name] = (time.perf_counter() - started) / tenants
    assert stripe.writes() == 5 * tenants  # customer, subscription, update, cancel, close: all applied
    return per_event


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    arguments = parser.parse_args()

    one_round(200)  # warm: imports, pydantic's validators, caches
    rounds = [one_round(arguments.tenants) for _ in range(arguments.repeats)]
    print(
        f"{arguments.repeats} rounds x {arguments.tenants} tenants, median per event; "
        f"Python {sys.version.split()[0]}"
    )
    print(f"{'operation':<8} {'us/event':>10} {'events/s':>10}")
    for name in ("open", "update", "close"):
        seconds = statistics.median(r[name] for r in rounds)
        print(f"{name:<8} {seconds * 1e6:>10.1f} {1 / seconds:>10.0f}")


if __name__ == "__main__":
    main()
