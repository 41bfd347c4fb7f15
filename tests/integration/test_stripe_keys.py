"""Which Stripe key each kind of function holds: the read-only key for the billing API and the
webhook when the deployment gives one (a key that can create charges is refused there)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from devtools.moto_server import AwsClients, environment_applied


@pytest.fixture
def secrets(moto_endpoint: str) -> Iterator[dict[str, str]]:
    from sbt_billing.bootstrap.clients import forget_clients

    client = AwsClients(moto_endpoint).secretsmanager()
    names = {kind: f"sbt/keys-{kind}-{uuid.uuid4().hex[:8]}" for kind in ("write", "read", "secret_as_read")}
    client.create_secret(Name=names["write"], SecretString="sk_test_write_0000000000000000")
    client.create_secret(Name=names["read"], SecretString='{"apiKey": "rk_test_read_0000000000000000"}')
    client.create_secret(Name=names["secret_as_read"], SecretString="sk_test_write_0000000000000000")
    forget_clients()
    yield names
    forget_clients()


def test_the_http_functions_read_with_the_restricted_key_when_one_is_given(secrets: dict[str, str]) -> None:
    from sbt_billing.bootstrap.clients import forget_clients
    from sbt_billing.bootstrap.secrets import stripe_read_key
    from sbt_billing.bootstrap.settings import settings
    from sbt_billing.bootstrap.stripe import billing_gateway
    from sbt_billing.bootstrap.stripe_reads import billing_reader

    with environment_applied(
        {"STRIPE_READ_SECRET_NAME": secrets["read"], "STRIPE_SECRET_NAME": secrets["write"]}
    ):
        forget_clients()
        assert stripe_read_key(settings()) == "rk_test_read_0000000000000000"
        assert billing_reader() is not billing_gateway()  # a client of its own, with the read key


def test_without_a_read_key_the_http_functions_use_the_deployments_key(secrets: dict[str, str]) -> None:
    from sbt_billing.bootstrap.clients import forget_clients
    from sbt_billing.bootstrap.secrets import stripe_read_key
    from sbt_billing.bootstrap.settings import settings

    with environment_applied({"STRIPE_READ_SECRET_NAME": "", "STRIPE_SECRET_NAME": secrets["write"]}):
        forget_clients()
        assert stripe_read_key(settings()) == "sk_test_write_0000000000000000"


def test_a_key_that_can_create_charges_is_refused_as_the_read_key(secrets: dict[str, str]) -> None:
    from sbt_billing.bootstrap.clients import forget_clients
    from sbt_billing.bootstrap.stripe_reads import billing_reader
    from sbt_billing.domain.errors import ConfigurationError

    with environment_applied({"STRIPE_READ_SECRET_NAME": secrets["secret_as_read"]}):
        forget_clients()
        with pytest.raises(ConfigurationError, match=r"rk_\.\.\.") as refused:
            billing_reader()
        assert "sk_test" not in str(refused.value)


def test_a_function_without_a_setting_it_needs_fails_as_misconfigured() -> None:
    from sbt_billing.bootstrap.settings import Settings, required
    from sbt_billing.domain.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="ACCOUNTS_TABLE is not set for this function"):
        required(Settings.from_environment({}).accounts_table, "ACCOUNTS_TABLE")
    with pytest.raises(ConfigurationError, match="TIER_CATALOGUE"):
        required(Settings.from_environment({}).tier_catalogue, "TIER_CATALOGUE")
