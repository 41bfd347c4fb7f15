"""A reconcile run over 10,000 accounts: its Stripe requests (target: N/100 + a few) and its time
against the rate-limit floor (the requests it makes / the requests a second it may make).

N tenants are seeded as the lifecycle leaves them (a customer and a subscription each in the Stripe
emulator, an open account each in the accounts table on moto's server), two hours before the run by
the emulator's clock. A share of them (--drift) is changed in Stripe directly (half re-priced to
another tier, half cancelled), as in the Dashboard, and their events are past the replay's window (the
webhook applied events since): the run has to find them by comparing. The webhook's mark is half an
hour old, as a healthy endpoint leaves it. Then the ReconcileFunction handler runs in process, its
Stripe requests paced at --rate a second, against the emulator answering each request after
--latency-ms and refusing more than --rate a second (429), until its pass is complete.

    .venv/bin/python bench/reconcile.py [--tenants 10000] [--drift 100] [--rate 25] [--latency-ms 300]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "handlers"), str(ROOT)]
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "SbtStripeBillingBench")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")

from devtools.moto_server import MotoServer, aws_environment  # noqa: E402
from stripe_emulator import StripeEmulator  # noqa: E402
from tests.support.harness import FakeLambdaContext, Stack, sample, stack_on  # noqa: E402

TIERS = {"basic": "sbt_basic_monthly", "premium": "sbt_premium_monthly"}


class LongContext(FakeLambdaContext):
    """The reconcile function's 15 minutes (the test context gives 30 s)."""

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def seed(stack: Stack, tenants: int, threads: int) -> dict[str, tuple[str, str, str]]:
    """A customer and a basic subscription per tenant in Stripe: tenant -> (customer, subscription, item)."""
    client = stack.emulator.client()
    price = client.v1.prices.list(params={"lookup_keys": [TIERS["basic"]]}).data[0].id

    def one(n: int) -> tuple[str, tuple[str, str, str]]:
        tenant = f"bench-tenant-{n:05d}"
        customer = client.v1.customers.create(params={"metadata": {"tenantId": tenant}})
        subscription = client.v1.subscriptions.create(
            params={
                "customer": customer.id,
                "items": [{"price": price, "quantity": 1}],
                "metadata": {"tenantId": tenant},
                "collection_method": "send_invoice",
                "days_until_due": 30,
            }
        )
        return tenant, (customer.id, subscription.id, subscription["items"].data[0].id)

    with ThreadPoolExecutor(threads) as pool:
        return dict(pool.map(one, range(tenants)))


def write_accounts(stack: Stack, opened: dict[str, tuple[str, str, str]], price: str, at: datetime) -> None:
    from sbt_billing.adapters.tenant_accounts import item_from_account
    from sbt_billing.domain.models import Account, AccountStatus, TenantFacts

    table = stack.resources.tables["AccountsTable"]
    dynamodb = stack.clients.dynamodb()
    items = []
    for tenant, (customer, subscription, item) in opened.items():
        desired = Account(tenant_id=tenant).desired.merge(
            TenantFacts(tenant_id=tenant, tier="basic", occurred_at=at)
        )
        account = Account(
            tenant_id=tenant,
            status=AccountStatus.OPEN,
            desired=desired,
            customer_id=customer,
            subscription_id=subscription,
            subscription_item_id=item,
            subscription_status="active",
            price_id=price,
            applied_tier="basic",
            applied_details_digest=desired.details().digest(),
            last_fact_at=at,
        )
        items.append({"PutRequest": {"Item": item_from_account(account)}})
    for start in range(0, len(items), 25):
        dynamodb.batch_write_item(RequestItems={table: items[start : start + 25]})


def drift(stack: Stack, opened: dict[str, tuple[str, str, str]], count: int) -> None:
    """Half re-priced to premium, half cancelled, in Stripe directly."""
    client = stack.emulator.client()
    premium = client.v1.prices.list(params={"lookup_keys": [TIERS["premium"]]}).data[0].id
    for n, (_, subscription, item) in enumerate(list(opened.values())[:count]):
        if n % 2 == 0:
            client.v1.subscriptions.update(
                subscription, params={"items": [{"id": item, "price": premium}], "proration_behavior": "none"}
            )
        else:
            client.v1.subscriptions.cancel(subscription)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--drift", type=int, default=100, help="tenants changed in Stripe directly")
    parser.add_argument(
        "--rate", type=float, default=25.0, help="Stripe's limit and the run's pace, requests a second"
    )
    parser.add_argument("--latency-ms", type=int, default=300, help="Stripe's answer time per request")
    parser.add_argument("--seed-threads", type=int, default=4)
    args = parser.parse_args()

    with MotoServer() as moto, StripeEmulator() as emulator:
        os.environ.update(aws_environment(moto.endpoint))
        overrides = {"STRIPE_REQUESTS_PER_SECOND": str(args.rate), "STRIPE_MAX_NETWORK_RETRIES": "3"}
        with stack_on(moto.endpoint, emulator.url, overrides) as stack:
            now = time.time()
            # The tenants were billed two hours ago (the catalogue was seeded just before: allowed backwards).
            stack.emulator.admin("POST", "clock", {"now": now - 7200, "allow_backwards": True})
            started = time.monotonic()
            opened = seed(stack, args.tenants, args.seed_threads)
            price = (
                stack.emulator.client().v1.prices.list(params={"lookup_keys": [TIERS["basic"]]}).data[0].id
            )
            write_accounts(stack, opened, price, datetime.fromtimestamp(now - 7200, UTC))
            drift(stack, opened, args.drift)
            stack.emulator.admin("POST", "clock", {"frozen": False})
            print(
                f"seeded {len(opened)} tenants ({args.drift} changed in Stripe) in {time.monotonic() - started:.0f} s",
                flush=True,
            )

            from sbt_billing.adapters.reconcile_store import DynamoReconcileStore
            from sbt_billing.domain.models import StripeStamp

            marks = DynamoReconcileStore(stack.clients.dynamodb(), stack.resources.tables["ReconcileTable"])
            marks.advance_applied_mark(
                StripeStamp(at=datetime.now(UTC) - timedelta(minutes=30), event_id="evt_mark")
            )
            stack.published()
            stack.emulator.admin("DELETE", "requests")
            stack.emulator.admin("POST", "rate_limit", {"per_second": args.rate})
            stack.emulator.admin("POST", "latency", {"ms": args.latency_ms})

            from sbt_billing.entrypoints.reconcile_run import handle_reconcile

            passes = []
            for name in (
                "first pass (finds and repairs the drift)",
                "next pass (in step, but what needs a person)",
            ):
                stack.emulator.admin("DELETE", "requests")
                started = time.monotonic()
                answers: list[dict[str, Any]] = []
                while not answers or not answers[-1]["complete"]:
                    context = LongContext("ReconcileFunction")
                    answers.append(handle_reconcile(sample("25_reconcile_schedule.json"), context))
                elapsed = time.monotonic() - started
                detail = stack.emulator.admin("GET", "counts?detail=true")
                passes.append((name, answers, elapsed, detail))
            stack.emulator.admin("POST", "rate_limit", {"per_second": 0})
            stack.emulator.admin("POST", "latency", {"ms": 0})

    print(
        f"tenants {args.tenants}, Stripe limit and pace {args.rate:g} req/s, Stripe latency {args.latency_ms} ms"
    )
    for name, answers, elapsed, detail in passes:
        counts = answers[-1]["passCounts"]
        executed = detail.get("executed", {})
        reads = {route: n for route, n in executed.items() if route.startswith("GET")}
        writes = {route: n for route, n in executed.items() if not route.startswith("GET")}
        sent = sum(detail.get("including_faults", {}).values())
        requests = sum(reads.values()) + sum(writes.values())
        floor = requests / args.rate
        print(f"\n{name}: invocations {len(answers)}, accounts checked {counts.get('accounts_checked', 0)}")
        print(
            "  drift: " + json.dumps({k: v for k, v in counts.items() if k.startswith(("drift:", "action:"))})
        )
        print(
            f"  Stripe reads {sum(reads.values())} (target <= N/100 + a few = {args.tenants // 100} + a few): {json.dumps(reads)}"
        )
        print(f"  Stripe writes {sum(writes.values())} (the repairs): {json.dumps(writes)}")
        print(f"  429s {max(sent - requests, 0)}")
        print(
            f"  elapsed {elapsed:.1f} s; rate-limit floor {floor:.1f} s ({requests} requests / {args.rate:g} a second), "
            f"{elapsed / floor:.1f}x; the same requests one after another at {args.latency_ms} ms: "
            f"{requests * args.latency_ms / 1000:.1f} s"
        )


if __name__ == "__main__":
    main()
