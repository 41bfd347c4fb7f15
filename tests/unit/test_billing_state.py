"""The gate's rule: every state, what makes it, and whether it is allowed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sbt_billing.bootstrap.settings import Settings
from sbt_billing.domain.billing_policy import BillingState
from sbt_billing.domain.catalogue import TierPlan, tier_for_price
from sbt_billing.domain.gate import GatePolicy, decide, lapsed_for_nonpayment
from sbt_billing.domain.models import (
    Account,
    AccountStatus,
    PaymentState,
    ReportedPayment,
    ReportedSubscription,
    Stamp,
    StripeReport,
    StripeStamp,
    SubscriptionFact,
)

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
DEFAULT = GatePolicy(allowed_states=Settings.from_environment({}).gate_allowed_states)


def reported(status: str, reason: str | None = None, **fields: object) -> Account:
    fact = SubscriptionFact(subscription_id="sub_1", status=status, cancellation_reason=reason)
    report = StripeReport(
        subscription=ReportedSubscription(value=fact, stamp=StripeStamp(at=T0, event_id="evt_1")), **fields
    )  # type: ignore[arg-type]
    return Account(tenant_id="t1", status=AccountStatus.OPEN, subscription_status="active", reported=report)


@pytest.mark.parametrize(
    ("account", "state", "allowed"),
    [
        (reported("active"), BillingState.ACTIVE, True),
        (reported("trialing"), BillingState.TRIALING, True),
        (reported("past_due"), BillingState.PAST_DUE, True),
        (reported("unpaid"), BillingState.UNPAID, False),
        (reported("paused"), BillingState.UNPAID, False),
        (reported("canceled"), BillingState.CANCELED, False),
        (reported("incomplete_expired"), BillingState.CANCELED, False),
        (reported("incomplete"), BillingState.UNKNOWN, False),
        (Account(tenant_id="t1", status=AccountStatus.CLOSED), BillingState.OFFBOARDED, False),
        (Account(tenant_id="t1"), BillingState.UNKNOWN, False),
        (Account(tenant_id="t1", status=AccountStatus.OPENING), BillingState.UNKNOWN, False),
    ],
    ids=lambda value: value.value if isinstance(value, BillingState) else None,
)
def test_every_state_under_the_default_rule(account: Account, state: BillingState, allowed: bool) -> None:
    decision = decide(account, DEFAULT)

    assert (decision.state, decision.allowed) == (state, allowed)
    assert decision.reasons


def test_the_lifecycle_status_answers_until_stripe_reports_one() -> None:
    account = Account(tenant_id="t1", status=AccountStatus.OPEN, subscription_status="trialing")

    assert decide(account, DEFAULT).state is BillingState.TRIALING


def test_stripes_report_wins_over_the_lifecycle_status() -> None:
    assert decide(reported("past_due"), DEFAULT).reasons[0] == "subscription_past_due"


def test_an_offboarding_recorded_but_not_yet_driven_is_offboarded() -> None:
    account = reported("active").model_copy(
        update={"desired": reported("active").desired.close(Stamp(at=T0, digest="x"))}
    )

    assert decide(account, DEFAULT).state is BillingState.OFFBOARDED


def test_a_deleted_customer_is_canceled() -> None:
    decision = decide(reported("active", customer_deleted=True), DEFAULT)

    assert (decision.state, decision.reasons) == (BillingState.CANCELED, ("customer_deleted",))


def test_a_report_of_another_subscription_than_the_accounts_is_not_its_state() -> None:
    account = reported("canceled", "payment_failed").model_copy(
        update={"customer_id": "cus_1", "subscription_id": "sub_real", "subscription_status": "active"}
    )

    assert decide(account, DEFAULT).state is BillingState.ACTIVE
    assert not lapsed_for_nonpayment(account)


def test_a_deletion_reported_of_another_customer_than_the_accounts_is_not_its_state() -> None:
    account = reported("active", customer_deleted=True, customer_id="cus_other").model_copy(
        update={"customer_id": "cus_1"}
    )

    assert decide(account, DEFAULT).state is BillingState.ACTIVE


def test_allowed_states_are_the_deployments_choice() -> None:
    strict = GatePolicy(allowed_states=frozenset({BillingState.ACTIVE}))

    assert decide(reported("past_due"), strict).allowed is False
    assert decide(reported("active"), strict).allowed is True


def test_a_failed_payment_is_a_reason() -> None:
    payment = ReportedPayment(
        state=PaymentState.FAILED, invoice_id="in_1", stamp=StripeStamp(at=T0, event_id="evt_2")
    )

    assert "payment_failed" in decide(reported("past_due", payment=payment), DEFAULT).reasons


@pytest.mark.parametrize(
    ("account", "lapsed"),
    [
        (reported("unpaid"), True),
        (reported("canceled", "payment_failed"), True),
        (reported("canceled", "payment_disputed"), True),
        (reported("canceled", "cancellation_requested"), False),
        (reported("past_due"), False),
    ],
)
def test_lapsed_for_nonpayment(account: Account, lapsed: bool) -> None:
    assert lapsed_for_nonpayment(account) is lapsed


def test_a_price_maps_back_to_its_tier_by_lookup_key_or_id() -> None:
    catalogue = {"basic": TierPlan(price="basic_key"), "gold": TierPlan(price="price_gold")}

    assert tier_for_price(catalogue, "price_x", "basic_key") == "basic"
    assert tier_for_price(catalogue, "price_gold", None) == "gold"
    assert tier_for_price(catalogue, "price_other", "other") is None
