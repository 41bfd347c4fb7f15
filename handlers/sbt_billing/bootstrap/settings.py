"""The deployment's settings, read from the environment once and validated at first use.

Each setting is declared once, as a `Variable`: its environment variable, the parser of its text and its
default. No pydantic model is built at import (a function's environment holds a handful of strings, parsed
here in microseconds); the tier catalogue and the usage meters are validated by their own pydantic models,
imported only when the variable is present."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from enum import Enum
from functools import cache
from typing import TYPE_CHECKING, Any, Final, overload

from sbt_billing.domain.billing_policy import (
    BillingState,
    CancellationMode,
    CollectionMode,
    CustomerOnDelete,
    DowngradeAt,
    OpenOn,
    ProrationBehavior,
)
from sbt_billing.domain.errors import ConfigurationError, SettingsError

if TYPE_CHECKING:
    from sbt_billing.domain.catalogue import TierPlan, UsageMeter

__all__ = ["Settings", "SettingsError", "required", "settings"]


# --- Parsers: the text of one variable to its value, or ValueError naming the problem (never the value) ----

type Parser[T] = Callable[[str], T]

_INTEGER: Final = re.compile(r"[+-]?[0-9]+(?:_[0-9]+)*(?:\.0+)?")  # pydantic's lax int: "1_000", "5.0"
_TRUE: Final = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE: Final = frozenset({"0", "off", "f", "false", "n", "no"})


def text(*, min_length: int = 0, max_length: int | None = None) -> Parser[str]:
    def parse(value: str) -> str:
        if len(value) < min_length:
            raise ValueError(f"should have at least {min_length} character{'s' * (min_length != 1)}")
        if max_length is not None and len(value) > max_length:
            raise ValueError(f"should have at most {max_length} characters")
        return value

    return parse


def integer(*, ge: int, le: int | None = None) -> Parser[int]:
    def parse(value: str) -> int:
        stripped = value.strip()
        if not _INTEGER.fullmatch(stripped):
            raise ValueError("should be a whole number")
        number = int(stripped.partition(".")[0])
        if number < ge:
            raise ValueError(f"should be at least {ge}")
        if le is not None and number > le:
            raise ValueError(f"should be at most {le}")
        return number

    return parse


def number(*, gt: float, le: float) -> Parser[float]:
    def parse(value: str) -> float:
        try:
            result = float(value) if value.isascii() else None
        except ValueError:
            result = None
        if result is None:
            raise ValueError("should be a number")
        if not result > gt:  # a NaN is refused here too
            raise ValueError(f"should be greater than {gt:g}")
        if result > le:
            raise ValueError(f"should be at most {le:g}")
        return result

    return parse


def boolean(value: str) -> bool:
    """As pydantic reads one: true/false, 1/0, yes/no, on/off, t/f, y/n, in any case."""
    word = value.lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError("should be a boolean (true/false, 1/0, yes/no, on/off)")


def choice[E: Enum](kind: type[E]) -> Parser[E]:
    """An enum member by its value."""

    def parse(value: str) -> E:
        try:
            return kind(value)
        except ValueError:
            allowed = ", ".join(repr(member.value) for member in kind)
            raise ValueError(f"should be one of {allowed}") from None

    return parse


def blank_is_absent[T](parse: Parser[T]) -> Parser[T | None]:
    def parse_unless_blank(value: str) -> T | None:
        return None if not value.strip() else parse(value)

    return parse_unless_blank


def test_mode_key(value: str) -> str:
    if value.startswith(("sk_live_", "rk_live_")):
        raise ValueError("is a live-mode key, and STRIPE_API_KEY is for test mode and local runs only")
    return value


def comma_separated(value: str) -> frozenset[str]:
    return frozenset(part.strip() for part in value.split(",") if part.strip())


def billing_states(value: str) -> frozenset[BillingState]:
    """A comma-separated list (the template's form) or a JSON list; empty allows no state."""
    stripped = value.strip()
    names = _json(stripped) if stripped.startswith("[") else [part.strip() for part in stripped.split(",")]
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ValueError("should be a list of billing states")
    parse = choice(BillingState)
    return frozenset(parse(name) for name in names if name)


def catalogue_json(value: str) -> dict[str, TierPlan]:
    """JSON of each tier's plan; a bare string is shorthand for {"price": "<lookup key>"}."""
    from sbt_billing.domain.catalogue import TierPlan

    tiers = _json(value)
    if tiers == {}:
        raise ValueError("names no tier")
    if isinstance(tiers, dict):
        tiers = {tier: {"price": plan} if isinstance(plan, str) else plan for tier, plan in tiers.items()}
    return _validated(dict[str, TierPlan], tiers)


def meters_json(value: str) -> dict[str, UsageMeter]:
    """JSON of each usage name's meter (blank is none); a bare string is shorthand for {"event_name": ...}."""
    from sbt_billing.domain.catalogue import UsageMeter

    if not value.strip():
        return {}
    meters = _json(value)
    if isinstance(meters, dict):
        meters = {name: {"event_name": m} if isinstance(m, str) else m for name, m in meters.items()}
    return _validated(dict[str, UsageMeter], meters)


def _json(value: str) -> object:
    try:
        return json.loads(value)
    except json.JSONDecodeError as error:
        raise ValueError(f"not valid JSON ({error.msg})") from None


def _validated[T](kind: type[T], value: object) -> T:
    from pydantic import TypeAdapter, ValidationError

    try:
        return TypeAdapter(kind).validate_python(value)
    except ValidationError as error:  # pydantic's messages name the field, never the input
        raise ValueError(
            ", ".join(
                f"{'.'.join(str(part) for part in issue['loc'])}: {issue['msg']}"
                if issue["loc"]
                else issue["msg"]
                for issue in error.errors()
            )
        ) from None


# --- The settings ----------------------------------------------------------------------------------------


class Variable[T]:
    """One setting: the environment variable it is read from, its parser and its default (`factory`
    builds a fresh default each time, for mutable ones)."""

    __slots__ = ("attribute", "default_value", "name", "parse")

    @overload
    def __init__(self, name: str, parse: Parser[T], default: T) -> None: ...
    @overload
    def __init__(self, name: str, parse: Parser[T], *, factory: Callable[[], T]) -> None: ...
    def __init__(
        self, name: str, parse: Parser[T], default: T | None = None, *, factory: Callable[[], T] | None = None
    ) -> None:
        self.name = name
        self.parse = parse
        self.default_value: Callable[[], T | None] = factory or (lambda: default)
        self.attribute = ""

    def __set_name__(self, owner: type[Any], attribute: str) -> None:
        self.attribute = attribute

    @overload
    def __get__(self, instance: None, owner: type[Any]) -> Variable[T]: ...
    @overload
    def __get__(self, instance: Settings, owner: type[Any]) -> T: ...
    def __get__(self, instance: Settings | None, owner: type[Any]) -> Variable[T] | T:
        # Each instance holds its values in its __dict__, which Python reads before this (non-data)
        # descriptor: this is reached from the class, or for a value never set.
        if instance is None:
            return self
        raise AttributeError(self.attribute)


class Settings:
    """Each function's environment holds only the variables its code reads (template.yaml): a setting a
    function does not use is absent, and one it needs but lacks fails at first use (`required`)."""

    accounts_table: Variable[str | None] = Variable("ACCOUNTS_TABLE", text(min_length=1), None)
    idempotency_table: Variable[str | None] = Variable("IDEMPOTENCY_TABLE", text(min_length=1), None)
    event_bus_name: Variable[str | None] = Variable("EVENT_BUS_NAME", text(min_length=1), None)
    event_source = Variable("EVENT_SOURCE", text(min_length=1), "sbt.control.plane")
    tier_catalogue: Variable[dict[str, TierPlan]] = Variable("TIER_CATALOGUE", catalogue_json, factory=dict)
    stripe_secret_name: Variable[str | None] = Variable("STRIPE_SECRET_NAME", text(), None)
    # A restricted key that can only read (the billing API and the webhook use it when set).
    stripe_read_secret_name = Variable("STRIPE_READ_SECRET_NAME", blank_is_absent(text()), None)
    stripe_api_key: Variable[str | None] = Variable("STRIPE_API_KEY", test_mode_key, None)
    stripe_api_base: Variable[str | None] = Variable("STRIPE_API_BASE", text(), None)
    stripe_max_network_retries = Variable("STRIPE_MAX_NETWORK_RETRIES", integer(ge=0, le=10), 3)
    collection_mode = Variable("COLLECTION_MODE", choice(CollectionMode), CollectionMode.SEND_INVOICE)
    days_until_due = Variable("DAYS_UNTIL_DUE", integer(ge=0, le=730), 30)
    trial_days = Variable("TRIAL_DAYS", integer(ge=1, le=730), 14)
    proration_behavior = Variable(
        "PRORATION_BEHAVIOR", choice(ProrationBehavior), ProrationBehavior.CREATE_PRORATIONS
    )
    cancellation_mode = Variable("CANCELLATION_MODE", choice(CancellationMode), CancellationMode.IMMEDIATELY)
    customer_on_delete = Variable(
        "CUSTOMER_ON_DELETE", choice(CustomerOnDelete), CustomerOnDelete.MARK_OFFBOARDED
    )
    # SBT's onboarding: when billing starts, and where registration ids are linked to tenants.
    open_account_on = Variable("OPEN_ACCOUNT_ON", choice(OpenOn), OpenOn.PROVISION_SUCCESS)
    registrations_table = Variable("REGISTRATIONS_TABLE", blank_is_absent(text()), None)
    # The detail types each lifecycle function handles (the template resolves SBT's naming into them).
    onboarding_request_detail_type = Variable(
        "ONBOARDING_REQUEST_DETAIL_TYPE", text(), "sbt_aws_onboardingRequest"
    )
    provision_success_detail_type = Variable(
        "PROVISION_SUCCESS_DETAIL_TYPE", text(), "sbt_aws_provisionSuccess"
    )
    provision_failure_detail_type = Variable(
        "PROVISION_FAILURE_DETAIL_TYPE", text(), "sbt_aws_provisionFailure"
    )
    tenant_updated_detail_type = Variable("TENANT_UPDATED_DETAIL_TYPE", text(), "sbt_aws_tenantUpdated")
    offboarding_request_detail_type = Variable(
        "OFFBOARDING_REQUEST_DETAIL_TYPE", text(), "sbt_aws_offboardingRequest"
    )
    tenant_deleted_detail_type = Variable("TENANT_DELETED_DETAIL_TYPE", text(), "sbt_aws_tenantDeleted")
    # What the events this stack publishes start with: "sbt_aws_", or "" for SBT releases before it.
    published_detail_type_prefix = Variable("PUBLISHED_DETAIL_TYPE_PREFIX", text(), "sbt_aws_")
    idempotency_expiry_seconds = Variable("IDEMPOTENCY_EXPIRY_SECONDS", integer(ge=60), 86_400)
    lease_seconds = Variable("LEASE_SECONDS", integer(ge=5, le=3600), 60)
    # Seats and metered usage.
    usage_table = Variable("USAGE_TABLE", blank_is_absent(text()), None)
    usage_meters: Variable[dict[str, UsageMeter]] = Variable("USAGE_METERS", meters_json, factory=dict)
    seat_sync_queue_url = Variable("SEAT_SYNC_QUEUE_URL", blank_is_absent(text()), None)
    seat_sync_delay_seconds = Variable("SEAT_SYNC_DELAY_SECONDS", integer(ge=0, le=900), 20)
    user_created_detail_types = Variable(
        "USER_CREATED_DETAIL_TYPES",
        comma_separated,
        frozenset({"sbt_aws_tenantUserCreated", "tenantUserCreated"}),
    )
    # The billing API and Stripe's webhooks.
    webhook_secret_name = Variable("WEBHOOK_SECRET_NAME", blank_is_absent(text()), None)
    gate_allowed_states = Variable(
        "GATE_ALLOWED_STATES",
        billing_states,
        frozenset({BillingState.ACTIVE, BillingState.TRIALING, BillingState.PAST_DUE}),
    )
    publish_deactivate_requests = Variable("PUBLISH_DEACTIVATE_REQUESTS", boolean, False)
    publish_activate_requests = Variable("PUBLISH_ACTIVATE_REQUESTS", boolean, False)
    publish_billing_updates = Variable("PUBLISH_BILLING_UPDATES", boolean, True)
    # Self-service: the gate's payment method requirement, when downgrades apply, Stripe's hosted portal,
    # and where the webhook hands a payment method the tenant gave to the lifecycle (its update queue).
    require_payment_method = Variable("REQUIRE_PAYMENT_METHOD", boolean, False)
    downgrade_at = Variable("DOWNGRADE_AT", choice(DowngradeAt), DowngradeAt.IMMEDIATELY)
    portal_cancellation = Variable("PORTAL_CANCELLATION", boolean, False)
    portal_configuration_name = Variable(
        "PORTAL_CONFIGURATION_NAME", text(min_length=1, max_length=200), "sbt-billing"
    )
    tenant_updated_queue_url = Variable("TENANT_UPDATED_QUEUE_URL", blank_is_absent(text()), None)
    # Reconciling: where its place is kept (and the webhook's last event applied), and the pace of a
    # run's Stripe requests (a share of Stripe's rate limit, leaving the rest to the other functions).
    reconcile_table = Variable("RECONCILE_TABLE", blank_is_absent(text()), None)
    stripe_requests_per_second = Variable(
        "STRIPE_REQUESTS_PER_SECOND", blank_is_absent(number(gt=0, le=100)), None
    )

    def __init__(self, values: Mapping[str, object]) -> None:
        """`values` by attribute name; an attribute missing from it takes its default."""
        for variable in _VARIABLES:
            value = values[variable.attribute] if variable.attribute in values else variable.default_value()
            object.__setattr__(self, variable.attribute, value)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Settings:
        """Every variable present in `environ` parsed (the absent take their defaults); every problem is
        reported at once, as "invalid configuration: VARIABLE: problem; OTHER: problem"."""
        values: dict[str, object] = {}
        problems: list[str] = []
        for variable in _VARIABLES:
            raw = environ.get(variable.name)
            if raw is None:
                continue
            try:
                values[variable.attribute] = variable.parse(raw)
            except ValueError as error:
                problems.append(f"{variable.name}: {error}")
        # Deleting a Stripe customer cancels its subscriptions at once: the paid period would be lost.
        if (
            values.get("cancellation_mode") is CancellationMode.PERIOD_END
            and values.get("customer_on_delete") is CustomerOnDelete.DELETE
        ):
            problems.append(
                "CANCELLATION_MODE: period_end needs CUSTOMER_ON_DELETE mark_offboarded: deleting the "
                "customer would cancel its subscription at once"
            )
        if problems:
            raise SettingsError(f"invalid configuration: {'; '.join(problems)}")
        return cls(values)

    @classmethod
    def variables(cls) -> dict[str, str]:
        """Each setting's attribute name and the environment variable it is read from."""
        return {variable.attribute: variable.name for variable in _VARIABLES}

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"settings are immutable: {name} cannot be set")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"settings are immutable: {name} cannot be deleted")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Settings) and vars(self) == vars(other)

    __hash__ = None  # type: ignore[assignment]  # equal by value, and a catalogue (a dict) is not hashable

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={value!r}" for name, value in vars(self).items() if name != "stripe_api_key"
        )
        return f"Settings({shown})"


_VARIABLES: Final = tuple(value for value in vars(Settings).values() if isinstance(value, Variable))


def required[T](value: T | None, variable: str) -> T:
    """A setting the caller needs: absent (or empty) is a misconfiguration of this function."""
    if value is None or value == {}:
        raise ConfigurationError(f"{variable} is not set for this function")
    return value


@cache
def settings() -> Settings:
    return Settings.from_environment(os.environ)
