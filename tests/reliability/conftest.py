"""Shared pieces of the reliability suite: a loopback stack with seats, usage and the webhook
configured, and helpers that turn the sample events into other tenants' and re-published facts."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from devtools.moto_server import AwsClients
from tests.support.harness import Stack, stack_on
from tests.support.reliability import WEBHOOK_SECRET
from tests.support.usage import USAGE_SETTINGS


@pytest.fixture
def stack(moto_endpoint: str, emulator_url: str) -> Iterator[Stack]:
    """Every function configured: lifecycle, seats and metered usage, the webhook's signing secret."""
    secret_name = f"sbt/stripe-webhook-{uuid.uuid4().hex[:8]}"
    AwsClients(moto_endpoint).secretsmanager().create_secret(Name=secret_name, SecretString=WEBHOOK_SECRET)
    overrides = {**USAGE_SETTINGS, "WEBHOOK_SECRET_NAME": secret_name}
    with stack_on(moto_endpoint, emulator_url, overrides) as stack:
        stack.emulator.seed_usage_catalogue()
        stack.emulator.admin("POST", "webhook_endpoints", {"secret": WEBHOOK_SECRET})
        stack.emulator.admin("DELETE", "requests")
        yield stack
