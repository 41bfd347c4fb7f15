"""What asks for the customer: payments that need authentication (3D Secure) and trials about to
end, through the real stripe SDK. The clock starts at T0 = 2026-01-01T00:00:00Z."""

from __future__ import annotations

import json
import urllib.request

import pytest
import stripe

from .conftest import DAY, T0, Admin

FEB1 = T0 + 31 * DAY


@pytest.fixture
def client(stripe_client: stripe.StripeClient, admin: Admin) -> stripe.StripeClient:
    admin.set_time(T0)
    return stripe_client


@pytest.fixture
def price(client: stripe.StripeClient) -> stripe.Price:
    return client.v1.prices.create(
        params={
            "currency": "usd",
            "unit_amount": 3000,
            "recurring": {"interval": "month"},
            "product_data": {"name": "B"},
        }
    )


def _customer(client: stripe.StripeClient, card: str | None = "pm_card_visa") -> stripe.Customer:
    if card is None:
        return client.v1.customers.create()
    return client.v1.customers.create(params={"invoice_settings": {"default_payment_method": card}})


def _types(admin: Admin) -> list[str]:
    return [e["type"] for e in admin.events()]


# payments needing authentication --------------------------------------------------------------
def test_a_renewal_needing_authentication_asks_for_action_with_the_hosted_invoice_url(
    client: stripe.StripeClient, price: stripe.Price, admin: Admin
) -> None:
    # Given a paid subscription whose customer then switches to a card that always needs 3D Secure
    customer = _customer(client)
    sub = client.v1.subscriptions.create(params={"customer": customer.id, "items": [{"price": price.id}]})
    client.v1.customers.update(
        customer.id, params={"invoice_settings": {"default_payment_method": "pm_card_authenticationRequired"}}
    )
    # When the renewal is charged off-session
    admin.set_time(FEB1)
    # Then the invoice stays open, Stripe asks for the customer's action, the subscription is past due
    renewed = client.v1.subscriptions.retrieve(sub.id)
    invoice = client.v1.invoices.retrieve(str(renewed.latest_invoice))
    assert invoice.status == "open"
    assert renewed.status == "past_due"
    [event] = admin.events("invoice.payment_action_required")
    assert event["data"]["object"]["id"] == invoice.id
    assert event["data"]["object"]["hosted_invoice_url"] == invoice.hosted_invoice_url
    assert str(invoice.hosted_invoice_url).startswith("https://invoice.stripe.com/")
    # When the customer authenticates on the hosted page (the admin hook pays the invoice)
    req = urllib.request.Request(
        f"{admin.url}/_emulator/invoices/{invoice.id}/pay", data=b"{}", method="POST"
    )
    with urllib.request.urlopen(req) as resp:
        assert json.loads(resp.read())["status"] == "paid"
    # Then the subscription is active again
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"


def test_a_first_invoice_needing_authentication_leaves_the_subscription_incomplete(
    client: stripe.StripeClient, price: stripe.Price, admin: Admin
) -> None:
    customer = _customer(client, "pm_card_authenticationRequired")
    sub = client.v1.subscriptions.create(params={"customer": customer.id, "items": [{"price": price.id}]})
    assert sub.status == "incomplete"
    assert "invoice.payment_action_required" in _types(admin)
    assert client.v1.invoices.retrieve(str(sub.latest_invoice)).next_payment_attempt is None


def test_paying_through_the_api_with_such_a_card_is_a_402_requiring_action(
    client: stripe.StripeClient, price: stripe.Price
) -> None:
    customer = _customer(client, None)
    sub = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": price.id}],
            "payment_behavior": "default_incomplete",
        }
    )
    with pytest.raises(stripe.CardError) as info:
        client.v1.invoices.pay(
            str(sub.latest_invoice), params={"payment_method": "pm_card_authenticationRequired"}
        )
    assert info.value.code == "invoice_payment_intent_requires_action"


def test_a_card_needing_authentication_on_setup_pays_off_session_once_set_up(
    client: stripe.StripeClient, price: stripe.Price, admin: Admin
) -> None:
    # Given the card set up through Checkout in setup mode and made the customer's default
    customer = _customer(client, None)
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "setup",
            "currency": "usd",
            "customer": customer.id,
            "success_url": "https://app.example/ok",
        }
    )
    body = json.dumps({"payment_method": "pm_card_authenticationRequiredOnSetup"}).encode()
    req = urllib.request.Request(
        f"{admin.url}/_emulator/checkout/sessions/{session.id}/complete", data=body, method="POST"
    )
    urllib.request.urlopen(req).close()
    card = client.v1.setup_intents.retrieve(str(session.setup_intent)).payment_method
    client.v1.customers.update(
        customer.id, params={"invoice_settings": {"default_payment_method": str(card)}}
    )
    # When a subscription charges it off-session
    sub = client.v1.subscriptions.create(params={"customer": customer.id, "items": [{"price": price.id}]})
    # Then no authentication is asked
    assert sub.status == "active"
    assert "invoice.payment_action_required" not in _types(admin)


# trials about to end ----------------------------------------------------------------------------
def test_trial_will_end_comes_three_days_before_the_trial_ends_once(
    client: stripe.StripeClient, price: stripe.Price, admin: Admin
) -> None:
    customer = _customer(client)
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": price.id}], "trial_period_days": 14}
    )
    admin.set_time(T0 + 11 * DAY - 1)
    assert admin.events("customer.subscription.trial_will_end") == []
    admin.set_time(T0 + 11 * DAY)
    [event] = admin.events("customer.subscription.trial_will_end")
    assert event["data"]["object"]["id"] == sub.id
    assert event["data"]["object"]["trial_end"] == T0 + 14 * DAY
    assert event["created"] == T0 + 11 * DAY
    admin.set_time(T0 + 13 * DAY)
    assert len(admin.events("customer.subscription.trial_will_end")) == 1


def test_a_trial_shorter_than_three_days_warns_at_once(
    client: stripe.StripeClient, price: stripe.Price, admin: Admin
) -> None:
    customer = _customer(client)
    client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": price.id}], "trial_end": T0 + 2 * DAY}
    )
    assert len(admin.events("customer.subscription.trial_will_end")) == 1


def test_ending_a_trial_now_warns_before_it_ends(
    client: stripe.StripeClient, price: stripe.Price, admin: Admin
) -> None:
    customer = _customer(client)
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": price.id}], "trial_period_days": 30}
    )
    client.v1.subscriptions.update(sub.id, params={"trial_end": "now"})
    types = _types(admin)
    assert types.count("customer.subscription.trial_will_end") == 1
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"


def test_extending_a_trial_warns_again_before_the_new_end(
    client: stripe.StripeClient, price: stripe.Price, admin: Admin
) -> None:
    customer = _customer(client)
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": price.id}], "trial_period_days": 5}
    )
    admin.set_time(T0 + 2 * DAY)
    client.v1.subscriptions.update(sub.id, params={"trial_end": T0 + 20 * DAY})
    admin.set_time(T0 + 17 * DAY)
    assert len(admin.events("customer.subscription.trial_will_end")) == 2
