"""``GET /v1/events`` as Stripe documents it (what a reconciler replays a webhook gap with), through
the real stripe SDK. The clock starts at T0 = 2026-01-01T00:00:00Z."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import stripe

from .conftest import DAY, T0, Admin


@pytest.fixture
def client(stripe_client: stripe.StripeClient, admin: Admin) -> stripe.StripeClient:
    admin.set_time(T0)
    return stripe_client


def _customers(client: stripe.StripeClient, admin: Admin, count: int, step: int = 10) -> list[str]:
    """``count`` customer.created events, ``step`` seconds apart; their event ids, oldest first."""
    for _ in range(count):
        client.v1.customers.create()
        admin.advance(step)
    return [e["id"] for e in admin.events("customer.created")]


def test_events_are_newest_first_and_page_both_ways(client: stripe.StripeClient, admin: Admin) -> None:
    ids = _customers(client, admin, 5)
    first = client.v1.events.list(params={"limit": 2})
    assert [e.id for e in first.data] == ids[::-1][:2]
    assert first.has_more is True
    second = client.v1.events.list(params={"limit": 2, "starting_after": first.data[-1].id})
    assert [e.id for e in second.data] == ids[::-1][2:4]
    back = client.v1.events.list(params={"limit": 2, "ending_before": second.data[0].id})
    assert [e.id for e in back.data] == [e.id for e in first.data]


def test_ending_before_the_last_seen_event_gives_what_came_after_it(
    client: stripe.StripeClient, admin: Admin
) -> None:
    # Given a receiver that last applied the second of five events
    ids = _customers(client, admin, 5)
    # When it pages backwards from that event to the newest
    seen: list[str] = []
    cursor = ids[1]
    while True:
        page = client.v1.events.list(params={"limit": 2, "ending_before": cursor})
        if not page.data:
            break
        seen = [e.id for e in page.data] + seen
        cursor = page.data[0].id
    # Then it gets exactly the three it missed
    assert seen == ids[::-1][:3]


def test_a_cursor_may_name_an_event_the_filter_leaves_out(client: stripe.StripeClient, admin: Admin) -> None:
    ids = _customers(client, admin, 3)
    price = client.v1.prices.create(
        params={
            "currency": "usd",
            "unit_amount": 100,
            "recurring": {"interval": "month"},
            "product_data": {"name": "P"},
        }
    )
    [price_event] = [e for e in admin.events() if e["data"]["object"]["id"] == price.id]
    older = client.v1.events.list(params={"type": "customer.created", "starting_after": price_event["id"]})
    assert [e.id for e in older.data] == ids[::-1]


def test_created_filters_bound_the_window(client: stripe.StripeClient, admin: Admin) -> None:
    ids = _customers(client, admin, 4, step=10)  # created T0, T0+10, T0+20, T0+30
    window = client.v1.events.list(params={"created": {"gt": T0, "lte": T0 + 20}})
    assert [e.id for e in window.data] == [ids[2], ids[1]]
    exact = client.v1.events.list(params={"created": T0 + 30})
    assert [e.id for e in exact.data] == [ids[3]]


def test_type_takes_a_wildcard_and_types_a_list(client: stripe.StripeClient, admin: Admin) -> None:
    customer = client.v1.customers.create()
    client.v1.customers.update(customer.id, params={"name": "Renamed"})
    client.v1.products.create(params={"name": "P"})
    assert {e.type for e in client.v1.events.list(params={"type": "customer.*"}).data} == {
        "customer.created",
        "customer.updated",
    }
    listed = client.v1.events.list(params={"types": ["customer.updated", "product.created"]})
    assert [e.type for e in listed.data] == ["product.created", "customer.updated"]


def test_type_and_types_together_are_refused(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.events.list(params={"type": "customer.created", "types": ["customer.updated"]})
    assert info.value.param == "types"


def test_more_than_twenty_types_are_refused(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.events.list(params={"types": [f"type.{i}" for i in range(21)]})


def test_events_older_than_thirty_days_are_gone(client: stripe.StripeClient, admin: Admin) -> None:
    [old] = _customers(client, admin, 1)
    admin.advance(30 * DAY)
    client.v1.customers.create()
    assert old not in [e.id for e in client.v1.events.list(params={"limit": 100}).data]
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.events.retrieve(old)


@pytest.fixture
def receiver() -> Iterator[dict[str, Any]]:
    """A webhook receiver on loopback answering each delivery with ``state["status"]``."""
    state: dict[str, Any] = {"status": 200, "received": []}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            state["received"].append(self.rfile.read(length))
            self.send_response(state["status"])
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}/webhook"
    yield state
    server.shutdown()
    server.server_close()


def test_delivery_success_tells_delivered_events_from_pending_ones(
    client: stripe.StripeClient, admin: Admin, receiver: dict[str, Any]
) -> None:
    # Given an endpoint registered before two events
    endpoint = admin.call("POST", "/_emulator/webhook_endpoints", {"url": receiver["url"]})
    delivered, failed = (client.v1.customers.create().id for _ in range(2))
    event_of = {e["data"]["object"]["id"]: e["id"] for e in admin.events("customer.created")}
    # When the first is delivered and the second's delivery fails
    admin.call(
        "POST", f"/_emulator/webhook_endpoints/{endpoint['id']}/deliver", {"event_ids": [event_of[delivered]]}
    )
    receiver["status"] = 500
    admin.call(
        "POST", f"/_emulator/webhook_endpoints/{endpoint['id']}/deliver", {"event_ids": [event_of[failed]]}
    )
    # Then delivery_success sorts them, and pending_webhooks counts what is still to be delivered
    ok = client.v1.events.list(params={"delivery_success": True}).data
    pending = client.v1.events.list(params={"delivery_success": False}).data
    assert [e.id for e in ok] == [event_of[delivered]]
    assert [e.id for e in pending] == [event_of[failed]]
    assert pending[0].pending_webhooks == 1
    assert client.v1.events.retrieve(event_of[delivered]).pending_webhooks == 0
