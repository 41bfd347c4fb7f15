"""p50 latency of the billing gate next to the full /billing read and a PATCH tier change, in-process,
in one run.

All go through the billing API function's handler (Powertools resolver, validation, the account
store) with API Gateway's proxy events from events/; AWS is moto's server on loopback, Stripe the
project's emulator. The gate is one strongly-consistent GetItem; /billing adds a Query (the tenant's
users) and four Stripe reads; a PATCH tier change (basic and premium in turn, each request at its own
time, as API Gateway stamps it) goes through the lifecycle: GetItem, PutItem (fact + lease), the
Stripe update, PutEvents (billingSuccess), PutItem (release). Each line shows the calls one warm
request made, counted in the run. The PATCHes run in a second phase, interleaved with the gate again
(a tier change leaves proration items that would slow the emulator's previews in /billing), on a
second tenant.

    .venv/bin/python bench/api_latency.py [--requests 300]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
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
    from tests.support.harness import Stack


def p50(samples: list[float]) -> float:
    return statistics.median(samples)


def calls_per_request(stack: Stack, run: Callable[[], None]) -> str:
    """What one warm request asks of DynamoDB and EventBridge (counted on the functions' boto3 clients)
    and of Stripe (the emulator's request counts), e.g. "1 DynamoDB GetItem + 4 Stripe requests"."""
    from sbt_billing.bootstrap.clients import aws_client as _aws_client

    operations: Counter[tuple[str, str]] = Counter()

    def count(model: Any, **_: Any) -> None:
        operations[(model.service_model.service_id, model.name)] += 1

    clients = [_aws_client("dynamodb"), _aws_client("events")]
    for client in clients:
        client.meta.events.register("before-call.*.*", count)
    stack.emulator.admin("DELETE", "requests")
    try:
        run()
    finally:
        for client in clients:
            client.meta.events.unregister("before-call.*.*", count)
    counts = stack.emulator.counts()
    stripe = sum(counts.values())  # invoice previews are POSTs that write nothing
    writes = sum(n for route, n in counts.items() if route.startswith(("POST", "DELETE")))
    writes -= counts.get("POST /v1/invoices/create_preview", 0)
    round_trips = sum(n for (service, _), n in operations.items() if service == "DynamoDB")
    parts = [f"{n} {service} {name}" for (service, name), n in sorted(operations.items())]
    stripe_part = f"{_n(stripe, 'Stripe request')} ({_n(writes, 'write')})" if stripe else ""
    summary = " + ".join(parts + ([stripe_part] if stripe_part else [])) or "no calls"
    return f"{summary}; {_n(round_trips, 'DynamoDB round trip')}" if round_trips else summary


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def provision_success(tenant_id: str) -> dict[str, Any]:
    """SBT's provisionSuccess with the tenant id and tier at the top of the detail."""
    return {
        "version": "0",
        "id": f"bench-{tenant_id}",
        "detail-type": "sbt_aws_provisionSuccess",
        "source": "sbt.application.plane",
        "account": "123456789012",
        "time": "2026-01-01T00:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {"tenantId": tenant_id, "tier": "basic", "tenantName": "bench"},
    }


def tier_change(event: dict[str, Any], tenant_id: str, body: bool = True) -> dict[str, Any]:
    """An API Gateway proxy event of the samples, for another tenant (and without Idempotency-Key)."""
    changed = copy.deepcopy(event)
    old = changed["pathParameters"]["tenantId"]
    changed["pathParameters"]["tenantId"] = tenant_id
    changed["path"] = changed["path"].replace(old, tenant_id)
    changed["requestContext"]["path"] = changed["requestContext"]["path"].replace(old, tenant_id)
    for headers in (changed["headers"], changed["multiValueHeaders"]):
        headers.pop("Idempotency-Key", None)
    if not body:
        changed["body"] = None
    return changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="requests per endpoint (after warm-up)")
    parser.add_argument("--warmup", type=int, default=20)
    arguments = parser.parse_args()

    from devtools.moto_server import MotoServer, aws_environment
    from stripe_emulator import StripeEmulator
    from tests.support.harness import sample, stack_on

    with MotoServer() as moto, StripeEmulator() as emulator:
        os.environ.update(aws_environment(moto.endpoint))
        with stack_on(moto.endpoint, emulator.url, {"POWERTOOLS_LOG_LEVEL": "WARNING"}) as stack:
            status_event, billing_event = sample("api_billing_status.json"), sample("api_billing.json")
            [opened] = stack.deliver(provision_success(status_event["pathParameters"]["tenantId"]))
            assert opened["result"] == "applied", opened

            def request(event: dict[str, object]) -> Callable[[], None]:
                def run() -> None:
                    response = stack.invoke("BillingApiFunction", event)
                    assert int(response["statusCode"]) == 200, response

                return run

            gate, full = request(status_event), request(billing_event)
            timings: dict[str, list[float]] = {"gate": [], "billing": [], "gate2": [], "patch": []}
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

                # Phase 2: PATCH tier changes on a second tenant, basic and premium in turn.
                second = "5c7e9d20-4b1a-4f3e-8d6c-2a1b0c9d8e7f"
                [opened_second] = stack.deliver(provision_success(second))
                assert opened_second["result"] == "applied", opened_second
                tiers = iter(("premium", "basic") * (arguments.warmup + arguments.requests + 2))
                change = tier_change(sample("api_billing_change.json"), second)
                gate_second = request(tier_change(status_event, second, body=False))

                def patch(idempotency_key: str | None = None) -> None:
                    event = copy.deepcopy(change)
                    event["body"] = json.dumps({"tier": next(tiers)})
                    event["requestContext"]["requestTimeEpoch"] = time.time_ns() // 1_000_000
                    if idempotency_key is not None:
                        event["headers"]["Idempotency-Key"] = idempotency_key
                        event["multiValueHeaders"]["Idempotency-Key"] = [idempotency_key]
                    response = stack.invoke("BillingApiFunction", event)
                    assert int(response["statusCode"]) == 200, response
                    assert json.loads(response["body"])["result"] == "applied", response

                for _ in range(arguments.warmup):
                    gate_second()
                    patch()
                patch_calls = calls_per_request(stack, patch)
                keyed_patch_calls = calls_per_request(
                    stack, lambda: patch(idempotency_key=f"bench-{time.time_ns()}")
                )
                for _ in range(arguments.requests):
                    for name, run in (("gate2", gate_second), ("patch", patch)):
                        started = time.perf_counter()
                        run()
                        timings[name].append((time.perf_counter() - started) * 1000)
                        sink.seek(0)
                        sink.truncate()

            # What the gate costs beyond the read itself: the same GetItem, bare.
            from sbt_billing.bootstrap.stores import account_store

            store = account_store()
            for _ in range(arguments.requests):
                started = time.perf_counter()
                store.get(str(opened["tenant_id"]))
                timings.setdefault("get_item", []).append((time.perf_counter() - started) * 1000)

    gate_p50, billing_p50 = p50(timings["gate"]), p50(timings["billing"])
    gate2_p50, patch_p50 = p50(timings["gate2"]), p50(timings["patch"])
    print(f"requests per endpoint: {arguments.requests} (after {arguments.warmup} warm-up)")
    print(f"GET /tenants/{{tenantId}}/billing/status  p50 {gate_p50:7.2f} ms  ({gate_calls})")
    print(f"GET /tenants/{{tenantId}}/billing         p50 {billing_p50:7.2f} ms  ({billing_calls})")
    print(f"ratio billing/status: {billing_p50 / gate_p50:.1f}x")
    print("phase 2, interleaved:")
    print(f"GET /tenants/{{tenantId}}/billing/status  p50 {gate2_p50:7.2f} ms")
    print(f"PATCH /tenants/{{tenantId}}/billing (tier) p50 {patch_p50:7.2f} ms  ({patch_calls})")
    print(f"ratio PATCH/status: {patch_p50 / gate2_p50:.1f}x")
    print(f"(a PATCH with an Idempotency-Key, once: {keyed_patch_calls})")
    print(f"(the bare consistent GetItem against moto's server alone: p50 {p50(timings['get_item']):.2f} ms)")


if __name__ == "__main__":
    main()
