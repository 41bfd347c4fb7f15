"""The deployment's secrets, through Powertools' secrets provider on the container's client."""

from __future__ import annotations

from aws_lambda_powertools.utilities.parameters import SecretsProvider

from sbt_billing.adapters.secrets import key_in_secret, signing_secrets
from sbt_billing.bootstrap.clients import aws_client, secret_bearing
from sbt_billing.bootstrap.settings import Settings, settings
from sbt_billing.domain.errors import ConfigurationError


@secret_bearing
def _provider() -> SecretsProvider:
    return SecretsProvider(boto3_client=aws_client("secretsmanager"))


def stripe_api_key(config: Settings) -> str:
    """STRIPE_API_KEY when set (local runs, tests), else the secret named by STRIPE_SECRET_NAME,
    cached for a few minutes so that a rotated key is picked up without a deploy."""
    if config.stripe_api_key:
        return config.stripe_api_key
    if not config.stripe_secret_name:
        raise ConfigurationError("neither STRIPE_SECRET_NAME nor STRIPE_API_KEY is set")
    return key_in_secret(_provider(), config.stripe_secret_name, "the Stripe secret", ("sk_", "rk_"))


def stripe_read_key(config: Settings) -> str:
    """The restricted read-only key named by STRIPE_READ_SECRET_NAME (`rk_...`: a secret key, which
    can create charges, is refused there), else the deployment's key."""
    if config.stripe_api_key or not config.stripe_read_secret_name:
        return stripe_api_key(config)
    return key_in_secret(_provider(), config.stripe_read_secret_name, "the Stripe read secret", ("rk_",))


def webhook_secrets() -> list[str]:
    """The endpoint's signing secrets from the secret named by WEBHOOK_SECRET_NAME. Raises
    ConfigurationError when there is none: the webhook fails closed."""
    name = settings().webhook_secret_name
    if not name:
        raise ConfigurationError("WEBHOOK_SECRET_NAME is not set")
    return signing_secrets(_provider(), name)
