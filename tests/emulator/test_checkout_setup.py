"""Checkout Sessions in setup mode, their SetupIntents and the PaymentMethods they attach, through
the real stripe SDK; the customer's part on the hosted page is played by the admin hook."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
import stripe

from .conftest import T0, Admin

HOUR = 3600


@pytest.fixture
def client(stripe_client: stripe.StripeClient, admin: Admin) -> stripe.StripeClient:
    admin.set_time(T0)
    return stripe_client


def _complete(admin: Admin, session_id: str, payment_method: str = "pm_card_visa") -> tuple[int, Any]:
    body = json.dumps({"payment_method": payment_method}).encode()
    req = urllib.request.Request(
        f"{admin.url}/_emulator/checkout/sessions/{session_id}/complete", data=body, method="POST"
    )
    try:
        with urllib.request.urlopen(req) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _session(client: stripe.StripeClient, **extra: Any) -> stripe.checkout.Session:
    params: dict[str, Any] = {
        "mode": "setup",
        "currency": "usd",
        "success_url": "https://app.example/billing?done={CHECKOUT_SESSION_ID}",
        **extra,
    }
    return client.v1.checkout.sessions.create(params=params)  # type: ignore[arg-type]


def _event_types(admin: Admin) -> list[str]:
    return [e["type"] for e in admin.events()]


def test_setup_session_has_a_hosted_url_and_a_setup_intent_waiting_for_a_card(
    client: stripe.StripeClient,
) -> None:
    # Given a customer
    customer = client.v1.customers.create()
    # When a setup-mode session is created for them
    session = _session(client, customer=customer.id, metadata={"tenantId": "t-1"})
    # Then it is open, on Stripe's hosted page, with a SetupIntent that waits for a payment method
    assert session.status == "open"
    assert session.mode == "setup"
    assert session.payment_status == "no_payment_required"
    assert str(session.url).startswith("https://checkout.stripe.com/")
    assert session.expires_at == T0 + 24 * HOUR
    assert session.metadata is not None
    assert session.metadata.to_dict() == {"tenantId": "t-1"}
    intent = client.v1.setup_intents.retrieve(str(session.setup_intent))
    assert intent.status == "requires_payment_method"
    assert intent.customer == customer.id
    assert intent.usage == "off_session"


def test_setup_mode_requires_a_currency_unless_payment_method_types_are_given(
    client: stripe.StripeClient,
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.checkout.sessions.create(params={"mode": "setup", "success_url": "https://app.example/ok"})
    assert info.value.code == "parameter_missing"
    assert info.value.param == "currency"
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "setup",
            "allowed_payment_method_types": ["card"],
            "success_url": "https://app.example/ok",
        }
    )
    assert session.payment_method_types == ["card"]


def test_line_items_are_refused_in_setup_mode(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as info:
        _session(client, line_items=[{"price": "price_x", "quantity": 1}])
    assert info.value.param == "line_items"


def test_embedded_sessions_take_a_return_url_and_no_success_url(client: stripe.StripeClient) -> None:
    # An embedded page answers with a client secret instead of a URL
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "setup",
            "currency": "usd",
            "ui_mode": "embedded_page",
            "return_url": "https://app.example/r",
        }
    )
    assert session.url is None
    assert str(session.client_secret).startswith(session.id)
    # and refuses success_url, as Stripe documents
    with pytest.raises(stripe.InvalidRequestError) as info:
        _session(client, ui_mode="embedded_page", return_url="https://app.example/r")
    assert info.value.param == "success_url"


def test_customer_and_customer_email_exclude_each_other(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create()
    with pytest.raises(stripe.InvalidRequestError):
        _session(client, customer=customer.id, customer_email="a@example.com")


def test_completing_the_session_attaches_the_card_and_records_the_events_in_order(
    client: stripe.StripeClient, admin: Admin
) -> None:
    # Given an open session for a customer
    customer = client.v1.customers.create()
    session = _session(client, customer=customer.id, setup_intent_data={"metadata": {"tenantId": "t-1"}})
    # When the customer gives a card on the page
    status, _body = _complete(admin, session.id)
    # Then the session is complete, its SetupIntent succeeded with a new card attached to the customer
    assert status == 200
    done = client.v1.checkout.sessions.retrieve(session.id)
    assert done.status == "complete"
    assert done.url is None
    intent = client.v1.setup_intents.retrieve(str(done.setup_intent))
    assert intent.status == "succeeded"
    assert intent.metadata is not None
    assert intent.metadata.to_dict() == {"tenantId": "t-1"}
    card = client.v1.payment_methods.retrieve(str(intent.payment_method))
    assert card.customer == customer.id
    assert card.card is not None
    assert card.card.last4 == "4242"
    assert [pm.id for pm in client.v1.customers.payment_methods.list(customer.id).data] == [card.id]
    # and the events come as Stripe sends them: the card attached, the intent succeeded, the session completed
    types = _event_types(admin)
    assert types.index("payment_method.attached") < types.index("setup_intent.succeeded")
    assert types.index("setup_intent.succeeded") < types.index("checkout.session.completed")


def test_the_customers_default_payment_method_stays_the_integrations_job(
    client: stripe.StripeClient, admin: Admin
) -> None:
    # Given a completed setup session
    customer = client.v1.customers.create()
    session = _session(client, customer=customer.id)
    _complete(admin, session.id)
    # Then Checkout did not make the card the customer's default
    assert client.v1.customers.retrieve(customer.id).invoice_settings.default_payment_method is None  # type: ignore[union-attr]
    # When the integration does, from the SetupIntent
    intent = client.v1.setup_intents.retrieve(
        str(client.v1.checkout.sessions.retrieve(session.id).setup_intent)
    )
    client.v1.customers.update(
        customer.id, params={"invoice_settings": {"default_payment_method": str(intent.payment_method)}}
    )
    # Then a charge_automatically subscription is paid with it
    price = client.v1.prices.create(
        params={
            "currency": "usd",
            "unit_amount": 2900,
            "recurring": {"interval": "month"},
            "product_data": {"name": "B"},
        }
    )
    sub = client.v1.subscriptions.create(params={"customer": customer.id, "items": [{"price": price.id}]})
    assert sub.status == "active"


def test_a_card_attached_to_someone_else_cannot_be_a_customers_default(
    client: stripe.StripeClient, admin: Admin
) -> None:
    owner, other = client.v1.customers.create(), client.v1.customers.create()
    session = _session(client, customer=owner.id)
    _complete(admin, session.id)
    card = client.v1.setup_intents.retrieve(
        str(client.v1.checkout.sessions.retrieve(session.id).setup_intent)
    )
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.customers.update(
            other.id, params={"invoice_settings": {"default_payment_method": str(card.payment_method)}}
        )
    assert info.value.param == "invoice_settings[default_payment_method]"


def test_a_declined_card_leaves_the_session_open_with_the_setup_error(
    client: stripe.StripeClient, admin: Admin
) -> None:
    customer = client.v1.customers.create()
    session = _session(client, customer=customer.id)
    # When the customer's card declines
    status, body = _complete(admin, session.id, "pm_card_chargeDeclined")
    # Then the hook answers Stripe's card error, the session stays open and the intent records the failure
    assert status == 402
    assert body["error"]["code"] == "card_declined"
    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"
    intent = client.v1.setup_intents.retrieve(str(session.setup_intent))
    assert intent.status == "requires_payment_method"
    assert intent.last_setup_error is not None
    assert intent.last_setup_error.code == "card_declined"
    assert "setup_intent.setup_failed" in _event_types(admin)
    assert "checkout.session.completed" not in _event_types(admin)
    # and a second card can still complete it
    assert _complete(admin, session.id)[0] == 200


def test_customer_creation_always_makes_a_customer_on_completion(
    client: stripe.StripeClient, admin: Admin
) -> None:
    session = _session(client, customer_creation="always", customer_email="owner@example.com")
    _complete(admin, session.id)
    done = client.v1.checkout.sessions.retrieve(session.id)
    assert done.customer is not None
    assert client.v1.customers.retrieve(str(done.customer)).email == "owner@example.com"
    intent = client.v1.setup_intents.retrieve(str(done.setup_intent))
    assert client.v1.payment_methods.retrieve(str(intent.payment_method)).customer == done.customer


def test_expire_closes_an_open_session_and_cancels_its_intent(
    client: stripe.StripeClient, admin: Admin
) -> None:
    session = _session(client)
    expired = client.v1.checkout.sessions.expire(session.id)
    assert expired.status == "expired"
    assert expired.url is None
    assert client.v1.setup_intents.retrieve(str(session.setup_intent)).status == "canceled"
    assert "checkout.session.expired" in _event_types(admin)
    # A session that is no longer open cannot be expired or completed
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.checkout.sessions.expire(session.id)
    assert _complete(admin, session.id)[0] == 400


def test_an_open_session_expires_on_the_clock_at_expires_at(
    client: stripe.StripeClient, admin: Admin
) -> None:
    session = _session(client, expires_at=T0 + HOUR)
    admin.advance(HOUR - 1)
    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"
    admin.advance(1)
    assert client.v1.checkout.sessions.retrieve(session.id).status == "expired"


def test_expires_at_must_be_between_half_an_hour_and_a_day(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as info:
        _session(client, expires_at=T0 + 10 * 60)
    assert info.value.param == "expires_at"


def test_sessions_list_by_customer_and_status(client: stripe.StripeClient, admin: Admin) -> None:
    customer = client.v1.customers.create()
    first, second = _session(client, customer=customer.id), _session(client, customer=customer.id)
    _complete(admin, first.id)
    listed = client.v1.checkout.sessions.list(params={"customer": customer.id, "status": "complete"})
    assert [s.id for s in listed.data] == [first.id]
    assert [s.id for s in client.v1.checkout.sessions.list(params={"customer": customer.id}).data] == [
        second.id,
        first.id,
    ]
