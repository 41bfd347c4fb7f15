"""Billing meters, meter events (v1 and the v2 stream), summaries and metered invoicing, through
the real stripe SDK (both base addresses pointed at the emulator) and the admin API.

The clock is fixed at T0 = 2026-01-01T00:00:00Z; January has 31 days.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import stripe

from stripe_emulator import StripeEmulator

from .conftest import DAY, T0, Admin

HOUR = 3600


@pytest.fixture
def client(emulator: StripeEmulator, admin: Admin) -> stripe.StripeClient:
    admin.set_time(T0)
    return stripe.StripeClient(
        api_key="sk_test_emulator",
        base_addresses={"api": emulator.url, "meter_events": emulator.url},
        max_network_retries=0,
    )


def _meter(
    client: stripe.StripeClient, event_name: str = "api_calls", formula: str = "sum"
) -> stripe.billing.Meter:
    return client.v1.billing.meters.create(
        params={
            "display_name": "API calls",
            "event_name": event_name,
            "default_aggregation": {"formula": formula},  # type: ignore[typeddict-item]
        }
    )


def _customer(client: stripe.StripeClient) -> stripe.Customer:
    return client.v1.customers.create(params={"email": "usage@example.com"})


def _event(client: stripe.StripeClient, customer: str, value: str, **extra: Any) -> stripe.billing.MeterEvent:
    return client.v1.billing.meter_events.create(
        params={
            "event_name": "api_calls",
            "payload": {"stripe_customer_id": customer, "value": value},
            **extra,
        }
    )


def _usage(client: stripe.StripeClient, meter: str, customer: str, start: int, end: int) -> float:
    summaries = client.v1.billing.meters.event_summaries.list(
        meter, params={"customer": customer, "start_time": start, "end_time": end}
    )
    assert len(summaries.data) == 1
    return float(summaries.data[0].aggregated_value)


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


# meters -----------------------------------------------------------------------------------------
def test_meter_create_and_list(client: stripe.StripeClient) -> None:
    # Given two meters, one of them deactivated
    calls = _meter(client, "api_calls")
    seats = _meter(client, "seats", formula="last")
    client.v1.billing.meters.deactivate(seats.id)
    # When listing all, and only the active ones
    everything = client.v1.billing.meters.list()
    active = client.v1.billing.meters.list(params={"status": "active"})
    # Then both are listed (newest first) with Stripe's default payload keys, and the filter works
    assert [m.id for m in everything.data] == [seats.id, calls.id]
    assert [m.id for m in active.data] == [calls.id]
    assert calls.object == "billing.meter"
    assert calls.customer_mapping.event_payload_key == "stripe_customer_id"
    assert calls.value_settings.event_payload_key == "value"
    assert calls.default_aggregation.formula == "sum"


# v1 meter events --------------------------------------------------------------------------------
def test_v1_event_accepted_and_summarized(client: stripe.StripeClient) -> None:
    meter = _meter(client)
    customer = _customer(client)
    # When two events are reported an hour apart
    first = _event(client, customer.id, "25", timestamp=T0 - 2 * HOUR)
    _event(client, customer.id, "17", timestamp=T0 - HOUR)
    # Then each is echoed back, and the day's summary is their sum
    assert first.object == "billing.meter_event"
    assert first.payload["value"] == "25"
    assert first.timestamp == T0 - 2 * HOUR
    assert _usage(client, meter.id, customer.id, T0 - DAY, T0) == 42.0


def test_duplicate_identifier_is_counted_once(client: stripe.StripeClient) -> None:
    meter = _meter(client)
    customer = _customer(client)
    _event(client, customer.id, "10", identifier="usage-1", timestamp=T0 - 60)
    # When the same identifier is reported again within 24 hours
    with pytest.raises(stripe.InvalidRequestError) as info:
        _event(client, customer.id, "10", identifier="usage-1", timestamp=T0 - 60)
    # Then Stripe's rejection comes back (not retryable) and the usage is counted once
    assert "already exists with identifier usage-1" in str(info.value)
    assert info.value.headers["stripe-should-retry"] == "false"
    assert _usage(client, meter.id, customer.id, T0 - HOUR, T0) == 10.0


def test_timestamp_36_days_old_is_rejected(client: stripe.StripeClient) -> None:
    meter = _meter(client)
    customer = _customer(client)
    with pytest.raises(stripe.InvalidRequestError) as info:
        _event(client, customer.id, "5", timestamp=T0 - 36 * DAY)
    assert info.value.http_status == 400
    assert info.value.code == "timestamp_too_far_in_past"
    assert _usage(client, meter.id, customer.id, T0 - 40 * DAY, T0) == 0.0


def test_timestamp_six_minutes_ahead_is_rejected(client: stripe.StripeClient) -> None:
    _meter(client)
    customer = _customer(client)
    with pytest.raises(stripe.InvalidRequestError) as info:
        _event(client, customer.id, "5", timestamp=T0 + 6 * 60)
    assert info.value.http_status == 400
    assert info.value.code == "timestamp_in_future"


# v2 session and stream --------------------------------------------------------------------------
def test_v2_stream_of_100_events_counted_once_each(client: stripe.StripeClient, admin: Admin) -> None:
    meter = _meter(client)
    customer = _customer(client)
    # Given a session (secret key) whose token expires in 15 minutes
    session = client.v2.billing.meter_event_session.create()
    assert session.object == "v2.billing.meter_event_session"
    assert session.expires_at == _iso(T0 + 15 * 60).replace("Z", ".000Z")
    # When 100 events are streamed in one request, authenticated with the token
    events = [
        {
            "event_name": "api_calls",
            "identifier": f"evt-{i}",
            "payload": {"stripe_customer_id": customer.id, "value": "2"},
            "timestamp": _iso(T0 - 30 * 60),
        }
        for i in range(100)
    ]
    client.v2.billing.meter_event_stream.create(
        params={"events": events},  # type: ignore[typeddict-item]
        options={"api_key": session.authentication_token},
    )
    # Then every event is stored once and summarized, and each request was counted by route
    assert _usage(client, meter.id, customer.id, T0 - HOUR, T0) == 200.0
    state = admin.call("GET", "/_emulator/state")
    assert len(state["meter_events"]) == 100
    counts = admin.counts()
    assert counts["POST /v2/billing/meter_event_session"] == 1
    assert counts["POST /v2/billing/meter_event_stream"] == 1


def test_v2_event_failures_are_reported_not_answered(client: stripe.StripeClient, admin: Admin) -> None:
    _meter(client)
    session = client.v2.billing.meter_event_session.create()
    # When the stream carries an event for an unknown customer (validation is asynchronous)
    client.v2.billing.meter_event_stream.create(
        params={
            "events": [
                {"event_name": "api_calls", "payload": {"stripe_customer_id": "cus_nobody", "value": "1"}}
            ]
        },
        options={"api_key": session.authentication_token},
    )
    # Then the request succeeded, nothing was stored, and an error report names the problem
    state = admin.call("GET", "/_emulator/state")
    assert state["meter_events"] == []
    [report] = state["meter_error_reports"]
    assert report["type"] == "v1.billing.meter.error_report_triggered"
    assert report["code"] == "meter_event_customer_not_found"


def test_expired_session_token_is_rejected(client: stripe.StripeClient, admin: Admin) -> None:
    _meter(client)
    customer = _customer(client)
    session = client.v2.billing.meter_event_session.create()
    # When the clock passes the 15-minute expiry
    admin.advance(15 * 60 + 1)
    with pytest.raises(stripe.TemporarySessionExpiredError) as info:
        client.v2.billing.meter_event_stream.create(
            params={
                "events": [
                    {"event_name": "api_calls", "payload": {"stripe_customer_id": customer.id, "value": "1"}}
                ]
            },
            options={"api_key": session.authentication_token},
        )
    # Then it is the documented 401 in the v2 envelope
    assert info.value.http_status == 401
    assert info.value.code == "billing_meter_event_session_expired"
    assert info.value.json_body["error"]["type"] == "temporary_session_expired"  # type: ignore[index]


def test_more_than_100_events_are_rejected(client: stripe.StripeClient, admin: Admin) -> None:
    _meter(client)
    customer = _customer(client)
    session = client.v2.billing.meter_event_session.create()
    events = [{"event_name": "api_calls", "payload": {"stripe_customer_id": customer.id, "value": "1"}}] * 101
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v2.billing.meter_event_stream.create(
            params={"events": events},  # type: ignore[typeddict-item]
            options={"api_key": session.authentication_token},
        )
    assert info.value.http_status == 400
    assert info.value.code == "invalid_fields"
    assert admin.call("GET", "/_emulator/state")["meter_events"] == []


# metered prices on invoices ---------------------------------------------------------------------
def test_metered_item_billed_from_usage_on_next_invoice(client: stripe.StripeClient, admin: Admin) -> None:
    # Given a $30/month licensed price and a 5-cent metered price on a sum meter
    meter = _meter(client)
    customer = _customer(client)
    basic = client.v1.prices.create(
        params={
            "currency": "usd",
            "unit_amount": 3000,
            "recurring": {"interval": "month"},
            "product_data": {"name": "Basic"},
        }
    )
    calls = client.v1.prices.create(
        params={
            "currency": "usd",
            "unit_amount": 5,
            "recurring": {"interval": "month", "usage_type": "metered", "meter": meter.id},
            "product_data": {"name": "Calls"},
        }
    )
    sub = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": basic.id, "quantity": 1}, {"price": calls.id}],
            "collection_method": "send_invoice",
            "days_until_due": 30,
        }
    )
    # And 42 units of usage in January (reported on Jan 11)
    admin.set_time(T0 + 10 * DAY)
    for value, day in (("10", 1), ("20", 5), ("12", 10)):
        _event(client, customer.id, value, timestamp=T0 + day * DAY - 60)
    # When the period ends on Feb 1 (usage reported in February is not January's)
    admin.set_time(T0 + 31 * DAY - 120)
    _event(client, customer.id, "1000", timestamp=T0 + 31 * DAY + 60)
    admin.set_time(T0 + 31 * DAY)
    renewed = client.v1.subscriptions.retrieve(sub.id)
    invoice = client.v1.invoices.retrieve(str(renewed.latest_invoice))
    # Then the renewal invoice bills January's usage in arrears: 42 x $0.05, plus February's $30
    assert invoice.billing_reason == "subscription_cycle"
    metered = [line for line in invoice.lines.data if line.pricing.price_details.price == calls.id]  # type: ignore[union-attr]
    assert len(metered) == 1
    assert metered[0].quantity == 42
    assert metered[0].amount == 210
    assert (metered[0].period.start, metered[0].period.end) == (T0, T0 + 31 * DAY)
    assert invoice.total == 3000 + 210


def test_cancel_with_invoice_now_bills_usage_so_far(client: stripe.StripeClient, admin: Admin) -> None:
    # Given a metered subscription with usage reported at the very second it is cancelled
    meter = _meter(client)
    customer = _customer(client)
    calls = client.v1.prices.create(
        params={
            "currency": "usd",
            "unit_amount": 7,
            "recurring": {"interval": "month", "usage_type": "metered", "meter": meter.id},
            "product_data": {"name": "Calls"},
        }
    )
    sub = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": calls.id}],
            "collection_method": "send_invoice",
            "days_until_due": 30,
        }
    )
    admin.set_time(T0 + DAY)
    _event(client, customer.id, "3", timestamp=T0 + DAY - 60)
    _event(client, customer.id, "2")  # timestamp defaults to now
    # When it is cancelled with invoice_now
    canceled = client.v1.subscriptions.cancel(sub.id, params={"invoice_now": True})
    invoice = client.v1.invoices.retrieve(str(canceled.latest_invoice))
    # Then the final invoice bills the usage so far: 5 x $0.07
    [line] = invoice.lines.data
    assert (line.quantity, line.amount) == (5, 35)
    assert (line.period.start, line.period.end) == (T0, T0 + DAY)
