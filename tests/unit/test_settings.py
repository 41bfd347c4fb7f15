"""The settings: each parser on the forms the template and local runs give it, and a bad value
refused as a SettingsError (a ConfigurationError) that names the variable, never its value."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sbt_billing.bootstrap import settings as settings_module
from sbt_billing.bootstrap.settings import Settings, required
from sbt_billing.domain.billing_policy import BillingState, CancellationMode, CustomerOnDelete
from sbt_billing.domain.catalogue import TierPlan, UsageMeter
from sbt_billing.domain.errors import ConfigurationError, SettingsError


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
        "TENANT_UPDATED_QUEUE_URL",
        "RECONCILE_TABLE",
    ],
)
def test_a_blank_optional_name_is_absent(variable: str) -> None:
    field = next(
        name for name, name_in_environment in Settings.variables().items() if name_in_environment == variable
    )
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


# --- Each parser kind, the report of every problem at once, and what the module loads ------------------


def test_a_whole_number_is_read_as_pydantic_read_it_and_its_bounds_are_named() -> None:
    assert settings_of(LEASE_SECONDS=" 120 ").lease_seconds == 120
    assert settings_of(IDEMPOTENCY_EXPIRY_SECONDS="86_400").idempotency_expiry_seconds == 86_400
    assert settings_of(DAYS_UNTIL_DUE="7.0").days_until_due == 7
    with pytest.raises(SettingsError, match=r"^invalid configuration: LEASE_SECONDS: should be at least 5$"):
        settings_of(LEASE_SECONDS="4")
    with pytest.raises(
        SettingsError, match=r"^invalid configuration: DAYS_UNTIL_DUE: should be at most 730$"
    ):
        settings_of(DAYS_UNTIL_DUE="731")
    for refused in ("7.5", "seven", "", "0x10"):
        with pytest.raises(SettingsError, match=r"DAYS_UNTIL_DUE: should be a whole number"):
            settings_of(DAYS_UNTIL_DUE=refused)


def test_an_enum_is_read_by_its_value_and_a_bad_one_is_told_the_values_allowed() -> None:
    assert settings_of(CANCELLATION_MODE="period_end").cancellation_mode is CancellationMode.PERIOD_END
    allowed = ", ".join(repr(mode.value) for mode in CancellationMode)
    with pytest.raises(
        SettingsError, match=rf"^invalid configuration: CANCELLATION_MODE: should be one of {allowed}$"
    ):
        settings_of(CANCELLATION_MODE="PERIOD_END")


@pytest.mark.parametrize(
    ("value", "read"),
    [(word, True) for word in ("true", "TRUE", "1", "yes", "On", "t", "Y")]
    + [(word, False) for word in ("false", "False", "0", "no", "OFF", "f", "n")],
)
def test_a_boolean_is_read_in_any_of_pydantics_words_and_any_case(value: str, read: bool) -> None:
    assert settings_of(PUBLISH_BILLING_UPDATES=value).publish_billing_updates is read
    assert settings_of(REQUIRE_PAYMENT_METHOD=value).require_payment_method is read


@pytest.mark.parametrize("value", ["maybe", "", " yes", "2"])
def test_a_boolean_that_is_no_such_word_is_refused_by_name(value: str) -> None:
    with pytest.raises(
        SettingsError, match=r"^invalid configuration: PORTAL_CANCELLATION: should be a boolean"
    ):
        settings_of(PORTAL_CANCELLATION=value)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ('["basic"]', "Input should be a valid dictionary"),
        ('{"basic": {"price": ""}}', "basic.price: String should have at least 1 character"),
        ('{"basic": 5}', "basic: Input should be a valid dictionary"),
    ],
)
def test_a_catalogue_of_the_wrong_shape_is_refused_naming_the_tier(value: str, problem: str) -> None:
    with pytest.raises(SettingsError, match=rf"^invalid configuration: TIER_CATALOGUE: {problem}"):
        settings_of(TIER_CATALOGUE=value)


def test_a_meter_list_that_is_not_json_is_refused_by_name() -> None:
    with pytest.raises(SettingsError, match=r"^invalid configuration: USAGE_METERS: not valid JSON"):
        settings_of(USAGE_METERS="api_calls=sbt_api_calls")


def test_a_blank_name_that_is_not_optional_is_refused_rather_than_absent() -> None:
    with pytest.raises(SettingsError, match=r"ACCOUNTS_TABLE: should have at least 1 character"):
        settings_of(ACCOUNTS_TABLE="")
    assert settings_of(TENANT_UPDATED_QUEUE_URL=" ").tenant_updated_queue_url is None
    assert settings_of(RECONCILE_TABLE="reconcile").reconcile_table == "reconcile"


def test_every_problem_is_reported_at_once_each_naming_its_variable() -> None:
    with pytest.raises(SettingsError) as refused:
        settings_of(
            LEASE_SECONDS="1",
            COLLECTION_MODE="never",
            CANCELLATION_MODE="period_end",
            CUSTOMER_ON_DELETE="delete",
            STRIPE_API_KEY="rk_live_secret",
        )
    problems = str(refused.value).removeprefix("invalid configuration: ").split("; ")
    assert [problem.split(":")[0] for problem in problems] == [
        "STRIPE_API_KEY",
        "COLLECTION_MODE",
        "LEASE_SECONDS",
        "CANCELLATION_MODE",
    ]
    assert "rk_live_secret" not in str(refused.value)


def test_absent_variables_take_their_defaults_and_other_variables_are_ignored() -> None:
    given = settings_of(HOME="/root", PUBLISH_ACTIVATE_REQUESTS="yes")
    assert given.publish_activate_requests is True
    assert (given.lease_seconds, given.collection_mode.value, given.tier_catalogue) == (
        60,
        "send_invoice",
        {},
    )
    assert given.gate_allowed_states == {BillingState.ACTIVE, BillingState.TRIALING, BillingState.PAST_DUE}
    assert given == settings_of(PUBLISH_ACTIVATE_REQUESTS="yes")
    assert given != settings_of()


def test_each_setting_names_its_environment_variable() -> None:
    variables = Settings.variables()
    assert variables["tier_catalogue"] == "TIER_CATALOGUE"
    assert len(variables) == len(set(variables.values())) == 44
    assert all(name == attribute.upper() for attribute, name in variables.items())


def test_the_settings_are_immutable_and_their_repr_leaves_out_the_api_key() -> None:
    given = settings_of(STRIPE_API_KEY="sk_test_secret", ACCOUNTS_TABLE="accounts")
    with pytest.raises(AttributeError):
        given.accounts_table = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del given.accounts_table
    assert given.accounts_table == "accounts"
    assert "sk_test_secret" not in repr(given)
    assert "accounts_table='accounts'" in repr(given)


def test_importing_the_settings_builds_no_pydantic_model_and_loads_the_catalogue_only_when_set() -> None:
    script = (
        "import sys\n"
        "from sbt_billing.bootstrap.settings import Settings\n"
        "assert not hasattr(Settings, '__pydantic_validator__')\n"
        "Settings.from_environment({'ACCOUNTS_TABLE': 'a'})\n"
        "print('sbt_billing.domain.catalogue' in sys.modules)\n"
        "Settings.from_environment({'TIER_CATALOGUE': '{\"basic\": \"p\"}'})\n"
        "print('sbt_billing.domain.catalogue' in sys.modules)\n"
    )
    handlers = Path(settings_module.__file__).parents[2]
    ran = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": str(handlers)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert ran.stdout.split() == ["False", "True"]
