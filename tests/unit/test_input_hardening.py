"""Bad input is rejected at the door, naming its field: customer details Stripe would refuse, an
`updatedAt` from the far future, JSON nested too deep to read safely. Never the value in the reason."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from sbt_billing.domain.errors import InvalidEvent
from sbt_billing.entrypoints import bounded_json
from sbt_billing.entrypoints.api.changes import BillingChangeIn
from sbt_billing.entrypoints.sbt_events import (
    ProvisioningEvent,
    TenantUpdatedEvent,
    provisioning_report,
    update_facts,
)
from sbt_billing.entrypoints.sbt_inbound import parse
from sbt_billing.entrypoints.stripe_events import parse_event

from tests.support.harness import sample

BAD_EMAILS = (
    "someone@@acme.test",
    "someone",
    "someone@acme",
    "some one@acme.test",
    "someone@acme..test",
    ".someone@acme.test",
    "someone@-acme.test",
    "someone@acme.t",
    "someone@[192.0.2.1]",
    "x" * 65 + "@acme.test",
    "someone@" + "a" * 250 + ".test",
)
GOOD_EMAILS = ("billing@acme.test", "first.last+tag@mail.acme.co.uk", "o'neil@acme.test", "a@b.xn--p1ai")


def tenant_updated(**detail: Any) -> dict[str, Any]:
    event = sample("04_tenant_updated.json")
    event["detail"] = {"tenantId": event["detail"]["tenantId"], **detail}
    return event


def rejection(event: dict[str, Any]) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as rejected:
        update_facts(parse(TenantUpdatedEvent, event))
    return rejected.value


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("email", BAD_EMAILS)
def test_an_email_stripe_would_refuse_is_rejected_naming_the_field_not_the_address(email: str) -> None:
    error = rejection(tenant_updated(email=email))

    assert error.field == "detail.email"
    assert "@" not in str(error)


@pytest.mark.parametrize("email", GOOD_EMAILS)
def test_a_well_formed_email_is_accepted(email: str) -> None:
    assert update_facts(parse(TenantUpdatedEvent, tenant_updated(email=email))).email == email


def test_a_provisioning_jobs_exported_email_is_checked_where_it_sits() -> None:
    event = sample("01_provision_success.json")
    event["detail"]["jobOutput"]["tenantData"]["email"] = "billing@@acme.test"

    with pytest.raises(InvalidEvent) as rejected:
        provisioning_report(parse(ProvisioningEvent, event), succeeded=True)

    assert rejected.value.field == "detail.jobOutput.tenantData.email"


@pytest.mark.parametrize("country", ["ZZ", "USA", "U1", "United States", "uk"])
def test_a_country_outside_iso_3166_alpha_2_is_rejected(country: str) -> None:
    error = rejection(tenant_updated(address={"city": "Springfield", "country": country}))

    assert error.field == "detail.address.country"


def test_a_country_code_is_accepted_in_either_case_and_sent_in_capitals() -> None:
    facts = update_facts(parse(TenantUpdatedEvent, tenant_updated(address={"country": " gb "})))

    assert facts.address is not None
    assert facts.address.country == "GB"


@pytest.mark.parametrize(
    ("field", "value", "location"),
    [
        ("tenantName", "n" * 257, "detail.tenantName"),
        ("email", "e" * 505 + "@acme.test", "detail.email"),
    ],
)
def test_a_name_or_email_longer_than_stripe_takes_is_rejected(field: str, value: str, location: str) -> None:
    error = rejection(tenant_updated(**{field: value}))

    assert error.field == location
    assert "at most" in error.problem


def test_an_updated_at_far_after_the_events_time_is_rejected() -> None:
    event = tenant_updated(email="billing@acme.test", updatedAt="9999-12-31T23:59:59Z")

    error = rejection(event)

    assert (error.field, error.problem) == (
        "detail.updatedAt",
        "is more than 5 minutes after the event's time",
    )


def test_an_updated_at_a_little_after_the_events_time_orders_the_update() -> None:
    event = tenant_updated(email="billing@acme.test")
    at = datetime.fromisoformat(event["time"].replace("Z", "+00:00")) + timedelta(minutes=4)
    event["detail"]["updatedAt"] = at.isoformat()

    assert update_facts(parse(TenantUpdatedEvent, event)).occurred_at == at


def test_an_updated_at_without_a_time_zone_is_rejected() -> None:
    error = rejection(tenant_updated(email="billing@acme.test", updatedAt="2026-11-21T10:00:00"))

    assert (error.field, error.problem) == ("detail.updatedAt", "has no time zone")


def test_an_event_nested_deeper_than_the_limit_is_rejected_before_it_is_validated() -> None:
    event = tenant_updated(email="billing@acme.test", extra=nested(100_000))

    error = rejection(event)

    assert (error.field, error.problem) == ("event", bounded_json.TOO_DEEP)


def test_an_address_exported_as_deeply_nested_json_text_is_rejected_not_a_recursion_error() -> None:
    event = tenant_updated(address='{"city": "x", "more": ' + "[" * 100_000 + "]" * 100_000 + "}")

    error = rejection(event)

    assert error.field == "detail.address"
    assert bounded_json.TOO_DEEP in error.problem


def test_a_webhook_body_nested_too_deep_is_invalid_not_a_recursion_error() -> None:
    body = b'{"id": "evt_1", "object": "event", "data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"

    with pytest.raises(InvalidEvent) as rejected:
        parse_event(body)

    assert (rejected.value.field, rejected.value.problem) == ("body", bounded_json.TOO_DEEP)


def test_brackets_inside_strings_do_not_count_towards_the_depth() -> None:
    text = json.dumps({"note": "[[[[{{{{" * 100, "quoted": 'a \\" [[[ "', "list": [[1]]})

    assert bounded_json.text_depth(text) == 3
    assert bounded_json.loads(text)["list"] == [[1]]


def test_depth_is_measured_the_same_on_text_and_on_values() -> None:
    for depth in (0, 1, 5, bounded_json.MAX_DEPTH):
        value = nested(depth)
        assert bounded_json.text_depth(json.dumps(value)) == depth
        assert bounded_json.value_depth(value) == depth
    assert bounded_json.value_depth({"a": {"b": [1, {"c": []}]}}) == 5


def test_text_that_is_not_json_is_invalid() -> None:
    for text in (b"not json", b"\xff\xfe", b'{"a": '):
        with pytest.raises(InvalidEvent, match="is not JSON"):
            bounded_json.loads(text)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "someone@@acme.test"}, "email"),
        ({"email": "x" * 513}, "email"),
        ({"tenantName": "n" * 257}, "tenantName"),
        ({"address": {"country": "ZZ"}}, "country"),
    ],
)
def test_the_billing_apis_change_holds_details_to_the_same_rules(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        BillingChangeIn.model_validate(body)

    [error] = refused.value.errors()
    assert error["loc"][-1] == field
    assert "@" not in error["msg"]
