"""SnapStart's runtime hooks: registered where Lambda's runtime offers them, priming only what needs no
network or secret, and giving each restored environment its own secrets, Stripe clients and randomness."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sbt_billing.bootstrap import clients, secrets, snapstart, stripe
from sbt_billing.bootstrap.settings import Settings

SETTINGS = {
    "ACCOUNTS_TABLE": "accounts",
    "EVENT_BUS_NAME": "bus",
    "SEAT_SYNC_QUEUE_URL": "https://sqs.example/q",
    "STRIPE_SECRET_NAME": "stripe",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in SETTINGS.items():
        monkeypatch.setenv(name, value)
    clients.forget_clients()
    yield
    clients.forget_clients()


def test_outside_lambdas_runtime_no_hook_is_registered() -> None:
    assert snapstart.REGISTERED is False  # tests and local runs have no snapshot_restore_py


def test_where_the_runtime_offers_them_both_hooks_are_registered() -> None:
    registered: dict[str, Callable[..., Any]] = {}

    assert snapstart.register(
        before=lambda hook: registered.setdefault("before", hook),
        after=lambda hook: registered.setdefault("after", hook),
    )
    assert registered == {"before": snapstart.before_snapshot, "after": snapstart.after_restore}


def test_the_clients_primed_are_those_of_the_services_the_settings_name() -> None:
    assert snapstart.services_named(Settings.from_environment(SETTINGS)) == [
        "dynamodb",
        "events",
        "sqs",
        "secretsmanager",
    ]
    assert snapstart.services_named(Settings.from_environment({"ACCOUNTS_TABLE": "a"})) == ["dynamodb"]


def test_before_the_snapshot_the_aws_clients_are_built_and_no_secret_is_read(environment: None) -> None:
    snapstart.before_snapshot()

    assert clients.aws_client.cache_info().currsize == 4  # type: ignore[attr-defined]
    assert secrets._provider.cache_info().currsize == 0  # type: ignore[attr-defined]


def test_after_a_restore_secrets_and_stripe_clients_are_dropped_and_aws_clients_kept(
    environment: None,
) -> None:
    snapstart.before_snapshot()
    dynamodb = clients.aws_client("dynamodb")
    provider = secrets._provider()
    stripe._gateways["write"] = ("sk_test_x", object())  # type: ignore[assignment]

    snapstart.after_restore()

    assert stripe._gateways == {}
    assert secrets._provider() is not provider  # its cached secrets went with it
    assert clients.aws_client("dynamodb") is dynamodb  # built before the snapshot, connected to nothing


def test_after_a_restore_the_random_generator_is_reseeded() -> None:
    random.seed(1234)
    snapshotted = random.getstate()

    snapstart.after_restore()

    assert random.getstate() != snapshotted
