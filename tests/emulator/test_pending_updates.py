"""Pending updates (``payment_behavior=pending_if_incomplete``) and create_preview's agreement with
the real update, through the real stripe SDK.

The clock is fixed at T0 = 2026-01-01T00:00:00Z; a $30 monthly subscription is upgraded to $60 ten
days in (21 of 31 days left): credit -2032, charge +4065, 2033 due.
"""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from .conftest import DAY, T0, Admin

HOUR = 3600


@pytest.fixture
def client(stripe_client: stripe.StripeClient, admin: Admin) -> stripe.StripeClient:
    admin.set_time(T0)
    return stripe_client


def _price(client: stripe.StripeClient, amount: int, name: str) -> stripe.Price:
    return client.v1.prices.create(
        params={
            "currency": "usd",
            "unit_amount": amount,
            "recurring": {"interval": "month"},
            "product_data": {"name": name},
        }
    )


def _paying_subscription(
    client: stripe.StripeClient, price: stripe.Price, **extra: Any
) -> stripe.Subscription:
    """An active, paid charge_automatically subscription whose customer pays with a good card."""
    customer = client.v1.customers.create(
        params={"invoice_settings": {"default_payment_method": "pm_card_visa"}}
    )
    params: dict[str, Any] = {"customer": customer.id, "items": [{"price": price.id, "quantity": 1}], **extra}
    sub = client.v1.subscriptions.create(params=params)  # type: ignore[arg-type]
    assert sub.status == "active"
    return sub


def _card(client: stripe.StripeClient, sub: stripe.Subscription, payment_method: str) -> None:
    client.v1.customers.update(
        str(sub.customer), params={"invoice_settings": {"default_payment_method": payment_method}}
    )


def _upgrade(
    client: stripe.StripeClient, sub: stripe.Subscription, price: stripe.Price, **extra: Any
) -> stripe.Subscription:
    params: dict[str, Any] = {
        "items": [{"id": sub.items.data[0].id, "price": price.id}],
        "proration_behavior": "always_invoice",
        "payment_behavior": "pending_if_incomplete",
        **extra,
    }
    return client.v1.subscriptions.update(sub.id, params=params)  # type: ignore[arg-type]


@pytest.fixture
def declined_upgrade(
    client: stripe.StripeClient, admin: Admin
) -> tuple[stripe.Subscription, stripe.Subscription, stripe.Price, stripe.Price]:
    """Ten days in, an always_invoice upgrade whose payment the customer's card declines."""
    basic, pro = _price(client, 3000, "Basic"), _price(client, 6000, "Pro")
    sub = _paying_subscription(client, basic)
    _card(client, sub, "pm_card_chargeDeclined")
    admin.advance(10 * DAY)
    return sub, _upgrade(client, sub, pro), basic, pro


def test_declined_upgrade_keeps_items_and_holds_a_pending_update(
    client: stripe.StripeClient, admin: Admin, declined_upgrade: Any
) -> None:
    # Given an always_invoice upgrade with pending_if_incomplete whose payment is declined
    sub, updated, basic, pro = declined_upgrade
    # Then the subscription keeps its price and status, and the change waits in pending_update
    assert updated.items.data[0].price.id == basic.id
    assert updated.status == "active"
    pending = updated.pending_update
    assert pending is not None
    assert pending.expires_at == T0 + 10 * DAY + 23 * HOUR
    assert pending.subscription_items is not None
    assert [i.price.id for i in pending.subscription_items] == [pro.id]
    assert pending.trial_end is None
    assert pending.billing_cycle_anchor is None
    # And latest_invoice is the new open invoice for the prorations, with a page to pay it on
    invoice = client.v1.invoices.retrieve(str(updated.latest_invoice))
    assert invoice.id != sub.latest_invoice
    assert (invoice.status, invoice.amount_due, invoice.billing_reason) == (
        "open",
        2033,
        "subscription_update",
    )
    assert invoice.hosted_invoice_url
    # And the events say so: the failed payment, and the subscription's new pending_update
    assert len(admin.events("invoice.payment_failed")) == 1
    updates = admin.events("customer.subscription.updated")
    assert updates[0]["data"]["previous_attributes"] == {
        "latest_invoice": sub.latest_invoice,
        "pending_update": None,
    }
    assert all(e["data"]["object"]["items"]["data"][0]["price"]["id"] == basic.id for e in updates)


def test_upgrade_without_any_payment_method_is_pending_too(client: stripe.StripeClient, admin: Admin) -> None:
    basic, pro = _price(client, 3000, "Basic"), _price(client, 6000, "Pro")
    sub = _paying_subscription(client, basic)
    _card(client, sub, "")
    admin.advance(10 * DAY)
    updated = _upgrade(client, sub, pro)
    assert updated.pending_update is not None
    assert updated.items.data[0].price.id == basic.id


def test_paid_upgrade_applies_at_once(client: stripe.StripeClient, admin: Admin) -> None:
    # Given a customer whose card pays
    basic, pro = _price(client, 3000, "Basic"), _price(client, 6000, "Pro")
    sub = _paying_subscription(client, basic)
    admin.advance(10 * DAY)
    # When upgrading with pending_if_incomplete
    updated = _upgrade(client, sub, pro)
    # Then the change is made as without it, and its invoice is paid
    assert updated.pending_update is None
    assert updated.items.data[0].price.id == pro.id
    invoice = client.v1.invoices.retrieve(str(updated.latest_invoice))
    assert (invoice.status, invoice.amount_paid) == ("paid", 2033)


def test_update_without_an_invoice_applies_at_once(client: stripe.StripeClient, admin: Admin) -> None:
    basic, pro = _price(client, 3000, "Basic"), _price(client, 6000, "Pro")
    sub = _paying_subscription(client, basic)
    _card(client, sub, "pm_card_chargeDeclined")
    admin.advance(10 * DAY)
    updated = _upgrade(client, sub, pro, proration_behavior="create_prorations")
    assert updated.pending_update is None
    assert updated.items.data[0].price.id == pro.id


def test_paying_the_invoice_later_applies_the_pending_update(
    client: stripe.StripeClient, admin: Admin, declined_upgrade: Any
) -> None:
    # Given a pending upgrade
    sub, updated, _, pro = declined_upgrade
    admin.advance(2 * HOUR)
    # When the customer gets a good card and the invoice is paid
    _card(client, sub, "pm_card_visa")
    client.v1.invoices.pay(str(updated.latest_invoice))
    # Then the upgrade is made and pending_update is cleared
    after = client.v1.subscriptions.retrieve(sub.id)
    assert after.items.data[0].price.id == pro.id
    assert after.pending_update is None
    assert after.status == "active"
    assert len(admin.events("customer.subscription.pending_update_applied")) == 1
    applied = admin.events("customer.subscription.updated")[-1]
    assert applied["data"]["object"]["items"]["data"][0]["price"]["id"] == pro.id
    assert "pending_update" in applied["data"]["previous_attributes"]


def test_a_second_decline_leaves_the_pending_update_with_its_expiry(
    client: stripe.StripeClient, admin: Admin, declined_upgrade: Any
) -> None:
    sub, updated, basic, _ = declined_upgrade
    admin.advance(HOUR)
    with pytest.raises(stripe.CardError):
        client.v1.invoices.pay(str(updated.latest_invoice))
    after = client.v1.subscriptions.retrieve(sub.id)
    assert after.pending_update is not None
    assert after.pending_update.expires_at == T0 + 10 * DAY + 23 * HOUR
    assert (after.status, after.items.data[0].price.id) == ("active", basic.id)


def test_expiry_voids_the_invoice_and_drops_the_pending_update(
    client: stripe.StripeClient, admin: Admin, declined_upgrade: Any
) -> None:
    # Given a pending upgrade
    sub, updated, basic, _ = declined_upgrade
    # When its expires_at passes on the clock
    admin.advance(23 * HOUR)
    # Then the update is discarded and its invoice voided
    after = client.v1.subscriptions.retrieve(sub.id)
    assert after.pending_update is None
    assert after.items.data[0].price.id == basic.id
    assert client.v1.invoices.retrieve(str(updated.latest_invoice)).status == "void"
    assert len(admin.events("customer.subscription.pending_update_expired")) == 1
    # And paying it is no longer possible
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.pay(str(updated.latest_invoice))


def test_expiry_is_the_period_end_when_that_comes_first(client: stripe.StripeClient, admin: Admin) -> None:
    basic, pro = _price(client, 3000, "Basic"), _price(client, 6000, "Pro")
    sub = _paying_subscription(client, basic)
    _card(client, sub, "pm_card_chargeDeclined")
    admin.advance(31 * DAY - 5 * HOUR)  # five hours before the period ends
    updated = _upgrade(client, sub, pro)
    assert updated.pending_update is not None
    assert updated.pending_update.expires_at == T0 + 31 * DAY


def test_send_invoice_subscriptions_refuse_pending_updates(client: stripe.StripeClient) -> None:
    basic, pro = _price(client, 3000, "Basic"), _price(client, 6000, "Pro")
    customer = client.v1.customers.create()
    sub = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": basic.id}],
            "collection_method": "send_invoice",
            "days_until_due": 30,
        }
    )
    with pytest.raises(stripe.InvalidRequestError) as info:
        _upgrade(client, sub, pro)
    assert info.value.param == "payment_behavior"
    assert client.v1.subscriptions.retrieve(sub.id).items.data[0].price.id == basic.id


@pytest.mark.parametrize(
    ("extra", "param"),
    [({"description": "x"}, "description"), ({"days_until_due": 3}, "days_until_due")],
)
def test_parameters_pending_updates_do_not_support_are_refused(
    client: stripe.StripeClient, extra: dict[str, Any], param: str
) -> None:
    basic, pro = _price(client, 3000, "Basic"), _price(client, 6000, "Pro")
    sub = _paying_subscription(client, basic)
    with pytest.raises(stripe.InvalidRequestError) as info:
        _upgrade(client, sub, pro, **extra)
    assert info.value.param == param


def test_item_parameters_pending_updates_do_not_support_are_refused(client: stripe.StripeClient) -> None:
    basic, pro = _price(client, 3000, "Basic"), _price(client, 6000, "Pro")
    sub = _paying_subscription(client, basic)
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.subscriptions.update(
            sub.id,
            params={
                "items": [{"id": sub.items.data[0].id, "price": pro.id, "metadata": {"k": "v"}}],
                "payment_behavior": "pending_if_incomplete",
            },
        )
    assert info.value.param == "items[0][metadata]"


def test_subscription_item_update_can_be_pending(client: stripe.StripeClient, admin: Admin) -> None:
    basic = _price(client, 3000, "Basic")
    sub = _paying_subscription(client, basic)
    _card(client, sub, "pm_card_chargeDeclined")
    admin.advance(10 * DAY)
    client.v1.subscription_items.update(
        sub.items.data[0].id,
        params={
            "quantity": 3,
            "proration_behavior": "always_invoice",
            "payment_behavior": "pending_if_incomplete",
        },
    )
    after = client.v1.subscriptions.retrieve(sub.id)
    assert after.items.data[0].quantity == 1
    assert after.pending_update is not None
    assert after.pending_update.subscription_items is not None
    assert after.pending_update.subscription_items[0].quantity == 3


# create_preview agrees with the update it previews ---------------------------------------------
@pytest.mark.parametrize(
    ("behavior", "new_amount", "quantity"),
    [
        ("always_invoice", 7001, 3),
        ("create_prorations", 7001, 3),
        ("always_invoice", 999, 1),  # a downgrade: a credit, nothing due
        ("create_prorations", 999, 1),
    ],
)
def test_preview_amounts_equal_the_real_update_to_the_cent(
    client: stripe.StripeClient, admin: Admin, behavior: str, new_amount: int, quantity: int
) -> None:
    # Given a price (and quantity) change, previewed at a proration_date two days back
    basic, other = _price(client, 2999, "Basic"), _price(client, new_amount, "Other")
    sub = _paying_subscription(client, basic)
    admin.advance(12 * DAY + 7 * HOUR + 13)
    proration_date = T0 + 10 * DAY + 5 * HOUR + 59
    items = [{"id": sub.items.data[0].id, "price": other.id, "quantity": quantity}]
    preview = client.v1.invoices.create_preview(
        params={
            "subscription": sub.id,
            "subscription_details": {
                "items": items,  # type: ignore[typeddict-item]
                "proration_date": proration_date,
                "proration_behavior": behavior,  # type: ignore[typeddict-item]
            },
        }
    )
    # When the same update is made for real
    updated = client.v1.subscriptions.update(
        sub.id,
        params={"items": items, "proration_date": proration_date, "proration_behavior": behavior},  # type: ignore[typeddict-item]
    )
    real = (
        client.v1.invoices.retrieve(str(updated.latest_invoice))
        if behavior == "always_invoice"
        else client.v1.invoices.create_preview(params={"subscription": sub.id})
    )
    # Then every line and the totals agree to the cent
    assert sorted(line.amount for line in preview.lines.data) == sorted(
        line.amount for line in real.lines.data
    )
    assert (preview.subtotal, preview.total, preview.amount_due) == (
        real.subtotal,
        real.total,
        real.amount_due,
    )
    assert len(preview.lines.data) == (2 if behavior == "always_invoice" else 3)
