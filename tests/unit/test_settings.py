"""The settings model: each validator on the forms the template and local runs give it, and a bad value
refused as a SettingsError (a ConfigurationError) that names the variable, never its value."""

from __future__ import annotations

import json

import pytest
from sbt_billing.bootstrap.settings import Settings, required
from sbt_billing.domain.billing_policy import CancellationMode, CustomerOnDelete
from sbt_billing.domain.catalogue import TierPlan, UsageMeter
from sbt_billing.domain.errors import ConfigurationError, SettingsError
from sbt_billing.domain.models import BillingState


def settings_of(**variables: str) -> Settings:
    return Settings.from_environment(variables)


def test_gate_states_are_read_from_the_templates_comma_separated_list() -> None:
    states = settings_of(GATE_ALLOWED_STATES="active, past_due,,").gate_allowed_states
    assert states == {BillingState.ACTIVE, BillingState.PAST_DUE}


def test_gate_states_are_read_from_a_json_list_too() -> None:
    assert settings_of(GATE_ALLOWED_STATES='["trialing"]').gate_allowed_states == {BillingState.TRIALING}


def test_an_empty_gate_list_allows_no_state() -> None:
    assert settings_of(GATE_ALLOWED_STATES="").gate_allowed_states == frozenset()


def test_a_gate_state_that_is_not_a_billing_state_is_refused_by_name() -> None:
    with pytest.raises(SettingsError, match="GATE_ALLOWED_STATES"):
        settings_of(GATE_ALLOWED_STATES="active,gold")


def test_a_tier_given_as_a_bare_string_is_its_price() -> None:
    catalogue = settings_of(
        TIER_CATALOGUE='{"basic": "sbt_basic", "premium": {"price": "p", "seat_price": "s"}}'
    )
    assert catalogue.tier_catalogue == {
        "basic": TierPlan(price="sbt_basic"),
        "premium": TierPlan(price="p", seat_price="s"),
    }


@pytest.mark.parametrize(("value", "problem"), [("{}", "names no tier"), ("{not json", "not valid JSON")])
def test_a_catalogue_that_names_no_tier_or_is_not_json_is_refused(value: str, problem: str) -> None:
    with pytest.raises(SettingsError, match=rf"TIER_CATALOGUE: .*{problem}"):
        settings_of(TIER_CATALOGUE=value)


def test_a_catalogue_entry_with_an_unknown_field_is_refused() -> None:
    with pytest.raises(SettingsError, match="TIER_CATALOGUE"):
        settings_of(TIER_CATALOGUE=json.dumps({"basic": {"price": "p", "discount": 5}}))


def test_usage_meters_blank_is_none_and_a_bare_string_is_the_event_name() -> None:
    assert settings_of(USAGE_METERS="  ").usage_meters == {}
    assert settings_of(USAGE_METERS='{"api_calls": "sbt_api_calls"}').usage_meters == {
        "api_calls": UsageMeter(event_name="sbt_api_calls")
    }


def test_a_meter_maximum_must_be_positive() -> None:
    with pytest.raises(SettingsError, match="USAGE_METERS"):
        settings_of(USAGE_METERS='{"api_calls": {"event_name": "e", "max_value": 0}}')


def test_user_created_detail_types_are_a_comma_separated_list() -> None:
    assert settings_of(USER_CREATED_DETAIL_TYPES="a, b").user_created_detail_types == {"a", "b"}


@pytest.mark.parametrize(
    "variable",
    [
        "USAGE_TABLE",
        "SEAT_SYNC_QUEUE_URL",
        "WEBHOOK_SECRET_NAME",
        "REGISTRATIONS_TABLE",
        "STRIPE_READ_SECRET_NAME",
    ],
)
def test_a_blank_optional_name_is_absent(variable: str) -> None:
    field = next(name for name, info in Settings.model_fields.items() if info.alias == variable)
    assert getattr(settings_of(**{variable: " "}), field) is None


def test_a_live_mode_key_is_refused_for_local_runs_and_not_repeated() -> None:
    with pytest.raises(SettingsError, match=r"STRIPE_API_KEY: .*live-mode key") as refused:
        settings_of(STRIPE_API_KEY="sk_live_0123456789abcdef")
    assert "sk_live_0123" not in str(refused.value)


def test_period_end_with_a_deleted_customer_is_refused() -> None:
    with pytest.raises(SettingsError, match="period_end needs CUSTOMER_ON_DELETE mark_offboarded"):
        settings_of(CANCELLATION_MODE="period_end", CUSTOMER_ON_DELETE="delete")
    kept = settings_of(CANCELLATION_MODE="period_end")
    assert (kept.cancellation_mode, kept.customer_on_delete) == (
        CancellationMode.PERIOD_END,
        CustomerOnDelete.MARK_OFFBOARDED,
    )


def test_numbers_out_of_their_bounds_are_refused_by_name() -> None:
    with pytest.raises(SettingsError, match="LEASE_SECONDS"):
        settings_of(LEASE_SECONDS="1")
    with pytest.raises(SettingsError, match="STRIPE_MAX_NETWORK_RETRIES"):
        settings_of(STRIPE_MAX_NETWORK_RETRIES="11")


def test_a_settings_error_is_a_configuration_error_every_entry_point_treats_as_one() -> None:
    assert issubclass(SettingsError, ConfigurationError)


def test_a_setting_a_function_needs_but_lacks_is_a_misconfiguration_naming_it() -> None:
    with pytest.raises(ConfigurationError, match="ACCOUNTS_TABLE is not set"):
        required(settings_of().accounts_table, "ACCOUNTS_TABLE")
    assert required("accounts", "ACCOUNTS_TABLE") == "accounts"


def test_the_reconcile_settings_blank_are_absent_and_the_pace_stays_within_stripes_limits() -> None:
    assert settings_of(RECONCILE_TABLE="", STRIPE_REQUESTS_PER_SECOND="").reconcile_table is None
    assert settings_of(STRIPE_REQUESTS_PER_SECOND="").stripe_requests_per_second is None
    assert settings_of(STRIPE_REQUESTS_PER_SECOND="12.5").stripe_requests_per_second == 12.5
    for refused in ("0", "101"):
        with pytest.raises(SettingsError, match="STRIPE_REQUESTS_PER_SECOND"):
            settings_of(STRIPE_REQUESTS_PER_SECOND=refused)
