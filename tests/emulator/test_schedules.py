"""Subscription schedules through the real stripe SDK: made from a subscription or from phases,
updated, released, canceled, and their phases taking effect on the emulator clock.

The clock starts at T0 = 2026-01-01T00:00:00Z: a monthly subscription's period is January, which
ends on FEB1 = T0 + 31 days.
"""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from .conftest import DAY, T0, Admin

FEB1 = T0 + 31 * DAY
MAR1 = FEB1 + 28 * DAY


@pytest.fixture
def client(stripe_client: stripe.StripeClient, admin: Admin) -> stripe.StripeClient:
    admin.set_time(T0)
    return stripe_client


def _price(client: stripe.StripeClient, amount: int, name: str, interval: str = "month") -> stripe.Price:
    return client.v1.prices.create(
        params={
            "currency": "usd",
            "unit_amount": amount,
            "recurring": {"interval": interval},
            "product_data": {"name": name},
        }
    )


def _customer(client: stripe.StripeClient) -> stripe.Customer:
    return client.v1.customers.create(params={"invoice_settings": {"default_payment_method": "pm_card_visa"}})


def _subscription(client: stripe.StripeClient, price: stripe.Price) -> stripe.Subscription:
    return client.v1.subscriptions.create(
        params={"customer": _customer(client).id, "items": [{"price": price.id}]}
    )


def _downgrade_at_period_end(
    client: stripe.StripeClient, sub: stripe.Subscription, to: stripe.Price, **extra: Any
) -> stripe.SubscriptionSchedule:
    schedule = client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    current = schedule.phases[0]
    params: dict[str, Any] = {
        "phases": [
            {
                "items": [{"price": sub.items.data[0].price.id, "quantity": 1}],
                "start_date": current.start_date,
                "end_date": current.end_date,
            },
            {"items": [{"price": to.id, "quantity": 1}], "duration": {"interval": "month"}},
        ],
        **extra,
    }
    return client.v1.subscription_schedules.update(schedule.id, params=params)  # type: ignore[arg-type]


def _types(admin: Admin) -> list[str]:
    return [e["type"] for e in admin.events()]


def test_from_subscription_copies_its_items_over_the_current_period(client: stripe.StripeClient) -> None:
    # Given an active monthly subscription
    sub = _subscription(client, _price(client, 6000, "Pro"))
    # When a schedule is made from it
    schedule = client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    # Then it is active with one phase over January with the subscription's price, released at its end
    assert schedule.status == "active"
    assert schedule.subscription == sub.id
    assert schedule.end_behavior == "release"
    assert [(p.start_date, p.end_date) for p in schedule.phases] == [(T0, FEB1)]
    assert schedule.phases[0].items[0].price == sub.items.data[0].price.id
    assert schedule.current_phase is not None
    assert schedule.current_phase.end_date == FEB1
    # and the subscription names its schedule
    assert client.v1.subscriptions.retrieve(sub.id).schedule == schedule.id


def test_from_subscription_takes_no_other_parameter(client: stripe.StripeClient) -> None:
    sub = _subscription(client, _price(client, 6000, "Pro"))
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.subscription_schedules.create(
            params={"from_subscription": sub.id, "end_behavior": "cancel"}
        )
    assert info.value.param == "end_behavior"


def test_a_subscription_with_a_schedule_cannot_get_a_second_one(client: stripe.StripeClient) -> None:
    sub = _subscription(client, _price(client, 6000, "Pro"))
    client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    assert info.value.param == "from_subscription"


def test_a_downgrade_phase_takes_effect_at_the_period_end_and_not_before(
    client: stripe.StripeClient, admin: Admin
) -> None:
    # Given a $60 subscription scheduled to move to $30 when January ends
    pro, basic = _price(client, 6000, "Pro"), _price(client, 3000, "Basic")
    sub = _subscription(client, pro)
    schedule = _downgrade_at_period_end(client, sub, basic)
    # When the clock reaches the last second of January
    admin.set_time(FEB1 - 1)
    # Then nothing changed yet
    assert client.v1.subscriptions.retrieve(sub.id).items.data[0].price.id == pro.id
    # When February starts
    admin.set_time(FEB1)
    # Then the same item now has the $30 price, and the renewal bills $30 with no prorations
    renewed = client.v1.subscriptions.retrieve(sub.id)
    assert renewed.items.data[0].price.id == basic.id
    assert renewed.items.data[0].id == sub.items.data[0].id
    invoice = client.v1.invoices.retrieve(str(renewed.latest_invoice))
    assert invoice.billing_reason == "subscription_cycle"
    assert invoice.total == 3000
    pending = client.v1.invoice_items.list(params={"customer": str(sub.customer), "pending": True})  # type: ignore[typeddict-item]
    assert pending.data == []
    # and the schedule moved to its second phase
    moved = client.v1.subscription_schedules.retrieve(schedule.id)
    assert moved.current_phase is not None
    assert moved.current_phase.start_date == FEB1
    assert "subscription_schedule.updated" in _types(admin)


def test_after_its_last_phase_a_release_schedule_lets_the_subscription_go_on(
    client: stripe.StripeClient, admin: Admin
) -> None:
    pro, basic = _price(client, 6000, "Pro"), _price(client, 3000, "Basic")
    sub = _subscription(client, pro)
    schedule = _downgrade_at_period_end(client, sub, basic)
    admin.set_time(MAR1)
    released = client.v1.subscription_schedules.retrieve(schedule.id)
    assert released.status == "released"
    assert released.released_subscription == sub.id
    assert released.subscription is None
    after = client.v1.subscriptions.retrieve(sub.id)
    assert after.status == "active"
    assert after.schedule is None
    assert after.items.data[0].price.id == basic.id
    assert "subscription_schedule.released" in _types(admin)


def test_end_behavior_cancel_cancels_the_subscription_and_completes_the_schedule(
    client: stripe.StripeClient, admin: Admin
) -> None:
    pro, basic = _price(client, 6000, "Pro"), _price(client, 3000, "Basic")
    sub = _subscription(client, pro)
    schedule = _downgrade_at_period_end(client, sub, basic, end_behavior="cancel")
    # The schedule sets the subscription's cancellation at its end
    assert client.v1.subscriptions.retrieve(sub.id).cancel_at == MAR1
    admin.set_time(MAR1)
    assert client.v1.subscriptions.retrieve(sub.id).status == "canceled"
    done = client.v1.subscription_schedules.retrieve(schedule.id)
    assert done.status == "completed"
    assert done.completed_at == MAR1
    types = _types(admin)
    assert types.index("customer.subscription.deleted") < types.index("subscription_schedule.completed")


def test_changing_the_current_phase_changes_the_subscription_now_with_prorations(
    client: stripe.StripeClient, admin: Admin
) -> None:
    # Given a $30 subscription with a schedule, ten days into January (21 of 31 days left)
    basic, pro = _price(client, 3000, "Basic"), _price(client, 6000, "Pro")
    sub = _subscription(client, basic)
    schedule = client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    admin.advance(10 * DAY)
    # When the current phase is changed to $60
    client.v1.subscription_schedules.update(
        schedule.id,
        params={"phases": [{"items": [{"price": pro.id}], "start_date": T0, "end_date": FEB1}]},
    )
    # Then the subscription has the new price and the prorations wait for the next invoice
    assert client.v1.subscriptions.retrieve(sub.id).items.data[0].price.id == pro.id
    pending = client.v1.invoice_items.list(params={"customer": str(sub.customer), "pending": True})  # type: ignore[typeddict-item]
    assert sorted(i.amount for i in pending.data) == [-2032, 4065]


def test_the_current_phase_keeps_its_start_date(client: stripe.StripeClient) -> None:
    sub = _subscription(client, _price(client, 3000, "Basic"))
    schedule = client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.subscription_schedules.update(
            schedule.id,
            params={
                "phases": [
                    {
                        "items": [{"price": sub.items.data[0].price.id}],
                        "start_date": T0 + DAY,
                        "end_date": FEB1,
                    }
                ]
            },
        )
    assert info.value.param == "phases[0][start_date]"


def test_iterations_is_refused_since_it_was_removed(client: stripe.StripeClient) -> None:
    customer = _customer(client)
    price = _price(client, 3000, "Basic")
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.subscription_schedules.create(
            params={"customer": customer.id, "phases": [{"items": [{"price": price.id}], "iterations": 3}]}  # type: ignore[typeddict-unknown-key]
        )
    assert info.value.param == "phases[0][iterations]"


def test_a_schedule_from_phases_starts_its_subscription_now(
    client: stripe.StripeClient, admin: Admin
) -> None:
    customer = _customer(client)
    basic, pro = _price(client, 3000, "Basic"), _price(client, 6000, "Pro")
    schedule = client.v1.subscription_schedules.create(
        params={
            "customer": customer.id,
            "phases": [
                {
                    "items": [{"price": basic.id, "quantity": 2}],
                    "duration": {"interval": "month"},
                    "metadata": {"tier": "basic"},
                },
                {"items": [{"price": pro.id}], "end_date": MAR1, "metadata": {"tier": "pro"}},
            ],
        }
    )
    assert schedule.status == "active"
    sub = client.v1.subscriptions.retrieve(str(schedule.subscription))
    assert sub.schedule == schedule.id
    assert sub.items.data[0].quantity == 2
    assert sub.metadata is not None
    assert sub.metadata.to_dict() == {"tier": "basic"}
    assert [(p.start_date, p.end_date) for p in schedule.phases] == [(T0, FEB1), (FEB1, MAR1)]
    # When the first phase ends the second one's items and metadata apply
    admin.set_time(FEB1)
    moved = client.v1.subscriptions.retrieve(sub.id)
    assert [(i.price.id, i.quantity) for i in moved.items.data] == [(pro.id, 1)]
    assert moved.metadata is not None
    assert moved.metadata.to_dict() == {"tier": "pro"}


def test_a_schedule_that_starts_later_creates_its_subscription_then(
    client: stripe.StripeClient, admin: Admin
) -> None:
    customer = _customer(client)
    price = _price(client, 3000, "Basic")
    schedule = client.v1.subscription_schedules.create(
        params={
            "customer": customer.id,
            "start_date": T0 + 5 * DAY,
            "phases": [{"items": [{"price": price.id}]}],
        }
    )
    assert schedule.status == "not_started"
    assert schedule.subscription is None
    assert [s.id for s in client.v1.subscription_schedules.list(params={"scheduled": True}).data] == [
        schedule.id
    ]
    admin.set_time(T0 + 5 * DAY)
    started = client.v1.subscription_schedules.retrieve(schedule.id)
    assert started.status == "active"
    sub = client.v1.subscriptions.retrieve(str(started.subscription))
    assert sub.start_date == T0 + 5 * DAY
    assert sub.status == "active"


def test_release_keeps_the_subscription_and_detaches_it(client: stripe.StripeClient, admin: Admin) -> None:
    pro, basic = _price(client, 6000, "Pro"), _price(client, 3000, "Basic")
    sub = _subscription(client, pro)
    schedule = _downgrade_at_period_end(client, sub, basic)
    released = client.v1.subscription_schedules.release(schedule.id)
    assert released.status == "released"
    assert released.released_at == T0
    assert client.v1.subscriptions.retrieve(sub.id).schedule is None
    # The released schedule's phases no longer apply, and it cannot be released again
    admin.set_time(FEB1)
    assert client.v1.subscriptions.retrieve(sub.id).items.data[0].price.id == pro.id
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscription_schedules.release(schedule.id)


def test_cancel_cancels_the_schedule_and_its_subscription(client: stripe.StripeClient, admin: Admin) -> None:
    sub = _subscription(client, _price(client, 3000, "Basic"))
    schedule = client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    canceled = client.v1.subscription_schedules.cancel(
        schedule.id, params={"invoice_now": False, "prorate": False}
    )
    assert canceled.status == "canceled"
    assert client.v1.subscriptions.retrieve(sub.id).status == "canceled"
    assert "subscription_schedule.canceled" in _types(admin)


def test_canceling_the_subscription_cancels_its_schedule(client: stripe.StripeClient, admin: Admin) -> None:
    sub = _subscription(client, _price(client, 3000, "Basic"))
    schedule = client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    client.v1.subscriptions.cancel(sub.id)
    assert client.v1.subscription_schedules.retrieve(schedule.id).status == "canceled"
    assert "subscription_schedule.canceled" in _types(admin)


def test_a_scheduled_subscriptions_cancellation_is_set_on_the_schedule(client: stripe.StripeClient) -> None:
    sub = _subscription(client, _price(client, 3000, "Basic"))
    client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    assert info.value.param == "cancel_at_period_end"


def test_list_by_customer(client: stripe.StripeClient) -> None:
    price = _price(client, 3000, "Basic")
    first, second = _subscription(client, price), _subscription(client, price)
    mine = client.v1.subscription_schedules.create(params={"from_subscription": first.id})
    client.v1.subscription_schedules.create(params={"from_subscription": second.id})
    listed = client.v1.subscription_schedules.list(params={"customer": str(first.customer)})
    assert [s.id for s in listed.data] == [mine.id]
