"""p50 latency of the billing gate next to the full /billing read, in-process, in one run.

Both go through the billing API function's handler (Powertools resolver, validation, the account
store) with API Gateway's proxy events from events/; AWS is moto's server on loopback, Stripe the
project's emulator. The gate is one strongly-consistent GetItem; /billing adds a Query (the tenant's
users) and four Stripe reads. Each line shows the calls one warm request made, counted in the run.

    .venv/bin/python bench/api_latency.py [--requests 300]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "handlers"), str(ROOT)]
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "sbt-stripe-billing")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "SbtStripeBillingBench")
os.environ["POWERTOOLS_LOG_LEVEL"] = "WARNING"

if TYPE_CHECKING:
    from tests.harness import Stack


def p50(samples: list[float]) -> float:
    return statistics.median(samples)


def calls_per_request(stack: Stack, run: Callable[[], None]) -> str:
    """What one warm request asks of DynamoDB (counted on the functions' boto3 client) and of Stripe
    (the emulator's request counts), e.g. "1 DynamoDB GetItem + 4 Stripe requests"."""
    from sbt_billing.app import _aws_client

    operations: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        operations[model.name] += 1

    client = _aws_client("dynamodb")
    client.meta.events.register("before-call.dynamodb", count)
    stack.emulator.admin("DELETE", "requests")
    try:
        run()
    finally:
        client.meta.events.unregister("before-call.dynamodb", count)
    stripe = sum(stack.emulator.counts().values())  # invoice previews are POSTs that write nothing
    parts = [f"{n} DynamoDB {name}" for name, n in sorted(operations.items())]
    return " + ".join(parts + ([f"{stripe} Stripe requests"] if stripe else [])) or "no calls"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="requests per endpoint (after warm-up)")
    parser.add_argument("--warmup", type=int, default=20)
    arguments = parser.parse_args()

    from devtools.moto_server import MotoServer, aws_environment
    from stripe_emulator import StripeEmulator
    from tests.harness import sample, stack_on

    with MotoServer() as moto, StripeEmulator() as emulator:
        os.environ.update(aws_environment(moto.endpoint))
        with stack_on(moto.endpoint, emulator.url, {"POWERTOOLS_LOG_LEVEL": "WARNING"}) as stack:
            [opened] = stack.deliver(sample("01_provision_success.json"))
            assert opened["result"] == "applied", opened
            status_event, billing_event = sample("api_billing_status.json"), sample("api_billing.json")

            def request(event: dict[str, object]) -> Callable[[], None]:
                def run() -> None:
                    response = stack.invoke("BillingApiFunction", event)
                    assert int(response["statusCode"]) == 200, response

                return run

            gate, full = request(status_event), request(billing_event)
            timings: dict[str, list[float]] = {"gate": [], "billing": []}
            with contextlib.redirect_stdout(io.StringIO()) as sink:  # the functions' metrics lines
                for _ in range(arguments.warmup):
                    gate()
                    full()
                gate_calls, billing_calls = calls_per_request(stack, gate), calls_per_request(stack, full)
                for _ in range(arguments.requests):  # interleaved, so both see the same conditions
                    for name, run in (("gate", gate), ("billing", full)):
                        started = time.perf_counter()
                        run()
                        timings[name].append((time.perf_counter() - started) * 1000)
                        sink.seek(0)
                        sink.truncate()

            # What the gate costs beyond the read itself: the same GetItem, bare.
            from sbt_billing.app import account_store

            store = account_store()
            for _ in range(arguments.requests):
                started = time.perf_counter()
                store.get(str(opened["tenant_id"]))
                timings.setdefault("get_item", []).append((time.perf_counter() - started) * 1000)

    gate_p50, billing_p50 = p50(timings["gate"]), p50(timings["billing"])
    print(f"requests per endpoint: {arguments.requests} (after {arguments.warmup} warm-up)")
    print(f"GET /tenants/{{tenantId}}/billing/status  p50 {gate_p50:7.2f} ms  ({gate_calls})")
    print(f"GET /tenants/{{tenantId}}/billing         p50 {billing_p50:7.2f} ms  ({billing_calls})")
    print(f"ratio billing/status: {billing_p50 / gate_p50:.1f}x")
    print(f"(the bare consistent GetItem against moto's server alone: p50 {p50(timings['get_item']):.2f} ms)")


if __name__ == "__main__":
    main()
