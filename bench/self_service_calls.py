"""Stripe calls and DynamoDB round trips of each self-service operation, measured in one run.

The billing API's routes through the loopback API Gateway (SigV4, the typed client), Stripe's events
signed by the emulator and delivered to the webhook function, the lifecycle's queue run as Lambda's
poller would: in process, against moto's server and the Stripe emulator. Stripe calls are the
emulator's own request counts (what the tenant does in a hosted page is played through the emulator's
admin hooks, which it does not count); DynamoDB round trips are counted on the functions' boto3 client.

    .venv/bin/python bench/self_service_calls.py
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "handlers"), str(ROOT)]
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "SbtStripeBillingBench")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")

from sbt_billing_client import BillingClient  # noqa: E402

from bench.calls_per_operation import measured, print_table  # noqa: E402
from devtools.moto_server import AwsClients, MotoServer, aws_environment  # noqa: E402
from stripe_emulator import StripeEmulator  # noqa: E402
from tests.integration.test_self_service import (  # noqa: E402
    ADMIN_PAGE,
    SECRET,
    TENANT,
    Stripe,
    period_end,
    provision_success,
)
from tests.support.harness import Stack, stack_on  # noqa: E402
from tests.support.local_gateway import CREDENTIALS, LocalApiGateway  # noqa: E402


def main() -> None:
    rows: list[dict[str, Any]] = []

    def run(stack: Stack, name: str, action: Callable[[], object]) -> None:
        with measured(stack) as figures:
            action()
        rows.append({"operation": name, **figures})

    with MotoServer() as moto, StripeEmulator() as emulator:
        os.environ.update(aws_environment(moto.endpoint))
        secret = f"sbt/stripe-webhook-{uuid.uuid4().hex[:8]}"
        AwsClients(moto.endpoint).secretsmanager().create_secret(Name=secret, SecretString=SECRET)
        settings = {
            "WEBHOOK_SECRET_NAME": secret,
            "REQUIRE_PAYMENT_METHOD": "true",
            "DOWNGRADE_AT": "period_end",
        }
        with stack_on(moto.endpoint, emulator.url, settings) as stack:
            stack.emulator.admin("POST", "webhook_endpoints", {"secret": SECRET})
            stripe = Stripe(stack)
            with LocalApiGateway(stack.invoke, CREDENTIALS) as gateway:  # type: ignore[arg-type]
                client = BillingClient(gateway.url, region="us-east-1", credentials=CREDENTIALS, timeout=30)
                [opened] = stack.deliver(provision_success("premium"))
                stripe.settle()
                subscription = opened["subscription_id"]
                end = period_end(stripe, subscription)

                run(
                    stack,
                    "portal session (cold: configuration found or made)",
                    lambda: client.portal_session(TENANT, ADMIN_PAGE),
                )
                run(stack, "portal session (warm)", lambda: client.portal_session(TENANT, ADMIN_PAGE))
                sessions: list[Any] = []
                run(
                    stack,
                    "checkout session",
                    lambda: sessions.append(client.checkout_session(TENANT, ADMIN_PAGE, ADMIN_PAGE)),
                )
                stack.emulator.admin("POST", f"checkout/sessions/{sessions[0].session_id}/complete", {})
                run(stack, "checkout completed: the webhook (its events)", stripe.deliver)
                run(
                    stack,
                    "checkout completed: the lifecycle (card made default)",
                    lambda: stack.run_queue("TenantUpdatedQueue"),
                )
                run(stack, "  its echoes through the webhook", stripe.deliver)
                run(stack, "gate (GET .../billing/status)", lambda: client.status(TENANT))
                run(stack, "downgrade at period end (PATCH)", lambda: client.update(TENANT, tier="standard"))
                run(stack, "  its events through the webhook", stripe.settle)
                run(
                    stack,
                    "another downgrade replacing it (PATCH)",
                    lambda: client.update(TENANT, tier="basic"),
                )
                run(stack, "  its events through the webhook", stripe.settle)
                run(
                    stack,
                    "back to the tier billed now, withdrawing it (PATCH)",
                    lambda: client.update(TENANT, tier="premium"),
                )
                run(stack, "  its events through the webhook", stripe.settle)
                other = "7e8f9a0b-1c2d-4e3f-8a4b-5c6d7e8f9a0b"  # a tenant on standard
                stack.deliver(provision_success("standard", tenant=other))
                client.update(other, tier="basic")
                stripe.settle()
                run(
                    stack,
                    "upgrade replacing a scheduled downgrade (PATCH)",
                    lambda: client.update(other, tier="premium"),
                )
                run(stack, "  its events through the webhook", stripe.settle)
                run(
                    stack,
                    "downgrade at period end again (PATCH)",
                    lambda: client.update(TENANT, tier="basic"),
                )
                stripe.settle()
                stack.emulator.admin("POST", "clock", {"now": end + 60})
                run(stack, "period end: the phase's events through the webhook", stripe.settle)
                portal = client.portal_session(TENANT, ADMIN_PAGE)
                stack.emulator.admin(
                    "POST",
                    f"billing_portal/sessions/{portal.session_id}/subscription_update",
                    {"subscription": subscription, "price": stripe.price("sbt_premium_monthly")},
                )
                run(stack, "plan change in the portal: its events through the webhook", stripe.settle)

    print_table(rows)


if __name__ == "__main__":
    main()
