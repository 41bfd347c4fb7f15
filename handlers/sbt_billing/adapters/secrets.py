"""What the deployment's secrets hold, read through Powertools' secrets provider (cached for a few
minutes, so that a rotated secret is picked up without a deploy). Nothing here logs or raises a
secret's value."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from sbt_billing.domain.errors import ConfigurationError

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

SECRET_MAX_AGE_SECONDS = 300


def key_in_secret(source: SecretsProvider, name: str, what: str, prefixes: tuple[str, ...]) -> str:
    """A Stripe key: a plain `sk_...`/`rk_...` string, or JSON {"apiKey": "..."}, of one of `prefixes`."""
    value = _text(source, name)
    if value.startswith("{"):
        try:
            document = json.loads(value)
        except json.JSONDecodeError:
            raise ConfigurationError(f"{what} is neither a key nor JSON with an apiKey") from None
        value = str(document.get("apiKey", "")).strip() if isinstance(document, dict) else ""
    if not value.startswith(prefixes):
        kinds = " or ".join(f"{prefix}..." for prefix in prefixes)
        raise ConfigurationError(f"{what} does not hold a Stripe key of the kind it must ({kinds})")
    return value


def signing_secrets(source: SecretsProvider, name: str) -> list[str]:
    """A webhook endpoint's signing secrets: `whsec_...`, or JSON `{"signingSecret": "whsec_..."}` /
    `{"signingSecrets": [...]}` (two while a secret is rolled). ConfigurationError when there is none."""
    value = _text(source, name)
    candidates: list[object] = [value]
    if value.startswith("{"):
        try:
            document = json.loads(value)
        except json.JSONDecodeError:
            raise ConfigurationError("the webhook secret is neither a signing secret nor JSON") from None
        candidates = [document.get("signingSecret"), *(document.get("signingSecrets") or [])]
    secrets = [
        str(item).strip() for item in candidates if isinstance(item, str) and item.startswith("whsec_")
    ]
    if not secrets:
        raise ConfigurationError("the webhook secret holds no whsec_ signing secret")
    return secrets


def _text(source: SecretsProvider, name: str) -> str:
    raw = source.get(name, max_age=SECRET_MAX_AGE_SECONDS)
    return (raw.decode() if isinstance(raw, bytes) else str(raw)).strip()
