"""Fixtures: one emulator for the session (reset per test), a stripe client, an admin client."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import stripe
from stripe._http_client import HTTPClient

from stripe_emulator import StripeEmulator

# A fixed instant (2026-01-01T00:00:00Z) for tests that check time-based amounts.
T0 = 1767225600
DAY = 86400


class Admin:
    """The emulator's admin API over HTTP, as an out-of-process user would call it."""

    def __init__(self, url: str) -> None:
        self.url = url

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req) as resp:
            return json.loads(resp.read())

    def set_time(self, now: int) -> Any:
        return self.call("POST", "/_emulator/clock", {"now": now})

    def advance(self, seconds: int) -> Any:
        return self.call("POST", "/_emulator/clock", {"advance_seconds": seconds})

    def fault(self, **spec: Any) -> Any:
        return self.call("POST", "/_emulator/faults", spec)

    def counts(self, detail: bool = False) -> Any:
        return self.call("GET", "/_emulator/counts" + ("?detail=true" if detail else ""))

    def requests(self) -> list[dict[str, Any]]:
        return list(self.call("GET", "/_emulator/requests")["data"])

    def events(self, type: str | None = None) -> list[dict[str, Any]]:
        return list(self.call("GET", "/_emulator/events" + (f"?type={type}" if type else ""))["data"])


@pytest.fixture(scope="session")
def _server() -> Iterator[StripeEmulator]:
    with StripeEmulator() as emu:
        yield emu


@pytest.fixture
def emulator(_server: StripeEmulator) -> Iterator[StripeEmulator]:
    _server.reset()
    yield _server
    _server.reset()


@pytest.fixture(autouse=True)
def _fast_sdk_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK backs off 0.5 s+ between retries; shorten it so the suite stays fast."""
    monkeypatch.setattr(HTTPClient, "INITIAL_DELAY", 0.01)
    monkeypatch.setattr(HTTPClient, "MAX_DELAY", 0.1)


@pytest.fixture
def admin(emulator: StripeEmulator) -> Admin:
    return Admin(emulator.url)


def make_client(url: str, retries: int = 0, api_key: str = "sk_test_emulator") -> stripe.StripeClient:
    return stripe.StripeClient(api_key=api_key, base_addresses={"api": url}, max_network_retries=retries)


@pytest.fixture
def stripe_client(emulator: StripeEmulator) -> stripe.StripeClient:
    return make_client(emulator.url, retries=2)


@pytest.fixture
def no_retry_client(emulator: StripeEmulator) -> stripe.StripeClient:
    return make_client(emulator.url, retries=0)
