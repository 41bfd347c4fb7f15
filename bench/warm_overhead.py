"""Warm per-event overhead, with the in-memory doubles (tests/support/doubles.py) in place of DynamoDB, Stripe
and EventBridge, so that no network time is in the figures, measured in one run.

1. The lifecycle itself: open, update and close, a new Lifecycle per event as each invocation builds
   one; the doubles record every account write and Stripe call the real adapters would be asked for.
2. The whole warm invocation of ProvisionSuccessFunction's handler (an SQS batch of one provisioning
   event: Powertools' logger, metrics and batch processing, parsing, the lifecycle on the doubles)
   against a baseline handler with the same Powertools decorators that does nothing: the ratio is
   what this project adds per event to a Powertools handler.

    .venv/bin/python bench/warm_overhead.py [--tenants 2000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "handlers"), str(ROOT)]
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "SbtStripeBillingBench")

from sbt_billing.domain.catalogue import TierPlan  # noqa: E402
from sbt_billing.domain.lifecycle import Lifecycle  # noqa: E402
from sbt_billing.domain.models import TenantFacts  # noqa: E402
from sbt_billing.domain.results import Result  # noqa: E402

from tests.support.doubles import (  # noqa: E402
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


def sqs_batch(event: dict[str, Any]) -> dict[str, Any]:
    """An SQS batch of one, as the provisioning queue's event source mapping hands it to the function."""
    from devtools.local_run import sqs_event

    message = {
        "MessageId": event["id"],
        "ReceiptHandle": "bench",
        "Body": json.dumps(event),
        "Attributes": {"ApproximateReceiveCount": "1"},
        "MD5OfBody": "",
    }
    return sqs_event([message], "arn:aws:sqs:us-east-1:123456789012:ProvisionSuccessQueue", "us-east-1")


def handler_round(tenants: int) -> tuple[float, float]:
    """Seconds per invocation of (the provisioning handler, a bare Powertools handler)."""
    import provision_success
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from sbt_billing.entrypoints import lifecycle_events
    from sbt_billing.entrypoints.observability import logger, metrics

    from devtools.local_run import rebased
    from tests.support.harness import FakeLambdaContext, sample

    store, stripe, publisher, clock = (
        InMemoryAccountStore(),
        FakeStripe(),
        RecordingPublisher(),
        FixedClock(T0),
    )
    lifecycle_events.lifecycle = lambda working_until=None: Lifecycle(  # type: ignore[assignment]
        store, FakeBillingGateway(stripe), publisher, clock, CATALOGUE, 120, working_until=working_until
    )

    @logger.inject_lambda_context(clear_state=True)
    @metrics.log_metrics
    def bare(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        return {"batchItemFailures": []}

    template = rebased(sample("03_provision_success_flat_missing_email.json"))  # names tenant and tier
    batches = []
    for n in range(tenants):
        event = json.loads(json.dumps(template))
        event["id"] = f"warm-{n}"
        event["detail"]["tenantId"] = f"warm-tenant-{n:05d}"
        batches.append(sqs_batch(event))
    context = FakeLambdaContext("ProvisionSuccessFunction")

    started = time.perf_counter()
    for batch in batches:
        assert provision_success.lambda_handler(batch, context) == {"batchItemFailures": []}
    real = (time.perf_counter() - started) / tenants
    started = time.perf_counter()
    for batch in batches:
        bare(batch, context)
    baseline = (time.perf_counter() - started) / tenants
    assert len(stripe.customers) == tenants
    return real, baseline


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

    _environment_from_template()
    handler_round(200)  # warm
    measured = [handler_round(arguments.tenants) for _ in range(arguments.repeats)]
    real = statistics.median(m[0] for m in measured)
    baseline = statistics.median(m[1] for m in measured)
    print(
        f"warm invocation of provision_success (SQS batch of 1, doubles): {real * 1e6:.1f} us; a bare "
        f"Powertools handler with the same decorators: {baseline * 1e6:.1f} us; ratio {real / baseline:.1f}x"
    )


def _environment_from_template() -> None:
    """The function's settings as the template sets them (resources named after their logical ids)."""
    from devtools.template import function_handlers, queue_ids, table_definitions

    names = {logical_id: logical_id for logical_id in [*table_definitions(), *queue_ids()]}
    handler = function_handlers({"EventBusName": "bench-bus", "StripeSecretName": "bench"}, names)
    os.environ.update(handler["ProvisionSuccessFunction"].environment)


if __name__ == "__main__":
    main()
