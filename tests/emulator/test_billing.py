"""Catalogue, subscriptions, invoices and prorations through the real stripe SDK.

Amounts are hand-computed with the clock fixed at T0 = 2026-01-01T00:00:00Z: a monthly
period is January (31 days); ten days in, 21/31 of it remains.
"""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from .conftest import DAY, T0, Admin


@pytest.fixture
def client(stripe_client: stripe.StripeClient, admin: Admin) -> stripe.StripeClient:
    admin.set_time(T0)
    return stripe_client


def _price(client: stripe.StripeClient, amount: int, name: str, **extra: Any) -> stripe.Price:
    return client.v1.prices.create(
        params={
            "currency": "usd",
            "unit_amount": amount,
            "recurring": {"interval": "month"},
            "product_data": {"name": name},
            **extra,
        }
    )


def _subscribe(client: stripe.StripeClient, price: stripe.Price, **extra: Any) -> stripe.Subscription:
    customer = client.v1.customers.create(params={"email": "buyer@example.com"})
    params: dict[str, Any] = {
        "customer": customer.id,
        "items": [{"price": price.id, "quantity": 1}],
        "collection_method": "send_invoice",
        "days_until_due": 30,
    }
    params.update(extra)
    return client.v1.subscriptions.create(params=params)  # type: ignore[arg-type]


def _invoice(client: stripe.StripeClient, invoice: Any) -> stripe.Invoice:
    return client.v1.invoices.retrieve(invoice if isinstance(invoice, str) else invoice.id)


# catalogue -------------------------------------------------------------------------------------
def test_prices_list_by_lookup_keys(client: stripe.StripeClient) -> None:
    # Given three prices, two with lookup keys
    basic = _price(client, 2900, "Basic", lookup_key="basic")
    pro = _price(client, 9900, "Pro", lookup_key="pro")
    _price(client, 100, "Other")
    # When listing by lookup keys
    found = client.v1.prices.list(params={"lookup_keys": ["basic", "pro"]})
    # Then exactly those prices come back
    assert {p.id for p in found.data} == {basic.id, pro.id}


def test_taken_lookup_key_is_rejected(client: stripe.StripeClient) -> None:
    _price(client, 2900, "Basic", lookup_key="basic")
    with pytest.raises(stripe.InvalidRequestError) as info:
        _price(client, 3900, "Basic v2", lookup_key="basic")
    assert info.value.param == "lookup_key"


def test_transfer_lookup_key_moves_the_key(client: stripe.StripeClient) -> None:
    old = _price(client, 2900, "Basic", lookup_key="basic")
    new = _price(client, 3900, "Basic v2", lookup_key="basic", transfer_lookup_key=True)
    assert client.v1.prices.retrieve(old.id).lookup_key is None
    assert [p.id for p in client.v1.prices.list(params={"lookup_keys": ["basic"]}).data] == [new.id]


def test_metered_price_requires_a_meter(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.prices.create(
            params={
                "currency": "usd",
                "unit_amount": 5,
                "recurring": {"interval": "month", "usage_type": "metered"},
                "product_data": {"name": "API calls"},
            }
        )
    assert info.value.param == "recurring[meter]"


# subscription creation -------------------------------------------------------------------------
def test_send_invoice_subscription_is_active_with_open_invoice(client: stripe.StripeClient) -> None:
    # Given a $30/month price and a metered price
    basic = _price(client, 3000, "Basic")
    metered = _price(
        client, 5, "Calls", recurring={"interval": "month", "usage_type": "metered", "meter": "mtr_1"}
    )
    customer = client.v1.customers.create()
    # When subscribing with send_invoice, quantity 2 of the licensed price
    sub = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": basic.id, "quantity": 2}, {"price": metered.id}],
            "collection_method": "send_invoice",
            "days_until_due": 30,
            "expand": ["latest_invoice"],
        }
    )
    # Then it is active and its first invoice is open for 2 x $30 (metered bills nothing up front)
    assert sub.status == "active"
    invoice = sub.latest_invoice
    assert isinstance(invoice, stripe.Invoice)
    assert invoice.status == "open"
    assert invoice.amount_due == 6000
    assert invoice.due_date == T0 + 30 * DAY
    assert invoice.parent is not None
    assert invoice.parent.subscription_details is not None
    assert invoice.parent.subscription_details.subscription == sub.id
    assert sub.items.data[0].current_period_start == T0
    assert sub.items.data[0].current_period_end == T0 + 31 * DAY


def test_send_invoice_requires_days_until_due(client: stripe.StripeClient) -> None:
    basic = _price(client, 3000, "Basic")
    customer = client.v1.customers.create()
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.subscriptions.create(
            params={
                "customer": customer.id,
                "items": [{"price": basic.id}],
                "collection_method": "send_invoice",
            }
        )
    assert info.value.param == "days_until_due"


def test_trial_subscription_is_trialing_with_zero_paid_invoice(client: stripe.StripeClient) -> None:
    basic = _price(client, 3000, "Basic")
    sub = _subscribe(
        client,
        basic,
        trial_period_days=14,
        trial_settings={"end_behavior": {"missing_payment_method": "pause"}},
    )
    assert sub.status == "trialing"
    assert sub.trial_end == T0 + 14 * DAY
    invoice = _invoice(client, sub.latest_invoice)
    assert (invoice.status, invoice.total) == ("paid", 0)


def test_trial_end_without_payment_method_pauses_when_asked(
    client: stripe.StripeClient, admin: Admin
) -> None:
    basic = _price(client, 3000, "Basic")
    customer = client.v1.customers.create()
    sub = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": basic.id}],
            "trial_period_days": 7,
            "trial_settings": {"end_behavior": {"missing_payment_method": "pause"}},
        }
    )
    admin.advance(8 * DAY)
    assert client.v1.subscriptions.retrieve(sub.id).status == "paused"


def test_charge_automatically_without_payment_method_is_incomplete(
    client: stripe.StripeClient, admin: Admin
) -> None:
    # Given a customer with no payment method
    basic = _price(client, 3000, "Basic")
    customer = client.v1.customers.create()
    # When subscribing with charge_automatically
    sub = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": basic.id}],
            "payment_behavior": "default_incomplete",
        }
    )
    # Then it is incomplete with an open invoice, and paying that invoice activates it
    assert sub.status == "incomplete"
    invoice = _invoice(client, sub.latest_invoice)
    assert invoice.status == "open"
    admin.call("POST", f"/_emulator/invoices/{invoice.id}/pay")
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"
    assert [e["type"] for e in admin.events("invoice.paid")] == ["invoice.paid"]


def test_charge_automatically_with_payment_method_is_active_and_paid(client: stripe.StripeClient) -> None:
    basic = _price(client, 3000, "Basic")
    customer = client.v1.customers.create()
    sub = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": basic.id}],
            "default_payment_method": "pm_card_visa",
        }
    )
    assert sub.status == "active"
    assert _invoice(client, sub.latest_invoice).status == "paid"


def test_failed_payments_go_past_due_then_unpaid(client: stripe.StripeClient, admin: Admin) -> None:
    basic = _price(client, 3000, "Basic")
    sub = _subscribe(client, basic)
    invoice_id = str(sub.latest_invoice)
    admin.call("POST", "/_emulator/settings", {"payment_retry_attempts": 2})
    admin.call("POST", f"/_emulator/invoices/{invoice_id}/fail")
    assert client.v1.subscriptions.retrieve(sub.id).status == "past_due"
    admin.call("POST", f"/_emulator/invoices/{invoice_id}/fail")
    assert client.v1.subscriptions.retrieve(sub.id).status == "unpaid"
    assert len(admin.events("invoice.payment_failed")) == 2


def test_renewal_on_clock_advance_invoices_the_next_period(client: stripe.StripeClient, admin: Admin) -> None:
    basic = _price(client, 3000, "Basic")
    sub = _subscribe(client, basic)
    admin.advance(32 * DAY)
    renewed = client.v1.subscriptions.retrieve(sub.id)
    assert renewed.items.data[0].current_period_start == T0 + 31 * DAY
    invoice = _invoice(client, renewed.latest_invoice)
    assert (invoice.billing_reason, invoice.total, invoice.status) == ("subscription_cycle", 3000, "open")


def test_draft_finalized_by_a_payment_is_due_after_the_subscriptions_days(
    client: stripe.StripeClient, admin: Admin
) -> None:
    # Given a send_invoice subscription due in 10 days whose renewal is kept as a draft
    basic = _price(client, 3000, "Basic")
    sub = _subscribe(client, basic, days_until_due=10)
    client.v1.subscriptions.update(sub.id, params={"pause_collection": {"behavior": "keep_as_draft"}})
    admin.advance(32 * DAY)
    draft = _invoice(client, client.v1.subscriptions.retrieve(sub.id).latest_invoice)
    assert draft.status == "draft"
    # When a failed payment attempt finalizes it
    failed = admin.call("POST", f"/_emulator/invoices/{draft.id}/fail")
    # Then it is due 10 days after finalizing, as the subscription says (not the 30-day default)
    assert failed["status"] == "open"
    assert failed["due_date"] == failed["status_transitions"]["finalized_at"] + 10 * DAY


# prorations ------------------------------------------------------------------------------------
def test_create_prorations_adds_pending_credit_and_charge(client: stripe.StripeClient, admin: Admin) -> None:
    # Given ten days into a 31-day period on $30
    basic = _price(client, 3000, "Basic")
    pro = _price(client, 6000, "Pro")
    sub = _subscribe(client, basic)
    admin.advance(10 * DAY)
    # When switching to $60 with create_prorations
    client.v1.subscriptions.update(
        sub.id,
        params={
            "items": [{"id": sub.items.data[0].id, "price": pro.id}],
            "proration_behavior": "create_prorations",
        },
    )
    # Then the next invoice carries -30*21/31 and +60*21/31 (rounded to the cent) plus the next period
    preview = client.v1.invoices.create_preview(params={"subscription": sub.id})
    amounts = sorted(line.amount for line in preview.lines.data)
    assert amounts == [-2032, 4065, 6000]
    assert preview.total == 8033
    assert preview.id.startswith("upcoming_in")
    pending = client.v1.invoice_items.list(params={"customer": sub.customer, "pending": True})  # type: ignore[typeddict-item]
    assert sorted(i.amount for i in pending.data) == [-2032, 4065]


def test_always_invoice_bills_prorations_at_once(client: stripe.StripeClient, admin: Admin) -> None:
    basic = _price(client, 3000, "Basic")
    pro = _price(client, 6000, "Pro")
    sub = _subscribe(client, basic)
    admin.advance(10 * DAY)
    updated = client.v1.subscriptions.update(
        sub.id,
        params={
            "items": [{"id": sub.items.data[0].id, "price": pro.id}],
            "proration_behavior": "always_invoice",
        },
    )
    invoice = _invoice(client, updated.latest_invoice)
    assert invoice.id != sub.latest_invoice
    assert invoice.billing_reason == "subscription_update"
    assert sorted(line.amount for line in invoice.lines.data) == [-2032, 4065]
    assert (invoice.status, invoice.amount_due) == ("open", 2033)


def test_proration_none_creates_no_lines(client: stripe.StripeClient, admin: Admin) -> None:
    basic = _price(client, 3000, "Basic")
    pro = _price(client, 6000, "Pro")
    sub = _subscribe(client, basic)
    admin.advance(10 * DAY)
    client.v1.subscriptions.update(
        sub.id,
        params={"items": [{"id": sub.items.data[0].id, "price": pro.id}], "proration_behavior": "none"},
    )
    preview = client.v1.invoices.create_preview(params={"subscription": sub.id})
    assert [line.amount for line in preview.lines.data] == [6000]


def test_quantity_change_prorates_by_quantity(client: stripe.StripeClient, admin: Admin) -> None:
    basic = _price(client, 3000, "Basic")
    sub = _subscribe(client, basic)
    admin.advance(10 * DAY)
    client.v1.subscription_items.update(sub.items.data[0].id, params={"quantity": 3})
    pending = client.v1.invoice_items.list(params={"customer": sub.customer, "pending": True})  # type: ignore[typeddict-item]
    assert sorted(i.amount for i in pending.data) == [-2032, 6097]


def test_preview_with_subscription_details_does_not_change_anything(
    client: stripe.StripeClient, admin: Admin
) -> None:
    basic = _price(client, 3000, "Basic")
    pro = _price(client, 6000, "Pro")
    sub = _subscribe(client, basic)
    admin.advance(10 * DAY)
    preview = client.v1.invoices.create_preview(
        params={
            "subscription": sub.id,
            "subscription_details": {"items": [{"id": sub.items.data[0].id, "price": pro.id}]},
        }
    )
    assert sorted(line.amount for line in preview.lines.data) == [-2032, 4065, 6000]
    assert client.v1.subscriptions.retrieve(sub.id).items.data[0].price.id == basic.id


# cancellation ----------------------------------------------------------------------------------
def test_cancel_now_with_prorate_and_invoice_now_credits_unused_time(
    client: stripe.StripeClient, admin: Admin
) -> None:
    # Given ten days into a $30 period
    basic = _price(client, 3000, "Basic")
    sub = _subscribe(client, basic)
    admin.advance(10 * DAY)
    # When cancelling immediately with invoice_now and prorate
    canceled = client.v1.subscriptions.cancel(
        sub.id, params={"invoice_now": True, "prorate": True, "cancellation_details": {"comment": "bye"}}
    )
    # Then it is canceled now, and a final invoice credits 21/31 of $30 to the customer's balance
    assert canceled.status == "canceled"
    assert canceled.canceled_at == canceled.ended_at == T0 + 10 * DAY
    assert canceled.cancellation_details is not None
    assert canceled.cancellation_details.comment == "bye"
    final = _invoice(client, canceled.latest_invoice)
    assert [line.amount for line in final.lines.data] == [-2032]
    assert (final.total, final.amount_due, final.status) == (-2032, 0, "paid")
    assert client.v1.customers.retrieve(str(sub.customer)).balance == -2032


def test_cancel_without_invoice_now_leaves_no_final_invoice(client: stripe.StripeClient) -> None:
    basic = _price(client, 3000, "Basic")
    sub = _subscribe(client, basic)
    canceled = client.v1.subscriptions.cancel(sub.id)
    assert canceled.status == "canceled"
    assert canceled.latest_invoice == sub.latest_invoice


def test_cancelling_a_canceled_subscription_is_400(client: stripe.StripeClient) -> None:
    basic = _price(client, 3000, "Basic")
    sub = _subscribe(client, basic)
    client.v1.subscriptions.cancel(sub.id)
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.subscriptions.cancel(sub.id)
    assert info.value.http_status == 400


def test_cancel_at_period_end_cancels_when_the_period_ends(client: stripe.StripeClient, admin: Admin) -> None:
    # Given a subscription set to cancel at period end
    basic = _price(client, 3000, "Basic")
    sub = _subscribe(client, basic)
    updated = client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    assert (updated.status, updated.cancel_at_period_end, updated.cancel_at) == (
        "active",
        True,
        T0 + 31 * DAY,
    )
    # When the clock passes the period end
    admin.advance(31 * DAY + 1)
    # Then it is canceled at the period end, without a renewal invoice
    ended = client.v1.subscriptions.retrieve(sub.id)
    assert (ended.status, ended.ended_at) == ("canceled", T0 + 31 * DAY)
    assert ended.latest_invoice == sub.latest_invoice
    assert len(admin.events("customer.subscription.deleted")) == 1


def test_list_excludes_canceled_by_default(client: stripe.StripeClient) -> None:
    basic = _price(client, 3000, "Basic")
    live = _subscribe(client, basic)
    gone = _subscribe(client, basic)
    client.v1.subscriptions.cancel(gone.id)
    assert [s.id for s in client.v1.subscriptions.list().data] == [live.id]
    assert [s.id for s in client.v1.subscriptions.list(params={"status": "canceled"}).data] == [gone.id]
    assert len(client.v1.subscriptions.list(params={"status": "all"}).data) == 2


def test_deleting_customer_cancels_its_subscriptions(client: stripe.StripeClient) -> None:
    basic = _price(client, 3000, "Basic")
    sub = _subscribe(client, basic)
    client.v1.customers.delete(str(sub.customer))
    assert client.v1.subscriptions.retrieve(sub.id).status == "canceled"


def test_expand_latest_invoice_and_customer(client: stripe.StripeClient) -> None:
    basic = _price(client, 3000, "Basic")
    sub = _subscribe(client, basic)
    got = client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice", "customer"]})
    assert isinstance(got.latest_invoice, stripe.Invoice)
    assert isinstance(got.customer, stripe.Customer)


def test_events_record_subscription_lifecycle(client: stripe.StripeClient) -> None:
    basic = _price(client, 3000, "Basic")
    sub = _subscribe(client, basic)
    client.v1.subscriptions.update(sub.id, params={"metadata": {"tier": "basic"}})
    events = client.v1.events.list(params={"type": "customer.subscription.updated"})
    latest = events.data[0].to_dict()
    assert latest["data"]["object"]["metadata"] == {"tier": "basic"}
    assert latest["data"]["previous_attributes"] == {"metadata": {}}
