"""Bulk onboarding under Stripe's rate limit, through the deployed design: how close to the floor
(Stripe requests needed / rate limit) it gets, and whether anything reaches the dead-letter queue.

N provisioning events are put on the SBT bus (moto's server); the template's rule puts them on
ProvisionSuccessQueue; Lambda's SQS event source mapping is played with the queue's maximum
concurrency from template.yaml (LifecycleConcurrency) and its batch size, invoking the real handler
in process; Stripe is the emulator, limited to R requests a second (test mode's 25) and answering
each request after a latency like Stripe's. A rate-limited request is a 429 the SDK does not retry
(as Stripe's SDKs do not); the gateway backs off and retries it, and a record still failing returns
to the queue. The clock starts when the events are on the queue.

The defaults are the issue's 2,000 tenants at test mode's 25 requests a second, scaled down together
by 5 (400 tenants at 5 a second: the same 160 s floor) so that the machine running the bench is not
the bottleneck; the concurrency scales with the rate as the template's default does with 25.

    .venv/bin/python bench/bulk_onboarding.py [--tenants 400] [--rate 5] [--latency-ms 250]
                                              [--concurrency N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "handlers"), str(ROOT)]
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "SbtStripeBillingBench")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")

from devtools.local_run import rebased  # noqa: E402
from devtools.moto_server import MotoServer, aws_environment  # noqa: E402
from stripe_emulator import StripeEmulator  # noqa: E402
from tests.support.harness import Stack, sample, stack_on  # noqa: E402

QUEUE = "ProvisionSuccessQueue"
TEST_MODE_RATE = 25.0  # Stripe's limit in test mode, requests a second, which the template is sized for


def queue_depth(stack: Stack) -> int:
    attributes = stack.clients.sqs().get_queue_attributes(
        QueueUrl=stack.resources.queues[QUEUE], AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=400)
    parser.add_argument("--rate", type=float, default=5.0, help="Stripe's limit, requests a second")
    parser.add_argument("--latency-ms", type=int, default=250, help="Stripe's answer time per request")
    parser.add_argument(
        "--concurrency", type=int, default=None, help="default: the template's, scaled by rate / 25"
    )
    args = parser.parse_args()

    with MotoServer() as moto, StripeEmulator() as emulator:
        os.environ.update(aws_environment(moto.endpoint))
        with stack_on(moto.endpoint, emulator.url, {"STRIPE_MAX_NETWORK_RETRIES": "3"}) as stack:
            route = next(route for route in stack.routes if route.queue_id == QUEUE)
            template_concurrency = route.maximum_concurrency or 2
            concurrency = args.concurrency or max(2, round(template_concurrency * args.rate / TEST_MODE_RATE))
            # A provisioning event that names its tenant and tier (a job exporting both), so that each
            # tenant is one event on the queue, as the figures of earlier runs measured.
            template = rebased(sample("03_provision_success_flat_missing_email.json"))
            warm = json.loads(json.dumps(template))
            warm["detail"]["tenantId"] = "warm-up"
            stack.deliver(warm)  # a warm container: clients made, the tier's price looked up
            events = []
            for n in range(args.tenants):
                event = json.loads(json.dumps(template))
                event["detail"]["tenantId"] = f"bulk-tenant-{n:05d}"
                events.append(event)
            put_started = time.monotonic()
            stack.put_on_bus(events)
            queued = queue_depth(stack)
            print(f"{queued} events on the queue in {time.monotonic() - put_started:.1f} s", flush=True)
            stack.emulator.admin("DELETE", "requests")
            stack.emulator.admin("POST", "rate_limit", {"per_second": args.rate})
            stack.emulator.admin("POST", "latency", {"ms": args.latency_ms})
            started = time.monotonic()
            run = stack.run_queue(QUEUE, concurrency=concurrency)
            elapsed = time.monotonic() - started
            stack.emulator.admin("POST", "rate_limit", {"per_second": 0})
            stack.emulator.admin("POST", "latency", {"ms": 0})
            detail = stack.emulator.admin("GET", "counts?detail=true")
            dead = stack.dead_letters()
            opened = sum(
                1
                for item in stack.table_items("AccountsTable")
                if item["tenantId"]["S"].startswith("bulk-tenant-") and item["status"]["S"] == "open"
            )

    executed = detail.get("executed", {})
    needed = sum(n for route, n in executed.items() if route.startswith(("POST", "DELETE")))
    sent = sum(detail.get("including_faults", {}).values())
    floor = needed / args.rate
    print(
        f"tenants {args.tenants} (on the queue: {queued}), maximum concurrency {concurrency}, batch size "
        f"{route.batch_size}, Stripe limit {args.rate:g} req/s, Stripe latency {args.latency_ms} ms"
    )
    print(
        f"accounts opened {opened}; invocations {run.invocations}, records failed back to the queue "
        f"{run.failed_records}, dead-lettered {len(dead)}"
    )
    print(f"Stripe writes needed {needed}, Stripe requests sent {sent} (429s included)")
    print(f"elapsed {elapsed:.1f} s, floor {floor:.1f} s, ratio {elapsed / floor:.2f}x (target <= 1.15x)")


if __name__ == "__main__":
    main()
