"""Invalid settings (a SettingsError) are a misconfiguration like any other: the API answers its JSON 500,
the webhook fails closed with a 500 (Stripe retries), and neither repeats what the settings held."""

from __future__ import annotations

import json

import pytest
from sbt_billing.bootstrap.clients import forget_clients
from sbt_billing.domain.errors import SettingsError
from sbt_billing.domain.gate import Gate
from sbt_billing.entrypoints.api.gate import make_gate_resolver
from sbt_billing.entrypoints.stripe_webhook import handle_delivery

from tests.support.harness import FakeLambdaContext, sample


def test_the_api_answers_invalid_settings_with_its_misconfigured_500() -> None:
    def gate() -> Gate:
        raise SettingsError("invalid configuration: GATE_ALLOWED_STATES: not a state")

    response = make_gate_resolver(gate).resolve(sample("api_billing_status.json"), FakeLambdaContext("gate"))

    assert response["statusCode"] == 500
    assert json.loads(response["body"])["error"]["code"] == "misconfigured"
    assert "GATE_ALLOWED_STATES" not in response["body"]


def test_the_webhook_fails_closed_on_invalid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_SECRET_NAME", "sbt/webhook")
    monkeypatch.setenv("STRIPE_MAX_NETWORK_RETRIES", "99")  # out of its bounds: the settings are invalid
    forget_clients()
    try:
        status, answer = handle_delivery(b"{}", "t=1,v1=00", FakeLambdaContext("webhook"))  # type: ignore[arg-type]
    finally:
        forget_clients()

    assert (status, answer) == (500, {"error": "the webhook is not configured"})
