"""Fault injection, rate limiting, counting and the admin API."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
import stripe
from stripe._http_client import HTTPClient

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


def test_injected_429_is_rate_limit_error_and_retried_when_told(
    emulator: StripeEmulator, admin: Admin
) -> None:
    admin.fault(route="GET /v1/customers", status=429, should_retry=False)
    with pytest.raises(stripe.RateLimitError) as info:
        make_client(emulator.url, retries=2).v1.customers.list()
    assert info.value.json_body is not None
    assert info.value.json_body["error"]["code"] == "rate_limit"
    assert info.value.headers is not None
    assert info.value.headers.get("Stripe-Should-Retry") == "false"
    admin.fault(route="GET /v1/customers", status=429, should_retry=True)
    assert make_client(emulator.url, retries=2).v1.customers.list().data == []


def test_rate_limit_returns_429_that_the_sdk_retries(
    emulator: StripeEmulator, admin: Admin, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a limit of 2 requests a second, used up (and SDK backoff long enough to outlast it)
    monkeypatch.setattr(HTTPClient, "INITIAL_DELAY", 0.1)
    monkeypatch.setattr(HTTPClient, "MAX_DELAY", 0.3)
    admin.call("POST", "/_emulator/rate_limit", {"per_second": 2})
    burst = make_client(emulator.url, retries=0)
    for _ in range(2):
        burst.v1.customers.list()
    with pytest.raises(stripe.RateLimitError):
        burst.v1.customers.list()
    # When a client with retries makes another request, it is limited then retried through
    make_client(emulator.url, retries=10).v1.customers.list()
    statuses = [r["status"] for r in admin.requests()]
    assert statuses.count(429) >= 2
    assert statuses[-1] == 200


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
