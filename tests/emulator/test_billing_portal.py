"""The customer portal through the real stripe SDK: configurations, sessions with deep links, and
what a customer does in a session (played by the emulator's admin hooks).

The clock starts at T0 = 2026-01-01T00:00:00Z; January ends at FEB1 = T0 + 31 days.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import pytest
import stripe

from .conftest import DAY, T0, Admin

FEB1 = T0 + 31 * DAY


@pytest.fixture
def client(stripe_client: stripe.StripeClient, admin: Admin) -> stripe.StripeClient:
    admin.set_time(T0)
    return stripe_client


def _hook(admin: Admin, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    req = urllib.request.Request(admin.url + path, data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(req) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _act(admin: Admin, session: stripe.billing_portal.Session, action: str, **body: Any) -> tuple[int, Any]:
    return _hook(admin, f"/_emulator/billing_portal/sessions/{session.id}/{action}", body)


@dataclass
class Catalogue:
    product: stripe.Product
    basic: stripe.Price
    pro: stripe.Price


@pytest.fixture
def tiers(client: stripe.StripeClient) -> Catalogue:
    product = client.v1.products.create(params={"name": "Plan"})

    def price(amount: int) -> stripe.Price:
        return client.v1.prices.create(
            params={
                "currency": "usd",
                "unit_amount": amount,
                "recurring": {"interval": "month"},
                "product": product.id,
            }
        )

    return Catalogue(product, price(3000), price(6000))


def _features(tiers: Catalogue, **overrides: Any) -> dict[str, Any]:
    features: dict[str, Any] = {
        "subscription_update": {
            "enabled": True,
            "default_allowed_updates": ["price"],
            "products": [{"product": tiers.product.id, "prices": [tiers.basic.id, tiers.pro.id]}],
            "proration_behavior": "create_prorations",
            "schedule_at_period_end": {"conditions": [{"type": "decreasing_item_amount"}]},
        },
        "subscription_cancel": {"enabled": True, "mode": "at_period_end"},
        "payment_method_update": {"enabled": True},
        "invoice_history": {"enabled": True},
    }
    features.update(overrides)
    return features


@pytest.fixture
def config(client: stripe.StripeClient, tiers: Catalogue) -> stripe.billing_portal.Configuration:
    return client.v1.billing_portal.configurations.create(
        params={"features": _features(tiers), "default_return_url": "https://app.example/billing"}  # type: ignore[typeddict-item]
    )


def _subscription(client: stripe.StripeClient, price: stripe.Price) -> stripe.Subscription:
    customer = client.v1.customers.create(
        params={"invoice_settings": {"default_payment_method": "pm_card_visa"}}
    )
    return client.v1.subscriptions.create(params={"customer": customer.id, "items": [{"price": price.id}]})


def _session(
    client: stripe.StripeClient,
    config: stripe.billing_portal.Configuration,
    sub: stripe.Subscription,
    **extra: Any,
) -> stripe.billing_portal.Session:
    params: dict[str, Any] = {"customer": str(sub.customer), "configuration": config.id, **extra}
    return client.v1.billing_portal.sessions.create(params=params)  # type: ignore[arg-type]


def _types(admin: Admin) -> list[str]:
    return [e["type"] for e in admin.events()]


# configurations ---------------------------------------------------------------------------------
def test_a_configuration_shows_its_features_with_stripes_defaults(
    client: stripe.StripeClient, config: stripe.billing_portal.Configuration, tiers: Catalogue, admin: Admin
) -> None:
    assert config.active is True
    assert config.is_default is False  # only the Dashboard's configuration is the default
    update = config.features.subscription_update
    assert update.products is not None
    assert update.products[0].prices == [tiers.basic.id, tiers.pro.id]
    assert [c.type for c in update.schedule_at_period_end.conditions] == ["decreasing_item_amount"]
    assert update.trial_update_behavior == "end_trial"
    assert config.features.subscription_cancel.proration_behavior == "none"
    assert config.features.customer_update.enabled is False
    assert client.v1.billing_portal.configurations.retrieve(config.id).id == config.id
    assert "billing_portal.configuration.created" in _types(admin)


def test_subscription_update_needs_products_when_enabled(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.billing_portal.configurations.create(
            params={
                "features": {"subscription_update": {"enabled": True, "default_allowed_updates": ["price"]}}
            }
        )
    assert info.value.param == "features[subscription_update][products]"


def test_cancel_prorations_need_immediate_cancellation(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.billing_portal.configurations.create(
            params={
                "features": {
                    "subscription_cancel": {
                        "enabled": True,
                        "mode": "at_period_end",
                        "proration_behavior": "create_prorations",
                    }
                }
            }
        )
    assert info.value.param == "features[subscription_cancel][proration_behavior]"


def test_a_price_of_another_product_is_refused(client: stripe.StripeClient, tiers: Catalogue) -> None:
    other = client.v1.products.create(params={"name": "Other"})
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.billing_portal.configurations.create(
            params={
                "features": _features(  # type: ignore[typeddict-item]
                    tiers,
                    subscription_update={
                        "enabled": True,
                        "products": [{"product": other.id, "prices": [tiers.basic.id]}],
                    },
                )
            }
        )


def test_update_merges_and_records_what_changed(
    client: stripe.StripeClient, config: stripe.billing_portal.Configuration, admin: Admin
) -> None:
    updated = client.v1.billing_portal.configurations.update(
        config.id,
        params={
            "features": {"subscription_update": {"proration_behavior": "always_invoice"}},
            "metadata": {"stack": "s1"},
        },
    )
    assert updated.features.subscription_update.proration_behavior == "always_invoice"
    assert updated.features.subscription_update.products is not None  # kept
    [event] = admin.events("billing_portal.configuration.updated")
    assert "features" in event["data"]["previous_attributes"]


def test_list_filters_by_active_and_is_default(
    client: stripe.StripeClient, config: stripe.billing_portal.Configuration, tiers: Catalogue, admin: Admin
) -> None:
    other = client.v1.billing_portal.configurations.create(params={"features": _features(tiers)})  # type: ignore[typeddict-item]
    client.v1.billing_portal.configurations.update(other.id, params={"active": False})
    assert [c.id for c in client.v1.billing_portal.configurations.list(params={"active": True}).data] == [
        config.id
    ]
    assert client.v1.billing_portal.configurations.list(params={"is_default": True}).data == []
    _hook(admin, "/_emulator/billing_portal/default_configuration", {"configuration": config.id})
    assert [c.id for c in client.v1.billing_portal.configurations.list(params={"is_default": True}).data] == [
        config.id
    ]


# sessions ---------------------------------------------------------------------------------------
def test_without_a_default_configuration_a_session_is_refused_as_in_test_mode(
    client: stripe.StripeClient, tiers: Catalogue
) -> None:
    sub = _subscription(client, tiers.pro)
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.billing_portal.sessions.create(params={"customer": str(sub.customer)})
    assert "save your customer portal settings" in str(info.value.user_message)


def test_a_session_uses_the_default_configuration_saved_in_the_dashboard(
    client: stripe.StripeClient, tiers: Catalogue, admin: Admin
) -> None:
    status, default = _hook(
        admin,
        "/_emulator/billing_portal/default_configuration",
        {"features": {"invoice_history": {"enabled": True}}},
    )
    assert status == 200
    assert default["is_default"] is True
    sub = _subscription(client, tiers.pro)
    session = client.v1.billing_portal.sessions.create(
        params={"customer": str(sub.customer), "return_url": "https://app.example/back"}
    )
    assert session.configuration == default["id"]
    assert session.return_url == "https://app.example/back"
    assert session.url.startswith("https://billing.stripe.com/p/session/")
    assert "billing_portal.session.created" in _types(admin)


def test_a_deep_link_names_the_flow_and_its_subscription(
    client: stripe.StripeClient, config: stripe.billing_portal.Configuration, tiers: Catalogue
) -> None:
    sub = _subscription(client, tiers.pro)
    session = _session(
        client,
        config,
        sub,
        flow_data={
            "type": "subscription_update",
            "subscription_update": {"subscription": sub.id},
            "after_completion": {"type": "redirect", "redirect": {"return_url": "https://app.example/done"}},
        },
    )
    assert session.flow is not None
    assert session.flow.type == "subscription_update"
    assert session.flow.subscription_update is not None
    assert session.flow.subscription_update.subscription == sub.id
    assert session.flow.after_completion.redirect is not None
    assert session.return_url == "https://app.example/billing"  # the configuration's default


def test_a_deep_link_needs_its_feature_enabled(client: stripe.StripeClient, tiers: Catalogue) -> None:
    config = client.v1.billing_portal.configurations.create(
        params={"features": {"invoice_history": {"enabled": True}}}
    )
    sub = _subscription(client, tiers.pro)
    with pytest.raises(stripe.InvalidRequestError) as info:
        _session(
            client,
            config,
            sub,
            flow_data={"type": "subscription_cancel", "subscription_cancel": {"subscription": sub.id}},
        )
    assert info.value.param == "flow_data[type]"


def test_a_deep_link_to_another_customers_subscription_is_refused(
    client: stripe.StripeClient, config: stripe.billing_portal.Configuration, tiers: Catalogue
) -> None:
    mine, theirs = _subscription(client, tiers.pro), _subscription(client, tiers.pro)
    with pytest.raises(stripe.InvalidRequestError):
        _session(
            client,
            config,
            mine,
            flow_data={"type": "subscription_update", "subscription_update": {"subscription": theirs.id}},
        )


# what the customer does -------------------------------------------------------------------------
def test_a_portal_downgrade_waits_for_the_period_end(
    client: stripe.StripeClient, config: stripe.billing_portal.Configuration, tiers: Catalogue, admin: Admin
) -> None:
    # Given a $60 subscription and a configuration that schedules decreases at period end
    sub = _subscription(client, tiers.pro)
    session = _session(client, config, sub)
    # When the customer picks the $30 plan
    status, body = _act(admin, session, "subscription_update", subscription=sub.id, price=tiers.basic.id)
    # Then nothing changes now: a schedule holds the change for February
    assert status == 200
    assert body["subscription"]["items"]["data"][0]["price"]["id"] == tiers.pro.id
    schedule = client.v1.subscription_schedules.retrieve(body["subscription_schedule"]["id"])
    assert [p.items[0].price for p in schedule.phases] == [tiers.pro.id, tiers.basic.id]
    assert schedule.phases[1].start_date == FEB1
    assert client.v1.subscriptions.retrieve(sub.id).schedule == schedule.id
    types = _types(admin)
    assert "subscription_schedule.created" in types
    assert "subscription_schedule.updated" in types
    # and the change takes effect when the period ends, not before
    admin.set_time(FEB1 - 1)
    assert client.v1.subscriptions.retrieve(sub.id).items.data[0].price.id == tiers.pro.id
    admin.set_time(FEB1)
    assert client.v1.subscriptions.retrieve(sub.id).items.data[0].price.id == tiers.basic.id
    assert (
        client.v1.invoices.retrieve(str(client.v1.subscriptions.retrieve(sub.id).latest_invoice)).total
        == 3000
    )


def test_a_portal_upgrade_applies_now_with_the_configured_prorations(
    client: stripe.StripeClient, config: stripe.billing_portal.Configuration, tiers: Catalogue, admin: Admin
) -> None:
    sub = _subscription(client, tiers.basic)
    admin.advance(10 * DAY)  # 21 of January's 31 days left
    session = _session(client, config, sub)
    status, body = _act(admin, session, "subscription_update", subscription=sub.id, price=tiers.pro.id)
    assert status == 200
    assert body["subscription_schedule"] is None
    assert client.v1.subscriptions.retrieve(sub.id).items.data[0].price.id == tiers.pro.id
    pending = client.v1.invoice_items.list(params={"customer": str(sub.customer), "pending": True})  # type: ignore[typeddict-item]
    assert sorted(i.amount for i in pending.data) == [-2032, 4065]
    [updated] = [
        e
        for e in admin.events("customer.subscription.updated")
        if "items" in e["data"]["previous_attributes"]
    ]
    assert updated["request"]["id"] is None  # the customer's doing, not an API request


def test_an_upgrade_before_the_period_end_replaces_a_scheduled_downgrade(
    client: stripe.StripeClient, tiers: Catalogue, admin: Admin
) -> None:
    # Given three tiers, a $60 subscription with a downgrade to $30 scheduled for February
    top = client.v1.prices.create(
        params={
            "currency": "usd",
            "unit_amount": 9000,
            "recurring": {"interval": "month"},
            "product": tiers.product.id,
        }
    )
    features = _features(tiers)
    features["subscription_update"]["products"][0]["prices"].append(top.id)
    config = client.v1.billing_portal.configurations.create(params={"features": features})  # type: ignore[typeddict-item]
    sub = _subscription(client, tiers.pro)
    session = _session(client, config, sub)
    _, scheduled = _act(admin, session, "subscription_update", subscription=sub.id, price=tiers.basic.id)
    # When the customer upgrades to $90 before then
    status, _body = _act(admin, session, "subscription_update", subscription=sub.id, price=top.id)
    # Then the upgrade applies now and the scheduled downgrade is gone
    assert status == 200
    schedule = client.v1.subscription_schedules.retrieve(scheduled["subscription_schedule"]["id"])
    assert schedule.status == "released"
    admin.set_time(FEB1)
    assert client.v1.subscriptions.retrieve(sub.id).items.data[0].price.id == top.id


def test_a_price_the_configuration_does_not_offer_is_refused(
    client: stripe.StripeClient, config: stripe.billing_portal.Configuration, tiers: Catalogue, admin: Admin
) -> None:
    other = client.v1.prices.create(
        params={
            "currency": "usd",
            "unit_amount": 100,
            "recurring": {"interval": "month"},
            "product": tiers.product.id,
        }
    )
    sub = _subscription(client, tiers.pro)
    status, body = _act(
        admin, _session(client, config, sub), "subscription_update", subscription=sub.id, price=other.id
    )
    assert status == 400
    assert body["error"]["param"] == "price"


def test_a_flow_session_offers_only_its_flow(
    client: stripe.StripeClient, config: stripe.billing_portal.Configuration, tiers: Catalogue, admin: Admin
) -> None:
    sub = _subscription(client, tiers.pro)
    session = _session(client, config, sub, flow_data={"type": "payment_method_update"})
    status, _ = _act(admin, session, "subscription_cancel", subscription=sub.id)
    assert status == 400
    assert client.v1.subscriptions.retrieve(sub.id).cancel_at_period_end is False


def test_a_portal_cancellation_at_period_end_keeps_the_paid_period(
    client: stripe.StripeClient, config: stripe.billing_portal.Configuration, tiers: Catalogue, admin: Admin
) -> None:
    sub = _subscription(client, tiers.pro)
    session = _session(
        client,
        config,
        sub,
        flow_data={"type": "subscription_cancel", "subscription_cancel": {"subscription": sub.id}},
    )
    status, _body = _act(admin, session, "subscription_cancel", subscription=sub.id, feedback="too_expensive")
    assert status == 200
    after = client.v1.subscriptions.retrieve(sub.id)
    assert after.status == "active"
    assert after.cancel_at_period_end is True
    assert after.cancel_at == FEB1
    assert after.cancellation_details is not None
    assert after.cancellation_details.feedback == "too_expensive"
    admin.set_time(FEB1)
    assert client.v1.subscriptions.retrieve(sub.id).status == "canceled"


def test_an_immediate_portal_cancellation_ends_the_subscription_now(
    client: stripe.StripeClient, tiers: Catalogue, admin: Admin
) -> None:
    config = client.v1.billing_portal.configurations.create(
        params={"features": {"subscription_cancel": {"enabled": True, "mode": "immediately"}}}
    )
    sub = _subscription(client, tiers.pro)
    status, _ = _act(admin, _session(client, config, sub), "subscription_cancel", subscription=sub.id)
    assert status == 200
    assert client.v1.subscriptions.retrieve(sub.id).status == "canceled"
    assert "customer.subscription.deleted" in _types(admin)


def test_a_portal_card_update_becomes_the_customers_default(
    client: stripe.StripeClient, config: stripe.billing_portal.Configuration, tiers: Catalogue, admin: Admin
) -> None:
    sub = _subscription(client, tiers.pro)
    session = _session(client, config, sub, flow_data={"type": "payment_method_update"})
    status, _body = _act(admin, session, "payment_method_update", payment_method="pm_card_mastercard")
    assert status == 200
    customer = client.v1.customers.retrieve(str(sub.customer))
    assert customer.invoice_settings is not None
    card = client.v1.payment_methods.retrieve(str(customer.invoice_settings.default_payment_method))
    assert card.customer == customer.id
    assert card.card is not None
    assert card.card.brand == "mastercard"
    types = _types(admin)
    assert types.index("payment_method.attached") < types.index(
        "customer.updated", types.index("payment_method.attached")
    )


def test_a_declined_card_in_the_portal_changes_nothing(
    client: stripe.StripeClient, config: stripe.billing_portal.Configuration, tiers: Catalogue, admin: Admin
) -> None:
    sub = _subscription(client, tiers.pro)
    status, body = _act(
        admin, _session(client, config, sub), "payment_method_update", payment_method="pm_card_chargeDeclined"
    )
    assert status == 402
    assert body["error"]["code"] == "card_declined"
    customer = client.v1.customers.retrieve(str(sub.customer))
    assert customer.invoice_settings is not None
    assert customer.invoice_settings.default_payment_method == "pm_card_visa"


def test_confirming_an_update_confirm_flow_applies_its_items(
    client: stripe.StripeClient, config: stripe.billing_portal.Configuration, tiers: Catalogue, admin: Admin
) -> None:
    sub = _subscription(client, tiers.basic)
    session = _session(
        client,
        config,
        sub,
        flow_data={
            "type": "subscription_update_confirm",
            "subscription_update_confirm": {
                "subscription": sub.id,
                "items": [{"id": sub.items.data[0].id, "price": tiers.pro.id}],
            },
        },
    )
    status, _ = _act(admin, session, "subscription_update_confirm")
    assert status == 200
    assert client.v1.subscriptions.retrieve(sub.id).items.data[0].price.id == tiers.pro.id
