"""Servers shared by the whole run: moto's server for AWS and the Stripe emulator, both on loopback."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from devtools.moto_server import MotoServer, aws_environment

os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "SbtStripeBillingTests")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "sbt-stripe-billing")


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    with MotoServer() as server:
        previous = {name: os.environ.get(name) for name in aws_environment(server.endpoint)}
        os.environ.update(aws_environment(server.endpoint))
        yield server.endpoint
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="session")
def emulator_url() -> Iterator[str]:
    from stripe_emulator import StripeEmulator

    with StripeEmulator() as emulator:
        yield emulator.url
