"""Stripe calls and DynamoDB round trips per operation, measured in one run.

Every operation goes through the deployed handlers' code, in process, against moto's server (AWS) and
the Stripe emulator, both on loopback; Stripe calls are the emulator's own request counts, DynamoDB
round trips are counted on the functions' boto3 client. Nothing is estimated.

    .venv/bin/python bench/calls_per_operation.py
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "handlers"), str(ROOT)]
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "SbtStripeBillingBench")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")

from devtools.local_run import rebased  # noqa: E402
from devtools.moto_server import MotoServer, aws_environment  # noqa: E402
from stripe_emulator import StripeEmulator  # noqa: E402
from tests.support.harness import Stack, sample, stack_on  # noqa: E402
from tests.support.usage import USAGE_SETTINGS  # noqa: E402


class DynamoCounter:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def __call__(self, model: Any, **_: Any) -> None:
        self.calls[model.name] += 1


@contextmanager
def measured(stack: Stack) -> Iterator[dict[str, Any]]:
    from sbt_billing.bootstrap.clients import aws_client as _aws_client

    counter = DynamoCounter()
    client = _aws_client("dynamodb")
    client.meta.events.register("before-call.dynamodb", counter)
    stack.emulator.admin("DELETE", "requests")
    figures: dict[str, Any] = {}
    try:
        yield figures
    finally:
        client.meta.events.unregister("before-call.dynamodb", counter)
        stripe = stack.emulator.counts()
        figures["stripe_calls"] = sum(stripe.values())
        figures["stripe_writes"] = sum(n for route, n in stripe.items() if not route.startswith("GET"))
        figures["stripe_routes"] = dict(stripe)
        figures["dynamodb_round_trips"] = sum(counter.calls.values())
        figures["dynamodb_calls"] = dict(counter.calls)


def run(stack: Stack, name: str, action: Callable[[], object], table: list[dict[str, Any]]) -> None:
    with measured(stack) as figures:
        action()
    table.append({"operation": name, **figures})


def main() -> None:
    rows: list[dict[str, Any]] = []
    with MotoServer() as moto, StripeEmulator() as emulator:
        os.environ.update(aws_environment(moto.endpoint))
        with stack_on(moto.endpoint, emulator.url) as stack:
            onboarding = rebased(sample("00_onboarding_request.json"))
            first = rebased(sample("01_provision_success.json"))
            # Warm the container once (clients, and the price lookup cache for the tier the samples'
            # tenant opens on), as a warm Lambda would be.
            flat = rebased(sample("03_provision_success_flat_missing_email.json"))
            warm = {"tenantId": "warm-up-tenant", "tier": onboarding["detail"]["tier"]}
            stack.deliver({**flat, "detail": {**flat["detail"], **warm}})
            run(stack, "onboarding request (records, links)", lambda: stack.deliver(onboarding), rows)
            run(stack, "provision by registration (create)", lambda: stack.deliver(first), rows)
            run(stack, "provision duplicate (same id)", lambda: stack.deliver(first), rows)
            republished = {**first, "id": "republished-1"}
            run(stack, "provision re-published (new id)", lambda: stack.deliver(republished), rows)
            run(
                stack,
                "update (details)",
                lambda: stack.deliver(rebased(sample("04_tenant_updated.json"))),
                rows,
            )
            tier = rebased(sample("05_tenant_updated_tier_change.json"))
            run(stack, "update (tier change)", lambda: stack.deliver(tier), rows)
            run(stack, "update duplicate", lambda: stack.deliver(tier), rows)
            run(stack, "delete", lambda: stack.deliver(rebased(sample("06_tenant_deleted.json"))), rows)
            early = rebased(sample("07_deleted_before_create_offboarding.json"))
            run(stack, "delete before create", lambda: stack.deliver(early), rows)
            late = rebased(sample("08_deleted_before_create_provision.json"))
            run(stack, "create after delete", lambda: stack.deliver(late), rows)
            bad = sample("09_invalid_missing_tenant_id.json")
            run(stack, "bad input", lambda: stack.deliver(bad), rows)

        with stack_on(moto.endpoint, emulator.url, USAGE_SETTINGS) as stack:
            stack.emulator.seed_usage_catalogue()
            stack.deliver(rebased(sample("03_provision_success_flat_missing_email.json")))

            def seat_burst() -> None:
                template = rebased(sample("11_tenant_user_created.json"))
                for n in range(1000):
                    event = json.loads(json.dumps(template))
                    event["id"], event["detail"]["userId"] = f"user-event-{n}", f"user-{n:05d}"
                    stack.deliver(event)
                    if n % 250 == 249:
                        stack.run_seat_syncs()
                stack.run_seat_syncs()

            run(stack, "1,000 seat events (burst)", seat_burst, rows)

            def usage_records() -> None:
                base = rebased(sample("13_ingest_usage.json"))
                records = base["detail"]["usage"][0]
                for batch in range(10):
                    event = json.loads(json.dumps(base))
                    event["id"] = f"usage-batch-{batch}"
                    event["detail"]["usage"] = [
                        {**records, "id": f"rec-{batch}-{n}", "value": 1} for n in range(1000)
                    ]
                    stack.deliver(event)

            run(stack, "10,000 usage records (10 events)", usage_records, rows)

    print_table(rows)


def print_table(rows: list[dict[str, Any]]) -> None:
    """The counted rows as a table, then each row's calls by route and by DynamoDB action."""
    width = max(len(row["operation"]) for row in rows)
    print(f"{'operation':<{width}}  stripe calls  stripe writes  dynamodb round trips")
    for row in rows:
        print(
            f"{row['operation']:<{width}}  {row['stripe_calls']:>12}  {row['stripe_writes']:>13}"
            f"  {row['dynamodb_round_trips']:>20}"
        )
    print()
    for row in rows:
        print(f"{row['operation'].strip()}: stripe {row['stripe_routes']} dynamodb {row['dynamodb_calls']}")


if __name__ == "__main__":
    main()
