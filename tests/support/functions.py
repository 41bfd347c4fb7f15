"""The deployed functions as the template tests know them (handler, kind, sample event), and the tools
the static and build tests share (the SAM CLI, the environment it runs in)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from devtools.template import ROOT

TEMPLATE = ROOT / "template.yaml"
SAM = ROOT / ".venv-sam" / "bin" / "sam"
EVENTS = ROOT / "events"
# The budget for a function's code plus its dependencies layer, unzipped: 25 MB (Lambda allows 250). The
# layer leaves out stripe's typed params (about 6 MB, used only for type checking).
ARTIFACT_LIMIT_BYTES = 25 * 1000 * 1000
SECRET_PATTERN = re.compile(r"\b(sk|rk|pk)_(live|test)_[0-9A-Za-z]{4,}|\bwhsec_[0-9A-Za-z]{4,}")
SEAT_TENANT = "8d2e4f60-1a3b-4c5d-8e9f-0a1b2c3d4e5f"
Kind = Literal[
    "onboarding", "lifecycle", "users", "usage", "seat_sync", "flush", "reconcile", "api", "webhook"
]


@dataclass(frozen=True)
class Function:
    handler: str
    kind: Kind
    sample: str  # the stem of its sample event (sample_event_path)


FUNCTIONS = {
    "ProvisionSuccessFunction": Function(
        "provision_success.lambda_handler", "onboarding", "provision_success"
    ),
    "TenantUpdatedFunction": Function("tenant_updated.lambda_handler", "lifecycle", "tenant_updated"),
    "TenantDeletedFunction": Function("tenant_deleted.lambda_handler", "lifecycle", "tenant_deleted"),
    "TenantUsersFunction": Function("tenant_users.lambda_handler", "users", "tenant_user_created"),
    "UsageIngestFunction": Function("usage_ingest.lambda_handler", "usage", "ingest_usage"),
    "SeatSyncFunction": Function("seat_sync.lambda_handler", "seat_sync", "seat_sync_batch"),
    "UsageFlushFunction": Function("usage_flush.lambda_handler", "flush", "usage_flush_schedule"),
    "ReconcileFunction": Function("reconcile.lambda_handler", "reconcile", "reconcile_schedule"),
    "BillingGateFunction": Function("billing_gate.lambda_handler", "api", "api_billing_status"),
    "BillingApiFunction": Function("billing_api.lambda_handler", "api", "api_billing"),
    "StripeWebhookFunction": Function("stripe_webhook.lambda_handler", "webhook", "webhook_malformed_body"),
}
RULE_KINDS = (
    "onboarding",
    "lifecycle",
    "users",
    "usage",
)  # functions an EventBridge rule on the SBT bus invokes
RULE_FUNCTIONS = {name for name, function in FUNCTIONS.items() if function.kind in RULE_KINDS}
HTTP_FUNCTIONS = {name for name, function in FUNCTIONS.items() if function.kind in ("api", "webhook")}
# The SAM policy templates a function may use, all scoped by their parameters to one resource.
POLICY_TEMPLATES = {
    "DynamoDBCrudPolicy",
    "DynamoDBReadPolicy",
    "AWSSecretsManagerGetSecretValuePolicy",
    "EventBridgePutEventsPolicy",
    "SQSSendMessagePolicy",
}


def sample_event_path(stem: str) -> Path:
    """events/<stem>.json, or the first events/NN_<stem>.json."""
    exact = EVENTS / f"{stem}.json"
    if exact.exists():
        return exact
    numbered = sorted(EVENTS.glob(f"[0-9]*_{stem}.json"))
    if not numbered:
        pytest.fail(f"no sample event events/{stem}.json (or events/NN_{stem}.json)")
    return numbered[0]
