"""The clock's work costs in proportion to what changed, not to how many objects the emulator holds:
each object's next due time is indexed, and recomputed only when the object changes."""

from __future__ import annotations

import pytest
import stripe

from stripe_emulator import StripeEmulator

from .conftest import DAY, T0, Admin

SUBSCRIPTIONS = 60


@pytest.fixture
def client(stripe_client: stripe.StripeClient, admin: Admin) -> stripe.StripeClient:
    admin.set_time(T0)
    return stripe_client


@pytest.fixture
def many(client: stripe.StripeClient) -> list[stripe.Subscription]:
    price = client.v1.prices.create(
        params={
            "currency": "usd",
            "unit_amount": 1000,
            "recurring": {"interval": "month"},
            "product_data": {"name": "P"},
        }
    )
    customer = client.v1.customers.create(
        params={"invoice_settings": {"default_payment_method": "pm_card_visa"}}
    )
    return [
        client.v1.subscriptions.create(params={"customer": customer.id, "items": [{"price": price.id}]})
        for _ in range(SUBSCRIPTIONS)
    ]


def test_a_request_that_changes_nothing_recomputes_no_due_time(
    emulator: StripeEmulator, client: stripe.StripeClient, many: list[stripe.Subscription]
) -> None:
    before = emulator.emulator.due.refreshes
    client.v1.subscriptions.list(params={"limit": 100})
    assert emulator.emulator.due.refreshes == before


def test_changing_one_subscription_recomputes_a_few_due_times(
    emulator: StripeEmulator, client: stripe.StripeClient, many: list[stripe.Subscription]
) -> None:
    before = emulator.emulator.due.refreshes
    client.v1.subscriptions.update(many[0].id, params={"metadata": {"k": "v"}})
    assert 0 < emulator.emulator.due.refreshes - before <= 3


def test_moving_the_clock_renews_every_subscription_once(
    emulator: StripeEmulator, client: stripe.StripeClient, many: list[stripe.Subscription], admin: Admin
) -> None:
    admin.set_time(T0 + 31 * DAY)
    renewals = [
        e
        for e in admin.events("invoice.created")
        if e["data"]["object"]["billing_reason"] == "subscription_cycle"
    ]
    assert len(renewals) == SUBSCRIPTIONS
