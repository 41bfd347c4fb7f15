"""How the billing API answers a change's outcome (billing_changes._answer), without sockets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sbt_billing.domain.billing_policy import BillingState
from sbt_billing.domain.gate import GatePolicy
from sbt_billing.domain.models import Account, AccountStatus, InvoiceFact, Lease, Outcome, TenantFacts
from sbt_billing.domain.results import Operation, Result
from sbt_billing.entrypoints.api.changes import BillingChangeIn, _answer
from sbt_billing.entrypoints.api.wire import ApiError

GATE = GatePolicy(allowed_states=frozenset({BillingState.ACTIVE}))


def outcome(result: Result, account: Account | None = None, **fields: object) -> Outcome:
    account = account or Account(
        tenant_id="t1", status=AccountStatus.OPEN, subscription_id="sub_1", subscription_status="active"
    )
    return Outcome(
        tenant_id="t1", operation=Operation.UPDATE_ACCOUNT, result=result, account=account, **fields
    )  # type: ignore[arg-type]


def leased(working_until: datetime, expires_at: datetime) -> Account:
    return Account(
        tenant_id="t1",
        status=AccountStatus.OPEN,
        subscription_id="sub_1",
        lease=Lease(owner="other", expires_at=expires_at, working_until=working_until),
    )


def test_a_change_recorded_under_a_working_holders_lease_is_busy_for_a_second() -> None:
    now = datetime.now(UTC)
    account = leased(working_until=now + timedelta(seconds=25), expires_at=now + timedelta(seconds=60))

    with pytest.raises(ApiError) as busy:
        _answer(outcome(Result.RECORDED, account), GATE)

    assert (busy.value.status, busy.value.code) == (409, "tenant_busy")
    assert busy.value.headers == {"Retry-After": "1"}


def test_a_change_recorded_under_a_gone_holders_lease_is_busy_until_the_lease_expires() -> None:
    now = datetime.now(UTC)
    account = leased(working_until=now - timedelta(seconds=5), expires_at=now + timedelta(seconds=40))

    with pytest.raises(ApiError) as busy:
        _answer(outcome(Result.RECORDED, account), GATE)

    assert busy.value.headers is not None
    # The answer reads the wall clock after NOW was taken: allow for a slow machine, never a second.
    assert 30 <= int(busy.value.headers["Retry-After"]) <= 40


def test_a_change_recorded_on_an_account_not_open_yet_is_answered_with_its_state() -> None:
    facts = TenantFacts(tenant_id="t1", tier="premium", occurred_at=datetime.now(UTC))
    pending = Account(tenant_id="t1").model_copy(
        update={"desired": Account(tenant_id="t1").desired.merge(facts)}
    )

    answer = _answer(outcome(Result.RECORDED, pending), GATE)

    assert answer.status == 200
    assert (answer.body["result"], answer.body["tier"], answer.body["subscription"]) == (
        "recorded",
        "premium",
        None,
    )
    assert answer.body["status"]["state"] == "unknown"


def test_payment_required_is_a_402_with_the_invoice_to_pay() -> None:
    invoice = InvoiceFact(invoice_id="in_1", status="open", amount_due=2517, hosted_invoice_url="https://pay")

    answer = _answer(outcome(Result.PAYMENT_REQUIRED, invoice=invoice), GATE)

    assert answer.status == 402
    error = answer.body["error"]
    assert (error["code"], error["invoice"]["id"], error["invoice"]["hostedInvoiceUrl"]) == (
        "payment_required",
        "in_1",
        "https://pay",
    )


def test_a_refusal_by_stripe_is_a_502_that_does_not_echo_stripes_words() -> None:
    reason = "InvalidRequestError 400 email_invalid: Invalid email address: someone@example.test"

    answer = _answer(outcome(Result.FAILED, reason=reason), GATE)

    assert answer.status == 502
    assert answer.body["error"]["code"] == "stripe_refused"
    assert "someone@example.test" not in answer.body["error"]["message"]
    assert "email_invalid" in answer.body["error"]["message"]


def test_an_offboarded_tenant_is_a_409() -> None:
    with pytest.raises(ApiError) as refused:
        _answer(outcome(Result.IGNORED), GATE)

    assert (refused.value.status, refused.value.code) == (409, "tenant_offboarded")


def test_a_body_is_camel_case_and_names_a_change() -> None:
    change = BillingChangeIn.model_validate(
        {"tenantName": "acme", "address": {"postalCode": "1", "country": "us"}}
    )

    facts = change.facts("t1", datetime.now(UTC))

    assert facts.name == "acme"
    assert facts.address is not None
    assert (facts.address.postal_code, facts.address.country) == ("1", "US")
    with pytest.raises(ValueError, match="nothing to change"):
        BillingChangeIn.model_validate({})
    with pytest.raises(ValueError, match="extra"):
        BillingChangeIn.model_validate({"tenant_name": "acme"})
