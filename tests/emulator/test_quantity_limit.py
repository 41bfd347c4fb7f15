"""The per-subscription limit on quantity updates (200 an hour by default; lowered here through
the admin settings), counted over both ways of changing a quantity."""

from __future__ import annotations

import pytest
import stripe

from .conftest import T0, Admin


def test_quantity_limit_hit_at_configured_count(no_retry_client: stripe.StripeClient, admin: Admin) -> None:
    client = no_retry_client
    # Given a limit of 3 quantity updates per subscription per hour
    admin.set_time(T0)
    assert (
        admin.call("POST", "/_emulator/settings", {"subscription_quantity_updates_per_hour": 3})[
            "subscription_quantity_updates_per_hour"
        ]
        == 3
    )
    price = client.v1.prices.create(
        params={
            "currency": "usd",
            "unit_amount": 1000,
            "recurring": {"interval": "month"},
            "product_data": {"name": "Seat"},
        }
    )
    customer = client.v1.customers.create(params={"email": "seats@example.com"})
    sub = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": price.id, "quantity": 1}],
            "collection_method": "send_invoice",
            "days_until_due": 30,
        }
    )
    item = sub["items"].data[0]
    # When the quantity is changed three times (both endpoints count) within the hour
    client.v1.subscription_items.update(item.id, params={"quantity": 2})
    client.v1.subscriptions.update(sub.id, params={"items": [{"id": item.id, "quantity": 3}]})
    client.v1.subscription_items.update(item.id, params={"quantity": 4})
    # Then a fourth is refused with Stripe's rate-limit error and the quantity stays as it was
    with pytest.raises(stripe.RateLimitError) as info:
        client.v1.subscription_items.update(item.id, params={"quantity": 5})
    assert info.value.http_status == 429
    error = info.value.json_body["error"]  # type: ignore[index]  # the SDK keeps code only in the body here
    assert (error["type"], error["code"]) == ("invalid_request_error", "rate_limit")
    assert client.v1.subscription_items.retrieve(item.id).quantity == 4
    # And updates without a quantity still go through; an hour later quantities can change again
    client.v1.subscriptions.update(sub.id, params={"metadata": {"k": "v"}})
    admin.advance(3600)
    assert client.v1.subscription_items.update(item.id, params={"quantity": 5}).quantity == 5
