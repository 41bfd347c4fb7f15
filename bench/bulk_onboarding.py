"""Bulk onboarding under Stripe's rate limit: how close to the floor (calls needed / rate limit) the
current design gets, and whether anything would reach the dead-letter queue.

N tenants are provisioned by C concurrent workers (Lambda's concurrency) through the real handler, in
process, against moto's server and the Stripe emulator limited to R requests per second (Stripe's
test mode allows 25). A failed invocation is delivered again, as Lambda's asynchronous retries would
(twice); an event still failing then would go to the dead-letter queue and is counted as such.

    .venv/bin/python bench/bulk_onboarding.py [--tenants 100] [--rate 25] [--workers 8]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "handlers"), str(ROOT)]
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "SbtStripeBillingBench")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")

from devtools.local_run import rebased  # noqa: E402
from devtools.moto_server import MotoServer, aws_environment  # noqa: E402
from stripe_emulator import StripeEmulator  # noqa: E402
from tests.harness import Stack, sample, stack_on  # noqa: E402

PLATFORM_RETRIES = 2  # Lambda's asynchronous invocations are retried twice by default


def onboard(stack: Stack, event: dict[str, Any]) -> tuple[str, int]:
    """(final result or 'dead-lettered', attempts)"""
    for attempt in range(1, PLATFORM_RETRIES + 2):
        try:
            [outcome] = stack.deliver(event)
            return str(outcome["result"]), attempt
        except Exception:  # the platform retries whatever failed
            continue
    return "dead-lettered", PLATFORM_RETRIES + 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--rate", type=float, default=25.0)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()

    with MotoServer() as moto, StripeEmulator() as emulator:
        os.environ.update(aws_environment(moto.endpoint))
        with stack_on(moto.endpoint, emulator.url) as stack:
            template = rebased(sample("01_provision_success.json"))
            warm = json.loads(json.dumps(template))
            warm["detail"]["tenantId"] = "warm-up"
            stack.deliver(warm)  # a warm container: clients made, the tier's price looked up
            events = []
            for n in range(args.tenants):
                event = json.loads(json.dumps(template))
                event["id"] = f"bulk-{n}"
                event["detail"]["tenantId"] = f"bulk-tenant-{n:05d}"
                events.append(event)
            stack.emulator.admin("DELETE", "requests")
            stack.emulator.admin("POST", "rate_limit", {"per_second": args.rate})
            started = time.monotonic()
            with ThreadPoolExecutor(max_workers=args.workers) as pool:
                results = list(pool.map(lambda event: onboard(stack, event), events))
            elapsed = time.monotonic() - started
            stack.emulator.admin("POST", "rate_limit", {"per_second": 0})
            detail = stack.emulator.admin("GET", "counts?detail=true")

    executed = detail.get("executed", {})
    needed = sum(n for route, n in executed.items() if route.startswith(("POST", "DELETE")))
    all_requests = sum(detail.get("including_faults", {}).values())
    floor = needed / args.rate
    outcomes: dict[str, int] = {}
    for result, _ in results:
        outcomes[result] = outcomes.get(result, 0) + 1
    retried = sum(1 for _, attempts in results if attempts > 1)
    print(f"tenants {args.tenants}, workers {args.workers}, Stripe limit {args.rate:g} req/s")
    print(f"outcomes {outcomes}; invocations retried by the platform: {retried}")
    print(f"Stripe writes needed {needed}, Stripe requests sent {all_requests} (429s included)")
    print(f"elapsed {elapsed:.1f} s, floor {floor:.1f} s, ratio {elapsed / floor:.2f}x (target <= 1.15x)")


if __name__ == "__main__":
    main()
