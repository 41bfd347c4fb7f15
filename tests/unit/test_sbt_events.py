"""SBT's events parsed at the boundary: the field at fault named by its path, the facts each event
carries, wherever SBT puts them, and the tier named for the one check against the catalogue."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest
from sbt_billing.domain.errors import InvalidEvent
from sbt_billing.entrypoints.sbt_events import (
    OnboardingRequestEvent,
    ProvisioningEvent,
    TenantDeletedEvent,
    TenantUpdatedEvent,
    deletion_facts,
    named_tier,
    onboarding_request,
    provisioning_report,
    update_facts,
)
from sbt_billing.entrypoints.sbt_inbound import parse
from sbt_billing.entrypoints.sbt_usage_events import UsageEvent, usage_records
from sbt_billing.entrypoints.sbt_user_events import TenantUserEvent, user_fact

from tests.support.harness import sample


def test_an_onboarding_request_names_the_tenant_its_registration_and_its_facts() -> None:
    event = parse(OnboardingRequestEvent, sample("00_onboarding_request.json"))
    facts, registration = onboarding_request(event)
    assert (facts.tenant_id, registration) == (event.detail.tenant_id, event.detail.registration_id)
    assert facts.tier == named_tier(event) == event.detail.tier
    assert facts.occurred_at == event.time


def test_a_missing_tenant_id_is_named_by_its_path() -> None:
    raw = sample("04_tenant_updated.json")
    del raw["detail"]["tenantId"]
    with pytest.raises(InvalidEvent) as refused:
        parse(TenantUpdatedEvent, raw)
    assert (refused.value.field, refused.value.problem) == ("detail.tenantId", "is required")


def test_an_event_time_without_a_zone_is_refused() -> None:
    raw = sample("04_tenant_updated.json")
    raw["time"] = "2026-11-21T10:00:00"
    with pytest.raises(InvalidEvent, match=r"^time: has no time zone"):
        parse(TenantUpdatedEvent, raw)


def test_an_event_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(InvalidEvent, match=r"^event: is not a JSON object"):
        parse(TenantUpdatedEvent, ["not", "an", "event"])  # type: ignore[arg-type]


def provisioning(detail: dict[str, Any]) -> ProvisioningEvent:
    raw = copy.deepcopy(sample("01_provision_success.json"))
    raw["detail"] = detail
    return parse(ProvisioningEvent, raw)


def test_provisioning_reads_tenant_data_over_registration_data_over_flat_fields() -> None:
    event = provisioning(
        {
            "tenantRegistrationId": "reg-1",
            "tier": "basic",
            "email": "flat@acme.test",
            "jobOutput": {
                "tenantRegistrationData": {"tier": "standard", "email": "registration@acme.test"},
                "tenantData": {"tier": "premium"},
            },
        }
    )
    facts, tenant, registration = provisioning_report(event, succeeded=True)
    assert (facts.tier, facts.email, tenant, registration) == (
        "premium",
        "registration@acme.test",
        None,
        "reg-1",
    )
    assert named_tier(event) == "premium"
    assert facts.open_requested
    assert not facts.provisioning_failed


def test_a_provisioning_failure_closes_unbilled() -> None:
    facts, _, _ = provisioning_report(provisioning({"tenantRegistrationId": "reg-1"}), succeeded=False)
    assert facts.provisioning_failed
    assert not facts.open_requested


def test_an_address_exported_as_json_text_is_read_as_an_address() -> None:
    event = provisioning(
        {"tenantRegistrationId": "reg-1", "jobOutput": {"tenantData": {"address": '{"city": "Springfield"}'}}}
    )
    facts, _, _ = provisioning_report(event, succeeded=True)
    assert facts.address is not None
    assert facts.address.city == "Springfield"


def test_a_provisioning_event_naming_neither_tenant_nor_registration_is_refused() -> None:
    with pytest.raises(InvalidEvent, match=r"^detail.tenantRegistrationId: is required"):
        provisioning_report(provisioning({"jobOutput": {"tenantData": {"tier": "basic"}}}), succeeded=True)


def test_an_update_naming_nothing_to_change_is_refused() -> None:
    raw = sample("04_tenant_updated.json")
    raw["detail"] = {"tenantId": raw["detail"]["tenantId"]}
    with pytest.raises(InvalidEvent, match="nothing to update"):
        update_facts(parse(TenantUpdatedEvent, raw))


def test_an_updates_updated_at_orders_it_rather_than_the_envelope_time() -> None:
    event = parse(TenantUpdatedEvent, sample("04_tenant_updated.json"))
    assert event.detail.updated_at is not None
    assert update_facts(event).occurred_at == event.detail.updated_at


def test_a_deletion_names_no_tier_and_only_the_tenant() -> None:
    event = parse(TenantDeletedEvent, sample("06_tenant_deleted.json"))
    facts = deletion_facts(event)
    assert named_tier(event) is None
    assert (facts.tenant_id, facts.tier, facts.name) == (event.detail.tenant_id, None, None)


def test_at_the_same_instant_a_users_deletion_stamps_after_its_creation() -> None:
    event = parse(TenantUserEvent, sample("11_tenant_user_created.json"))
    _, user, _, created = user_fact(event, present=True)
    _, _, _, deleted = user_fact(event, present=False)
    assert user
    assert created < deleted


def test_one_usage_records_fields_beside_the_tenant_id_are_one_record() -> None:
    raw = sample("13_ingest_usage.json")
    raw["detail"] = {"tenantId": "t-1", "name": "api_calls", "value": 3, "id": "r-1"}
    [record] = usage_records(parse(UsageEvent, raw))
    assert (record.name, record.value, record.record_id) == ("api_calls", Decimal(3), "r-1")
    assert record.timestamp == parse(UsageEvent, raw).time  # a record without its own time: the event's


def test_a_usage_event_without_records_is_refused() -> None:
    raw = sample("13_ingest_usage.json")
    raw["detail"] = {"tenantId": "t-1", "usage": []}
    with pytest.raises(InvalidEvent, match=r"^detail.usage: is empty"):
        usage_records(parse(UsageEvent, raw))
