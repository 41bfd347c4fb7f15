"""Meter error reports as API v2 thin events: recorded when the stream's asynchronous validation drops
events, fetched with ``GET /v2/core/events/{id}``, delivered thin and signed, through the real SDK."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from stripe_emulator import StripeEmulator

from .conftest import T0, Admin

SECRET = "whsec_thin_" + "0" * 24


@pytest.fixture
def client(emulator: StripeEmulator, admin: Admin) -> stripe.StripeClient:
    admin.set_time(T0)
    return stripe.StripeClient(
        api_key="sk_test_emulator",
        base_addresses={"api": emulator.url, "meter_events": emulator.url},
        max_network_retries=0,
    )


def _meter(client: stripe.StripeClient, event_name: str = "api_calls") -> stripe.billing.Meter:
    return client.v1.billing.meters.create(
        params={
            "display_name": event_name,
            "event_name": event_name,
            "default_aggregation": {"formula": "sum"},
        }
    )


def _stream(client: stripe.StripeClient, *events: dict[str, Any]) -> None:
    session = client.v2.billing.meter_event_session.create()
    client.v2.billing.meter_event_stream.create(
        params={"events": list(events)},  # type: ignore[typeddict-item]
        options={"api_key": session.authentication_token},
    )


def _usage(customer: str, identifier: str, value: str = "1", event_name: str = "api_calls") -> dict[str, Any]:
    return {
        "event_name": event_name,
        "identifier": identifier,
        "payload": {"stripe_customer_id": customer, "value": value},
    }


def test_events_dropped_for_an_archived_meter_are_reported_with_their_identifiers(
    client: stripe.StripeClient,
) -> None:
    # Given a deactivated meter, and a good customer
    meter = _meter(client)
    client.v1.billing.meters.deactivate(meter.id)
    customer = client.v1.customers.create()
    # When the stream carries two events for it (the stream answers {} either way)
    _stream(client, _usage(customer.id, "sbt-a"), _usage(customer.id, "sbt-b"))
    # Then one error report names the meter, the code and both identifiers
    [listed] = client.v2.core.events.list(params={"object_id": meter.id}).data
    event = client.v2.core.events.retrieve(listed.id)
    assert event.type == "v1.billing.meter.error_report_triggered"
    data = event.to_dict()["data"]
    assert data["reason"]["error_count"] == 2
    [kind] = data["reason"]["error_types"]
    assert kind["code"] == "archived_meter"
    assert [s["request"]["identifier"] for s in kind["sample_errors"]] == ["sbt-a", "sbt-b"]
    assert event.to_dict()["related_object"]["id"] == meter.id


def test_a_report_names_only_a_sample_of_many_errors(client: stripe.StripeClient, admin: Admin) -> None:
    _meter(client)
    admin.call("POST", "/_emulator/settings", {"meter_error_samples": 2})
    _stream(client, *[_usage("cus_nobody", f"sbt-{i}") for i in range(5)])
    [event] = client.v2.core.events.list().data
    reason = client.v2.core.events.retrieve(event.id).to_dict()["data"]["reason"]
    assert reason["error_count"] == 5
    assert [len(kind["sample_errors"]) for kind in reason["error_types"]] == [2]


def test_events_for_no_meter_are_a_no_meter_found_report(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create()
    _stream(client, _usage(customer.id, "sbt-x", event_name="nothing_measures_this"))
    [event] = client.v2.core.events.list().data
    assert event.type == "v1.billing.meter.no_meter_found"
    assert event.to_dict().get("related_object") is None


def test_values_with_more_than_fifteen_significant_digits_are_dropped(client: stripe.StripeClient) -> None:
    _meter(client)
    customer = client.v1.customers.create()
    _stream(client, _usage(customer.id, "sbt-long", value="1234567890.123456"), _usage(customer.id, "sbt-ok"))
    [event] = client.v2.core.events.list().data
    [kind] = client.v2.core.events.retrieve(event.id).to_dict()["data"]["reason"]["error_types"]
    assert kind["code"] == "meter_event_value_too_many_digits"
    assert [s["request"]["identifier"] for s in kind["sample_errors"]] == ["sbt-long"]


def test_a_thin_delivery_is_signed_without_data_and_the_sdk_fetches_the_rest(
    client: stripe.StripeClient, admin: Admin
) -> None:
    # Given an error report
    meter = _meter(client)
    client.v1.billing.meters.deactivate(meter.id)
    _stream(client, _usage("cus_any", "sbt-a"))
    [event] = client.v2.core.events.list().data
    # When the emulator signs its delivery for a thin event destination
    delivery = admin.call("POST", f"/_emulator/events/{event.id}/signed", {"secret": SECRET})
    # Then the payload is thin, the SDK verifies it, and fetching the event gives its data
    assert "data" not in delivery["payload"]
    notification = client.parse_event_notification(
        delivery["payload"], delivery["headers"]["Stripe-Signature"], SECRET
    )
    assert notification.type == "v1.billing.meter.error_report_triggered"
    fetched = notification.fetch_event()
    assert fetched.to_dict()["data"]["reason"]["error_types"][0]["code"] == "archived_meter"
    with pytest.raises(stripe.SignatureVerificationError):
        client.parse_event_notification(
            delivery["payload"], delivery["headers"]["Stripe-Signature"], "whsec_other"
        )
