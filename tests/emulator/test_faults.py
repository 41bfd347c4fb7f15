"""Fault injection, rate limiting, counting and the admin API."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
import stripe

from stripe_emulator import StripeEmulator

from .conftest import Admin, make_client


def test_injected_500_then_sdk_retry_creates_exactly_one_object(
    stripe_client: stripe.StripeClient, admin: Admin
) -> None:
    # Given the next customer create fails with a 500 before reaching the endpoint
    admin.fault(route="POST /v1/customers", status=500, count=1)
    # When the SDK (max_network_retries=2) creates a customer
    customer = stripe_client.v1.customers.create(params={"email": "a@example.com"})
    # Then it succeeded on the retry, exactly one customer exists and counts show it
    assert len(stripe_client.v1.customers.list().data) == 1
    assert customer.email == "a@example.com"
    detail = admin.counts(detail=True)
    assert detail["counts"]["POST /v1/customers"] == 1
    assert detail["including_faults"]["POST /v1/customers"] == 2
    assert admin.counts()["POST /v1/customers"] == 1


def test_injected_500_without_retries_raises_api_error(
    no_retry_client: stripe.StripeClient, admin: Admin
) -> None:
    admin.fault(route="POST /v1/customers", status=500)
    with pytest.raises(stripe.APIError) as info:
        no_retry_client.v1.customers.create()
    assert info.value.http_status == 500
    assert no_retry_client.v1.customers.list().data == []


def test_lost_response_is_replayed_on_retry(stripe_client: stripe.StripeClient, admin: Admin) -> None:
    # Given the endpoint runs but the connection drops before the response is sent
    admin.fault(route="POST /v1/customers", drop_connection=True, stage="after_endpoint")
    # When the SDK creates a customer (it retries with the same idempotency key)
    customer = stripe_client.v1.customers.create(params={"name": "once"})
    # Then the retry is a replay of the saved response and only one customer exists
    assert [c.id for c in stripe_client.v1.customers.list().data] == [customer.id]
    log = [r for r in admin.requests() if r["route"] == "POST /v1/customers"]
    assert [r["replayed"] for r in log] == [False, True]


def test_endpoint_500_is_saved_under_the_idempotency_key(
    no_retry_client: stripe.StripeClient, admin: Admin
) -> None:
    # Given the endpoint itself fails once
    admin.fault(route="POST /v1/customers", status=500, stage="endpoint")
    with pytest.raises(stripe.APIError):
        no_retry_client.v1.customers.create(options={"idempotency_key": "k-500"})
    # When the same key is retried, Stripe replays the saved 500
    with pytest.raises(stripe.APIError) as info:
        no_retry_client.v1.customers.create(options={"idempotency_key": "k-500"})
    assert info.value.headers is not None
    assert info.value.headers.get("Idempotent-Replayed") == "true"


def test_injected_429_is_retried_only_when_told(emulator: StripeEmulator, admin: Admin) -> None:
    client = make_client(emulator.url, retries=2)

    def calls() -> int:
        return len([r for r in admin.requests() if r["route"] == "GET /v1/customers"])

    # A 429 fault with no should_retry is a plain rate limit: no header, the SDK does not retry it
    admin.fault(route="GET /v1/customers", status=429)
    with pytest.raises(stripe.RateLimitError) as info:
        client.v1.customers.list()
    assert info.value.json_body is not None
    assert info.value.json_body["error"]["code"] == "rate_limit"
    assert info.value.headers is not None
    assert "Stripe-Should-Retry" not in info.value.headers
    assert info.value.headers.get("Stripe-Rate-Limited-Reason") == "global-rate"
    assert calls() == 1
    # should_retry=False says so, and is not retried either
    admin.fault(route="GET /v1/customers", status=429, should_retry=False)
    with pytest.raises(stripe.RateLimitError) as info:
        client.v1.customers.list()
    assert info.value.headers is not None
    assert info.value.headers.get("Stripe-Should-Retry") == "false"
    assert calls() == 2
    # should_retry=True (how a test models a lock timeout) is retried through
    admin.fault(route="GET /v1/customers", status=429, should_retry=True)
    assert client.v1.customers.list().data == []
    assert [r["status"] for r in admin.requests()][-2:] == [429, 200]


def test_rate_limit_429_is_not_retried_by_the_sdk(emulator: StripeEmulator, admin: Admin) -> None:
    # Given a limit of 2 requests a second, used up
    admin.call("POST", "/_emulator/rate_limit", {"per_second": 2})
    burst = make_client(emulator.url, retries=0)
    for _ in range(2):
        burst.v1.customers.list()
    before = len(admin.requests())
    # When a client with plenty of retries makes another request
    with pytest.raises(stripe.RateLimitError) as info:
        make_client(emulator.url, retries=10).v1.customers.list()
    # Then it gets Stripe's rate-limit error, which does not invite a retry, and the SDK made one call
    assert info.value.http_status == 429
    assert info.value.json_body is not None
    assert info.value.json_body["error"]["code"] == "rate_limit"
    assert info.value.headers is not None
    assert "Stripe-Should-Retry" not in info.value.headers
    assert info.value.headers.get("Stripe-Rate-Limited-Reason") == "global-rate"
    assert [(r["status"], r["fault"]) for r in admin.requests()[before:]] == [(429, "rate_limit")]
    # And once the bucket has refilled (a token every 0.5 s), a request goes through
    time.sleep(0.6)
    assert make_client(emulator.url).v1.customers.list().data == []
    assert admin.requests()[-1]["status"] == 200


def test_random_lock_timeout_is_a_429_the_sdk_retries(emulator: StripeEmulator, admin: Admin) -> None:
    admin.fault(random={"rate": 1.0, "seed": 3, "kinds": ["lock_timeout"]})
    with pytest.raises(stripe.RateLimitError) as info:
        make_client(emulator.url, retries=2).v1.customers.list()
    assert info.value.http_status == 429
    assert info.value.json_body is not None
    assert info.value.json_body["error"]["code"] == "lock_timeout"
    assert info.value.json_body["error"]["message"].startswith("This object cannot be accessed right now")
    assert info.value.headers is not None
    assert info.value.headers.get("Stripe-Should-Retry") == "true"
    # The SDK retried it (1 + max_network_retries attempts, every one a lock timeout)
    assert [r["status"] for r in admin.requests()] == [429, 429, 429]


def test_global_latency_delays_requests_without_serialising_them(
    emulator: StripeEmulator, admin: Admin
) -> None:
    # Given 200 ms of latency on every API request
    assert admin.call("POST", "/_emulator/latency", {"ms": 200}) == {"ms": 200}
    assert admin.call("GET", "/_emulator/faults")["latency"] == {"ms": 200}
    client = make_client(emulator.url)
    # When one request is made, it takes at least that long
    started = time.monotonic()
    client.v1.customers.list()
    assert time.monotonic() - started >= 0.2
    # And 4 concurrent requests overlap instead of queueing behind each other
    clients = [make_client(emulator.url) for _ in range(4)]
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda c: c.v1.customers.list().data, clients))
    elapsed = time.monotonic() - started
    assert results == [[]] * 4
    assert 0.2 <= elapsed < 0.6
    # Then reset turns it off
    admin.call("POST", "/_emulator/reset")
    assert admin.call("GET", "/_emulator/faults")["latency"] is None
    started = time.monotonic()
    client.v1.customers.list()
    assert time.monotonic() - started < 0.2


@pytest.mark.parametrize("ms", [-1, "200", True, [200]])
def test_latency_rejects_values_that_are_not_non_negative_numbers(admin: Admin, ms: object) -> None:
    with pytest.raises(urllib.error.HTTPError) as info:
        admin.call("POST", "/_emulator/latency", {"ms": ms})
    assert info.value.code == 400
    error = json.loads(info.value.read())["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", "ms")
    assert admin.call("GET", "/_emulator/faults")["latency"] is None


def test_latency_of_zero_or_null_turns_it_off(admin: Admin) -> None:
    admin.call("POST", "/_emulator/latency", {"ms": 50})
    assert admin.call("POST", "/_emulator/latency", {"ms": 0}) == {"ms": None}
    assert admin.call("GET", "/_emulator/faults")["latency"] is None
    admin.call("POST", "/_emulator/latency", {"ms": 50})
    admin.call("POST", "/_emulator/latency", {"ms": None})
    assert admin.call("GET", "/_emulator/faults")["latency"] is None


def test_unrecognized_url_is_invalid_request_error(no_retry_client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as info:
        no_retry_client.raw_request("get", "/v1/nothing_here")
    assert info.value.http_status == 404


def test_faults_are_cleared_by_delete(no_retry_client: stripe.StripeClient, admin: Admin) -> None:
    admin.fault(route="*", status=503, count=5)
    admin.call("DELETE", "/_emulator/faults")
    assert no_retry_client.v1.customers.list().data == []


def test_random_faults_are_reproducible_by_seed(emulator: StripeEmulator, admin: Admin) -> None:
    def run() -> list[int | None]:
        emulator.reset()
        admin.fault(random={"rate": 0.5, "seed": 7, "kinds": ["500", "429"]})
        client = make_client(emulator.url)
        for _ in range(10):
            with contextlib.suppress(stripe.StripeError):
                client.v1.customers.list()
        return [r["status"] for r in admin.requests()]

    first = run()
    assert first == run()
    assert 200 in first
    assert any(s in (429, 500) for s in first)


def test_state_dump_and_reset(no_retry_client: stripe.StripeClient, admin: Admin) -> None:
    no_retry_client.v1.customers.create(params={"email": "x@example.com"})
    assert [c["email"] for c in admin.call("GET", "/_emulator/state")["customers"]] == ["x@example.com"]
    admin.call("POST", "/_emulator/reset")
    assert admin.call("GET", "/_emulator/state")["customers"] == []
    assert admin.requests() == []


def test_admin_rejects_bad_fault_spec(admin: Admin) -> None:
    with pytest.raises(urllib.error.HTTPError) as info:
        admin.fault(route="*", status=200)
    assert info.value.code == 400


def test_cli_prints_listening_line_and_stops_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "stripe_emulator", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("stripe-emulator listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        with urllib.request.urlopen(url + "/_emulator/health") as resp:
            assert json.loads(resp.read()) == {"ok": True}
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_clearing_requests_resets_counts_but_keeps_state(
    no_retry_client: stripe.StripeClient, admin: Admin
) -> None:
    no_retry_client.v1.customers.create()
    admin.call("DELETE", "/_emulator/requests")
    assert admin.counts() == {}
    assert len(no_retry_client.v1.customers.list().data) == 1
