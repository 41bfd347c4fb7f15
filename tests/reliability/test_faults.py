"""Faults: Stripe answers 429s and 5xx and drops connections at random, DynamoDB throttles at random;
each failed event is delivered again, as the platform would, a bounded number of times. Every
operation ends done exactly once, or dead-lettered with a clear reason, and nothing is orphaned."""

from __future__ import annotations

import importlib
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from devtools.template import event_routes, function_handlers, routes_for
from tests.support.harness import FakeLambdaContext, Stack
from tests.support.reliability import customers_by_tenant, for_tenant, subscriptions, tenant_of

pytestmark = pytest.mark.reliability

TENANTS = 10
OFFBOARDED = 2  # the last two tenants are offboarded after their updates
ATTEMPTS = 6  # the first delivery and the platform's retries (EventBridge's and Lambda's)
LEASE_SECONDS = 60
STRIPE_FAULT_RATE, STRIPE_SEED = 0.2, 11
DYNAMODB_THROTTLE_RATE, DYNAMODB_SEED = 0.1, 12


class ShortLivedContext(FakeLambdaContext):
    """An invocation with little time left, so that by the platform's retry the failed attempt's
    invocation is over: a lease it could not hand back (DynamoDB throttled) counts as a dead holder's,
    and the retry waits for it to expire instead of answering in_flight."""

    def get_remaining_time_in_millis(self) -> int:
        return 50


def throttled(operation: str) -> ClientError:
    return ClientError(
        {
            "Error": {
                "Code": "ThrottlingException",
                "Message": "Rate of requests exceeds the allowed throughput.",
            },
            "ResponseMetadata": {"HTTPStatusCode": 400},
        },
        operation,
    )


class DynamoThrottle:
    """A botocore hook on the functions' DynamoDB client: throttles the calls `decide` picks, as if
    the client's own retries were exhausted."""

    def __init__(self, decide: Callable[[str, dict[str, Any]], bool]) -> None:
        self.decide = decide
        self.throttled: Counter[str] = Counter()

    def __call__(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if self.decide(model.name, params):
            self.throttled[model.name] += 1
            raise throttled(model.name)


@pytest.fixture
def throttle_hook() -> Iterator[Callable[[DynamoThrottle], None]]:
    from sbt_billing.bootstrap.clients import aws_client as _aws_client

    installed: list[DynamoThrottle] = []

    def install(throttle: DynamoThrottle) -> None:
        _aws_client("dynamodb").meta.events.register("before-parameter-build.dynamodb", throttle)
        installed.append(throttle)

    yield install
    for throttle in installed:
        _aws_client("dynamodb").meta.events.unregister("before-parameter-build.dynamodb", throttle)


@pytest.fixture
def later(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    """Moves the functions' clock forward: the time that passes before the platform retries."""
    from sbt_billing.adapters.clock import SystemClock

    offset = [timedelta(0)]
    real_now = SystemClock.now
    monkeypatch.setattr(SystemClock, "now", lambda self: real_now(self) + offset[0])

    def advance(seconds: float) -> None:
        offset[0] += timedelta(seconds=seconds)

    return advance


def invoke(stack: Stack, function_id: str, event: dict[str, Any]) -> dict[str, Any]:
    handler = function_handlers(stack.resources.parameter_overrides(), stack.resources.resource_names())[
        function_id
    ]
    module = importlib.import_module(handler.module)
    answer: dict[str, Any] = getattr(module, handler.function)(dict(event), ShortLivedContext(function_id))
    return answer


def lifecycle_events() -> list[dict[str, Any]]:
    """Per tenant: provisioned, details updated, tier changed, (some) offboarded; tenants interleaved."""
    per_tenant = []
    for n in range(TENANTS):
        tenant = f"fault-tenant-{n}"
        events = [
            for_tenant("00_onboarding_request.json", tenant),
            for_tenant("01_provision_success.json", tenant),
            for_tenant("04_tenant_updated.json", tenant),
            for_tenant("05_tenant_updated_tier_change.json", tenant),
        ]
        if n >= TENANTS - OFFBOARDED:
            events.append(for_tenant("06_tenant_deleted.json", tenant))
        per_tenant.append(events)
    return [events[i] for i in range(6) for events in per_tenant if i < len(events)]


def test_random_stripe_faults_and_dynamodb_throttling_end_exactly_once_or_with_a_clear_reason(
    moto_endpoint: str,
    emulator_url: str,
    throttle_hook: Callable[[DynamoThrottle], None],
    later: Callable[[float], None],
) -> None:
    from tests.support.harness import stack_on

    with stack_on(moto_endpoint, emulator_url, {"LEASE_SECONDS": str(LEASE_SECONDS)}) as stack:
        routes = event_routes(stack.resources.parameter_overrides())
        rng = random.Random(DYNAMODB_SEED)
        throttle = DynamoThrottle(lambda operation, params: rng.random() < DYNAMODB_THROTTLE_RATE)
        throttle_hook(throttle)
        kinds = ["429", "500", "503", "drop", "drop_after"]
        stack.emulator.fault(random={"rate": STRIPE_FAULT_RATE, "seed": STRIPE_SEED, "kinds": kinds})

        events = lifecycle_events()
        done: dict[str, dict[str, Any]] = {}
        dead: dict[str, str] = {}
        redeliveries = 0
        for event in events:
            [route] = routes_for(event, routes)
            for attempt in range(ATTEMPTS):
                if attempt:
                    redeliveries += 1
                    # Lambda retries a failed asynchronous invocation after a minute or more; by then the
                    # dead attempt's lease (LEASE_SECONDS) and in-progress record have expired.
                    later(LEASE_SECONDS + 1)
                    time.sleep(0.06)
                try:
                    done[event["id"]] = invoke(stack, route.function_id, event)
                    dead.pop(event["id"], None)
                    break
                except Exception as error:
                    dead[event["id"]] = f"{type(error).__name__}: {error}"

        stack.emulator.admin("DELETE", "faults")
        log = stack.emulator.admin("GET", "requests")["data"]
        stripe_faults = sum(1 for entry in log if entry.get("fault"))
        customers = customers_by_tenant(stack)
        accounts = {
            item["tenantId"]["S"]: stack.account(item["tenantId"]["S"])
            for item in stack.table_items("AccountsTable")
        }
        live = {s["customer"] for s in subscriptions(stack) if s["status"] != "canceled"}
        print(
            f"\nfaults: {len(events)} events for {TENANTS} tenants; {stripe_faults} Stripe faults "
            f"(rate {STRIPE_FAULT_RATE}, seed {STRIPE_SEED}) and {sum(throttle.throttled.values())} DynamoDB "
            f"throttles (rate {DYNAMODB_THROTTLE_RATE}, seed {DYNAMODB_SEED}) injected -> {redeliveries} "
            f"redeliveries, {len(done)} done, {len(dead)} dead-lettered; "
            f"{sum(len(c) for c in customers.values())} customers, {len(accounts)} accounts"
        )

        assert stripe_faults > 0
        assert sum(throttle.throttled.values()) > 0
        for reason in dead.values():  # a clear reason: the platform's retry error, never a bug
            assert reason.startswith(("TransientBillingError: ", "IdempotencyPersistenceLayerError: ")), (
                reason
            )
        assert all(answer.get("result") not in ("failed", "rejected") for answer in done.values()), done
        tenant_events = Counter(tenant_of(event) for event in events if event["id"] in done)
        complete = {
            tenant
            for tenant, n in tenant_events.items()
            if n == len([e for e in events if tenant_of(e) == tenant])
        }
        for tenant in (f"fault-tenant-{n}" for n in range(TENANTS)):
            found = customers.get(tenant, [])
            account = accounts.get(tenant)
            assert len(found) <= 1, f"{tenant}: {len(found)} customers"
            if found:
                assert account is not None, f"{tenant} has a customer but no account record"
            if account is not None and account["customer_id"] is not None:
                assert [c["id"] for c in found] == [account["customer_id"]], (
                    f"{tenant}: account and Stripe disagree"
                )
            if tenant not in complete:
                continue
            assert account is not None
            assert account["lease"] is None, f"{tenant}: a lease is left behind"
            if int(tenant.rsplit("-", 1)[1]) >= TENANTS - OFFBOARDED:
                assert account["status"] == "closed"
                assert not found or found[0]["id"] not in live
            else:
                assert account["status"] == "open"
                assert account["applied_tier"] == "premium"
                assert len(found) == 1, f"{tenant} is open without its customer"
                assert found[0]["email"] == "accounts@acme.test"
                assert found[0]["id"] in live
        assert len(complete) >= TENANTS - 1, "almost every tenant's events get through six deliveries"


def test_a_retry_within_the_lease_of_a_dead_attempt_still_finishes_the_opening(
    stack: Stack, throttle_hook: Callable[[DynamoThrottle], None], later: Callable[[float], None]
) -> None:
    accounts_table = stack.resources.tables["AccountsTable"]
    puts: Counter[str] = Counter()

    def release_of_first_attempt(operation: str, params: dict[str, Any]) -> bool:
        if operation != "PutItem" or params.get("TableName") != accounts_table:
            return False
        puts["accounts"] += 1
        return puts["accounts"] == 2  # 1: record the fact and take the lease; 2: the release after failing

    stack.deliver(for_tenant("00_onboarding_request.json", "dead-attempt-tenant"))
    throttle_hook(DynamoThrottle(release_of_first_attempt))
    stack.emulator.fault(route="POST /v1/subscriptions", status=503, count=3)  # beyond the SDK's 2 retries
    event = for_tenant("01_provision_success.json", "dead-attempt-tenant")
    [route] = routes_for(event, event_routes(stack.resources.parameter_overrides()))
    with pytest.raises(Exception, match=r"503"):
        invoke(stack, route.function_id, event)

    answers: list[str] = []
    for _ in range(2):  # Lambda's two retries of a failed asynchronous invocation, a minute apart
        later(61)
        time.sleep(0.06)
        try:
            answers.append(str(invoke(stack, route.function_id, event)["result"]))
            break
        except Exception as error:
            answers.append(type(error).__name__)

    account = stack.account("dead-attempt-tenant")
    finished = account is not None and account["status"] == "open" and account["subscription_id"] is not None
    still_retrying = answers[-1] not in ("applied", "unchanged", "recorded", "in_flight", "ignored")
    assert finished or still_retrying, (answers, account and account["status"])
