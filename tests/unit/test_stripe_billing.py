"""The Stripe adapter's recovery searches and error translation, over a canned HTTP client (the stripe
SDK's own seam for its transport: no socket, the SDK itself unpatched)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
import stripe
from sbt_billing.adapters.stripe_billing import StripeBillingGateway
from sbt_billing.domain.billing_policy import (
    BillingPolicy,
    CancellationMode,
    CollectionMode,
    CustomerOnDelete,
    ProrationBehavior,
)
from sbt_billing.domain.errors import PermanentBillingError
from sbt_billing.domain.models import CustomerDetails
from sbt_billing.domain.values import PlanPrices

POLICY = BillingPolicy(
    collection_mode=CollectionMode.SEND_INVOICE,
    days_until_due=30,
    trial_days=14,
    proration_behavior=ProrationBehavior.CREATE_PRORATIONS,
    cancellation_mode=CancellationMode.IMMEDIATELY,
    customer_on_delete=CustomerOnDelete.MARK_OFFBOARDED,
)


class CannedHttp(stripe.HTTPClient):
    """Answers each request with the next canned (status, body) for its method and path."""

    name = "canned"

    def __init__(self, answers: Mapping[str, tuple[int, dict[str, Any]]]) -> None:
        super().__init__()
        self.answers = dict(answers)
        self.requests: list[tuple[str, str]] = []

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
        *,
        _usage: list[str] | None = None,
    ) -> tuple[str, int, Mapping[str, str]]:
        path = url.split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0]
        self.requests.append((method.upper(), "/" + path))
        status, body = self.answers[f"{method.upper()} /{path}"]
        return json.dumps(body), status, {"request-id": "req_canned"}

    def close(self) -> None:
        pass


def gateway(answers: Mapping[str, tuple[int, dict[str, Any]]]) -> tuple[StripeBillingGateway, CannedHttp]:
    http = CannedHttp(answers)
    client = stripe.StripeClient("sk_test_canned", http_client=http, max_network_retries=0)
    return StripeBillingGateway(client, POLICY), http


def customer(customer_id: str, tenant: str | None) -> dict[str, Any]:
    return {
        "id": customer_id,
        "object": "customer",
        "metadata": {} if tenant is None else {"tenantId": tenant},
    }


def found(*objects: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return 200, {"object": "search_result", "data": list(objects), "has_more": False, "url": "/v1/x"}


# -- the recovery search ---------------------------------------------------------------------------------


def test_a_customer_is_adopted_only_when_its_tenant_id_is_exactly_the_tenants() -> None:
    near_misses = [customer("cus_upper", "T-1"), customer("cus_space", "t-1 "), customer("cus_none", None)]
    billing, _ = gateway({"GET /v1/customers/search": found(*near_misses)})

    assert billing.find_customer("t-1") is None


def test_the_exact_match_is_adopted_among_the_candidates() -> None:
    billing, _ = gateway(
        {"GET /v1/customers/search": found(customer("cus_upper", "T-1"), customer("cus_exact", "t-1"))}
    )

    assert billing.find_customer("t-1") == "cus_exact"


def subscription(subscription_id: str, price: str, status: str = "active") -> dict[str, Any]:
    return {
        "id": subscription_id,
        "object": "subscription",
        "status": status,
        "items": {
            "object": "list",
            "data": [{"id": f"si_{subscription_id}", "object": "subscription_item", "price": {"id": price}}],
        },
    }


def listed(*objects: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return 200, {"object": "list", "data": list(objects), "has_more": False, "url": "/v1/subscriptions"}


def test_an_opening_recovers_the_subscription_on_its_plan_not_an_add_on_of_the_customer() -> None:
    billing, _ = gateway(
        {
            "GET /v1/subscriptions": listed(
                subscription("sub_addon", "price_addon"), subscription("sub_1", "price_b")
            )
        }
    )

    found_state = billing.find_subscription("cus_1", PlanPrices(base="price_b"))

    assert found_state is not None
    assert found_state.subscription_id == "sub_1"


def test_no_subscription_on_the_plan_is_none_so_the_opening_creates_its_own() -> None:
    billing, _ = gateway({"GET /v1/subscriptions": listed(subscription("sub_addon", "price_addon"))})

    assert billing.find_subscription("cus_1", PlanPrices(base="price_b")) is None


# -- Stripe's words, redacted ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        "Invalid email address: someone@@example.test",
        "The email address 'someone@@example.test' is invalid.",
        "Invalid email address: someone@@example.test; use another (key sk_test_abcdef0123456789)",
    ],
)
def test_a_refusal_quoting_the_email_it_refused_reaches_the_domain_without_it(message: str) -> None:
    error = {
        "error": {
            "type": "invalid_request_error",
            "code": "email_invalid",
            "param": "email",
            "message": message,
        }
    }
    billing, _ = gateway({"POST /v1/customers": (400, error)})

    with pytest.raises(PermanentBillingError) as refused:
        billing.create_customer("t-1", CustomerDetails(email="someone@@example.test"), idempotency_key="k")

    reason = str(refused.value)
    assert "@" not in reason
    assert "example.test" not in reason
    assert "abcdef0123456789" not in reason
    assert reason.startswith("InvalidRequestError 400 email_invalid: ")
    assert "[email]" in reason
