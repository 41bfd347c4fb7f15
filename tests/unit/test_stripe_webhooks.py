"""Stripe's facts applied to the account: signatures, order, duplicates, consequences on the bus."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sbt_billing.domain.billing_policy import BillingState
from sbt_billing.domain.catalogue import TierPlan
from sbt_billing.domain.errors import InvalidEvent
from sbt_billing.domain.gate import GatePolicy, decide
from sbt_billing.domain.lifecycle import Lifecycle
from sbt_billing.domain.models import (
    Account,
    AccountStatus,
    CustomerDetails,
    Desired,
    OpeningSnapshot,
    TenantFacts,
)
from sbt_billing.domain.published import (
    ACTIVATE_REQUEST,
    BILLING_FAILURE,
    BILLING_SUCCESS,
    DEACTIVATE_REQUEST,
    TENANT_BILLING_UPDATED,
)
from sbt_billing.domain.results import Result
from sbt_billing.domain.stripe_events import StripeEvent
from sbt_billing.domain.stripe_reports import WebhookPolicy, WebhookProcessor
from sbt_billing.entrypoints.stripe_events import parse_event
from sbt_billing.entrypoints.stripe_signature import InvalidSignature, signature_header, verify_signature

from tests.support.doubles import (
    FakeBillingGateway,
    FakeStripe,
    FixedClock,
    InMemoryAccountStore,
    RecordingPublisher,
)

SECRET = "whsec_unit_test_secret"
T0 = 1_795_000_000  # a Stripe `created`
CATALOGUE = {"basic": TierPlan(price="basic_key"), "premium": TierPlan(price="premium_key")}
POLICY = GatePolicy(
    allowed_states=frozenset({BillingState.ACTIVE, BillingState.TRIALING, BillingState.PAST_DUE})
)


class FakeLookup:
    def __init__(self) -> None:
        self.tenants: dict[str, str] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []

    def tenant_of_customer(self, customer_id: str) -> str | None:
        self.calls.append("tenant_of_customer")
        return self.tenants.get(customer_id)

    def subscription_object(self, subscription_id: str) -> Mapping[str, Any] | None:
        self.calls.append("subscription_object")
        return self.subscriptions.get(subscription_id)


class World:
    """A test-mode deployment (its key is sk_test_...) whose tenant t1 has the customer cus_1 in Stripe."""

    def __init__(self, livemode: bool = False, **policy: bool) -> None:
        self.store = InMemoryAccountStore()
        self.publisher = RecordingPublisher()
        self.lookup = FakeLookup()
        self.lookup.tenants["cus_1"] = "t1"
        self.processor = WebhookProcessor(
            self.store,
            self.publisher,
            self.lookup,
            CATALOGUE,
            WebhookPolicy(gate=POLICY, livemode=livemode, **policy),
        )
        self.ids = iter(range(1, 10_000))

    def deliver(
        self, type_: str, obj: dict[str, Any], created: int, event_id: str | None = None, **extra: Any
    ):  # type: ignore[no-untyped-def]
        event = StripeEvent.model_validate(
            {
                "id": event_id or f"evt_{next(self.ids)}",
                "object": "event",
                "type": type_,
                "created": created,
                "data": {"object": obj},
                **extra,
            }
        )
        return self.processor.apply(event)

    def state(self, tenant: str = "t1") -> BillingState:
        return decide(self.store.items[tenant], POLICY).state

    def types(self) -> list[str]:
        return [kind for kind, _ in self.publisher.events]


def subscription(status: str = "active", lookup_key: str = "basic_key", **fields: Any) -> dict[str, Any]:
    return {
        "id": "sub_1",
        "object": "subscription",
        "customer": "cus_1",
        "status": status,
        "metadata": {"tenantId": "t1"},
        "cancel_at_period_end": False,
        "items": {
            "data": [
                {
                    "id": "si_1",
                    "price": {"id": f"price_{lookup_key}", "lookup_key": lookup_key},
                    "current_period_start": T0,
                    "current_period_end": T0 + 30 * 86400,
                }
            ]
        },
        **fields,
    }


def invoice(status: str = "paid", invoice_id: str = "in_1", **fields: Any) -> dict[str, Any]:
    return {
        "id": invoice_id,
        "object": "invoice",
        "customer": "cus_1",
        "status": status,
        "number": "EMU-0001",
        "amount_due": 2900,
        "amount_paid": 2900 if status == "paid" else 0,
        "currency": "usd",
        "created": T0,
        "parent": {"subscription_details": {"metadata": {"tenantId": "t1"}, "subscription": "sub_1"}},
        **fields,
    }


def customer(**fields: Any) -> dict[str, Any]:
    return {"id": "cus_1", "object": "customer", "metadata": {"tenantId": "t1"}, **fields}


@pytest.fixture
def world() -> World:
    return World()


# -- signatures ----------------------------------------------------------------------------------------

PAYLOAD = json.dumps({"id": "evt_1", "object": "event"}).encode()
NOW = datetime.fromtimestamp(T0, UTC)


def test_a_signature_made_with_our_secret_within_the_tolerance_verifies() -> None:
    verify_signature(PAYLOAD, signature_header(PAYLOAD, SECRET, T0 - 299), [SECRET], NOW)


def test_any_of_two_secrets_verifies_while_a_secret_is_rolled() -> None:
    header = signature_header(PAYLOAD, "whsec_new", T0)
    verify_signature(PAYLOAD, header, [SECRET, "whsec_new"], NOW)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "t=abc,v1=00",
        signature_header(PAYLOAD, "whsec_other", T0),
        signature_header(PAYLOAD + b" ", SECRET, T0),
        signature_header(PAYLOAD, SECRET, T0 - 301),  # a replay with an old timestamp
        signature_header(PAYLOAD, SECRET, T0 + 301),
        signature_header(PAYLOAD, SECRET, T0).replace("v1=", "v0="),
    ],
    ids=["missing", "empty", "malformed", "other-secret", "body-changed", "old", "future", "no-v1"],
)
def test_a_bad_signature_is_refused(header: str | None) -> None:
    with pytest.raises(InvalidSignature):
        verify_signature(PAYLOAD, header, [SECRET], NOW)


@pytest.mark.parametrize(
    "header",
    [
        "t=\u00b2,v1=" + "0" * 64,  # a digit to str.isdigit(), not to int()
        f"t={T0},v1=" + "\u00e9" * 64,  # a signature that is not ASCII
        f"t={T0},v1=\u0660",
        f"t={T0}\u00a0,v1=" + "0" * 64,
        "t",
        "v1",
        "t=,v1=",
        f"t={T0},v1",
        f"t={T0}=1,v1=00",
        "=,=,=",
        ",,,",
    ],
)
def test_a_header_of_any_other_shape_is_refused_not_raised(header: str) -> None:
    with pytest.raises(InvalidSignature):
        verify_signature(PAYLOAD, header, [SECRET], NOW)


def test_a_body_that_is_not_utf8_is_refused_even_with_a_matching_hmac() -> None:
    body = b'{"id": "evt_1", "object": "event", "x": "\xff"}'
    digest = hmac.new(SECRET.encode(), f"{T0}.".encode() + body, hashlib.sha256).hexdigest()

    with pytest.raises(InvalidSignature):
        verify_signature(body, f"t={T0},v1={digest}", [SECRET], NOW)


def test_no_secret_refuses_everything() -> None:
    with pytest.raises(InvalidSignature):
        verify_signature(PAYLOAD, signature_header(PAYLOAD, SECRET, T0), [], NOW)


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"object": "customer"}', b'{"id": "evt_1"}'])
def test_a_malformed_body_is_an_invalid_event(body: bytes) -> None:
    with pytest.raises(InvalidEvent):
        parse_event(body)


# -- order and duplicates ----------------------------------------------------------------------------------


def test_an_older_subscription_event_never_overwrites_a_newer_one(world: World) -> None:
    newer = world.deliver("customer.subscription.updated", subscription("past_due"), T0 + 10)
    older = world.deliver("customer.subscription.created", subscription("active"), T0)

    assert (newer.result, older.result) == (Result.RECORDED, Result.UNCHANGED)
    assert world.state() is BillingState.PAST_DUE


def test_subscription_events_in_order_end_in_the_last_state(world: World) -> None:
    world.deliver("customer.subscription.created", subscription("active"), T0)
    world.deliver("customer.subscription.updated", subscription("past_due"), T0 + 10)
    world.deliver("customer.subscription.updated", subscription("unpaid"), T0 + 20)

    assert world.state() is BillingState.UNPAID


def test_two_events_of_the_same_second_are_settled_by_stripes_current_object(world: World) -> None:
    opened(world)
    world.lookup.subscriptions["sub_1"] = subscription("past_due")
    world.deliver("customer.subscription.updated", subscription("past_due"), T0)
    world.deliver("customer.subscription.updated", subscription("active"), T0)

    assert world.lookup.calls == ["subscription_object"]
    assert world.state() is BillingState.PAST_DUE


def test_a_duplicate_delivery_changes_and_publishes_nothing(world: World) -> None:
    first = world.deliver("invoice.paid", invoice(), T0, event_id="evt_paid")
    writes, published = world.store.writes, len(world.publisher.events)

    again = world.deliver("invoice.paid", invoice(), T0, event_id="evt_paid")

    assert first.result is Result.RECORDED
    assert again.result is Result.UNCHANGED
    assert (world.store.writes, len(world.publisher.events)) == (writes, published)


def test_a_failure_older_than_the_invoices_payment_is_superseded(world: World) -> None:
    world.deliver("invoice.paid", invoice("paid"), T0 + 5)
    late = world.deliver("invoice.payment_failed", invoice("open", attempt_count=1), T0)

    assert late.result is Result.UNCHANGED
    assert world.types().count(BILLING_FAILURE) == 0
    assert world.store.items["t1"].reported.payment.state.value == "paid"  # type: ignore[union-attr]


def test_the_latest_invoice_is_the_one_created_last(world: World) -> None:
    world.deliver("invoice.finalized", invoice("open", "in_2", created=T0 + 100), T0 + 100)
    world.deliver("invoice.paid", invoice("paid", "in_1"), T0 + 200)

    report = world.store.items["t1"].reported
    assert report is not None
    assert report.invoice is not None
    assert report.invoice.value.invoice_id == "in_2"
    assert world.types().count(BILLING_SUCCESS) == 1, "the older invoice's payment is still a fact"


# -- before the record, and with the lifecycle -------------------------------------------------------------


def test_a_webhook_before_the_record_is_kept_in_a_pending_account(world: World) -> None:
    outcome = world.deliver("customer.subscription.created", subscription("trialing"), T0)

    assert outcome.result is Result.RECORDED
    account = world.store.items["t1"]
    assert account.status is AccountStatus.PENDING
    assert account.customer_id is None, "the lifecycle's ids stay the lifecycle's"
    assert account.reported is not None
    assert account.reported.customer_id == "cus_1"
    assert world.state() is BillingState.TRIALING


def test_the_lifecycle_opens_an_account_a_webhook_created_and_keeps_the_report(world: World) -> None:
    world.deliver("customer.subscription.created", subscription("trialing"), T0)
    stripe = FakeStripe(prices={"basic_key": "price_basic_key", "premium_key": "price_premium_key"})
    lifecycle = Lifecycle(
        world.store, FakeBillingGateway(stripe), RecordingPublisher(), FixedClock(), CATALOGUE, 120
    )

    opened = lifecycle.open_account(
        TenantFacts(tenant_id="t1", name="acme", tier="basic", occurred_at=datetime(2026, 11, 24, tzinfo=UTC))
    )

    assert opened.result is Result.APPLIED
    account = world.store.items["t1"]
    assert account.status is AccountStatus.OPEN
    assert account.reported is not None
    assert account.reported.subscription is not None


def test_a_tenant_is_found_through_its_customer_when_the_invoice_does_not_name_it(world: World) -> None:
    world.lookup.tenants["cus_1"] = "t1"

    outcome = world.deliver("invoice.finalized", invoice("open", parent=None), T0)

    assert outcome.tenant_id == "t1"
    assert world.lookup.calls == ["tenant_of_customer"]


def test_an_object_of_no_tenant_is_acknowledged_and_ignored(world: World) -> None:
    outcome = world.deliver("customer.updated", customer(metadata={}), T0)

    assert outcome.result is Result.IGNORED
    assert world.store.items == {}


def test_other_event_types_are_acknowledged_and_ignored(world: World) -> None:
    assert world.deliver("charge.succeeded", {"id": "ch_1"}, T0).result is Result.IGNORED


# -- only the tenant's own objects ----------------------------------------------------------------------------


def with_subscription(world: World, status: str = "active") -> None:
    """The account opened with cus_1 and sub_1, and Stripe's report of sub_1."""
    opened(world)
    world.deliver("customer.subscription.created", subscription(status), T0)
    world.publisher.events.clear()


def test_a_cancelled_add_on_subscription_on_the_tenants_customer_leaves_the_gate_alone(world: World) -> None:
    with_subscription(world, "active")
    before = world.store.items["t1"]

    outcome = world.deliver(
        "customer.subscription.deleted", subscription("canceled", id="sub_addon"), T0 + 10
    )

    assert (outcome.result, outcome.foreign) == (Result.IGNORED, True)
    assert world.state() is BillingState.ACTIVE
    assert world.store.items["t1"] == before
    assert world.types() == []


@pytest.mark.parametrize(
    ("real", "copy", "state"),
    [("active", "unpaid", BillingState.ACTIVE), ("unpaid", "active", BillingState.UNPAID)],
)
def test_a_subscription_of_another_customer_naming_the_tenant_moves_the_gate_neither_way(
    real: str, copy: str, state: BillingState
) -> None:
    world = World(publish_deactivate=True, publish_activate=True)
    with_subscription(world, real)

    outcome = world.deliver(
        "customer.subscription.updated", subscription(copy, id="sub_other", customer="cus_other"), T0 + 10
    )

    assert outcome.foreign
    assert world.state() is state
    assert world.types() == [], "no deactivateRequest, activateRequest or billing update"


def test_an_invoice_of_another_customer_or_of_an_add_on_is_not_the_tenants(world: World) -> None:
    with_subscription(world)
    add_on = {"subscription_details": {"metadata": {"tenantId": "t1"}, "subscription": "sub_addon"}}

    outcomes = [
        world.deliver("invoice.payment_failed", invoice("open", customer="cus_other"), T0 + 10),
        world.deliver("invoice.payment_failed", invoice("open", "in_2", parent=add_on), T0 + 20),
        world.deliver(
            "invoice.payment_failed", invoice("open", "in_3", parent=None, subscription="sub_old"), T0 + 30
        ),
    ]

    assert [outcome.foreign for outcome in outcomes] == [True, True, True]
    assert world.types() == []
    assert world.store.items["t1"].reported.payment is None  # type: ignore[union-attr]


def test_an_invoice_of_the_tenants_subscription_or_of_its_customer_alone_is_applied(world: World) -> None:
    with_subscription(world)

    own = world.deliver("invoice.payment_failed", invoice("open", attempt_count=1), T0 + 10)
    one_off = world.deliver("invoice.paid", invoice("paid", "in_9", parent=None), T0 + 20)

    assert (own.result, one_off.result) == (Result.APPLIED, Result.APPLIED)
    assert world.types().count(BILLING_FAILURE) == 1
    assert world.types().count(BILLING_SUCCESS) == 1


def test_another_customer_naming_the_tenant_is_not_merged_once_the_account_knows_its_own(
    world: World,
) -> None:
    opened(world)

    outcome = world.deliver("customer.updated", customer(id="cus_other", email="other@elsewhere.test"), T0)

    assert outcome.foreign
    assert world.store.items["t1"].desired.email.value == "old@acme.test"  # type: ignore[union-attr]


def interrupted_opening(world: World) -> None:
    """An opening that created its customer in Stripe and was cut off before recording it."""
    facts = TenantFacts(
        tenant_id="t1", email="real@acme.test", tier="basic", occurred_at=datetime(2026, 1, 1, tzinfo=UTC)
    )
    desired = Desired().merge(facts)
    snapshot = OpeningSnapshot(
        details=desired.details(), tier="basic", price_id="price_basic_key", started_at=facts.occurred_at
    )
    world.store.save(
        Account(tenant_id="t1", status=AccountStatus.OPENING, desired=desired, opening=snapshot), None
    )


def test_a_foreign_customer_update_during_an_interrupted_opening_is_recorded_not_merged(world: World) -> None:
    interrupted_opening(world)

    outcome = world.deliver("customer.updated", customer(id="cus_other", email="other@elsewhere.test"), T0)

    account = world.store.items["t1"]
    assert not outcome.foreign
    assert account.reported is not None
    assert account.reported.customer_id == "cus_other", "recorded"
    assert account.desired.details() == CustomerDetails(email="real@acme.test"), "not merged"


def test_before_the_account_knows_its_customer_a_subscription_counts_only_if_its_customer_names_the_tenant(
    world: World,
) -> None:
    own = world.deliver("customer.subscription.created", subscription("trialing"), T0)
    other = world.deliver(
        "customer.subscription.updated",
        subscription("canceled", id="sub_other", customer="cus_other"),
        T0 + 10,
    )

    assert (own.result, own.foreign) == (Result.RECORDED, False)
    assert (other.result, other.foreign) == (Result.IGNORED, True)
    assert world.state() is BillingState.TRIALING


def test_once_the_account_records_its_subscription_a_report_of_another_is_not_its_state(world: World) -> None:
    world.deliver("customer.subscription.created", subscription("canceled", id="sub_other"), T0)

    opened(world)  # records cus_1 / sub_1, active
    assert world.state() is BillingState.ACTIVE

    late = world.deliver("customer.subscription.updated", subscription("past_due"), T0 - 5)
    assert late.result is Result.APPLIED, "an own event older than the other's report still lands"
    assert world.state() is BillingState.PAST_DUE


@pytest.mark.parametrize(
    ("key_is_live", "extra"),
    [(False, {"livemode": True}), (True, {"livemode": False}), (False, {"account": "acct_connected"})],
    ids=["live-event-test-key", "test-event-live-key", "connected-account"],
)
def test_an_event_of_the_other_mode_or_of_a_connected_account_is_not_applied(
    key_is_live: bool, extra: dict[str, Any]
) -> None:
    world = World(livemode=key_is_live)
    extra = {"livemode": key_is_live, **extra}

    outcome = world.deliver("customer.subscription.updated", subscription("unpaid"), T0, **extra)

    assert (outcome.result, outcome.foreign) == (Result.IGNORED, True)
    assert world.store.items == {}
    assert world.lookup.calls == [], "nothing is read for it either"


def test_an_event_of_the_keys_mode_is_applied_in_live_mode_too() -> None:
    world = World(livemode=True)

    outcome = world.deliver("customer.subscription.created", subscription("active"), T0, livemode=True)

    assert outcome.result is Result.RECORDED


# -- Stripe as a source of desired state ----------------------------------------------------------------------


def opened(world: World) -> None:
    stripe = FakeStripe(prices={"basic_key": "price_basic_key", "premium_key": "price_premium_key"})
    lifecycle = Lifecycle(
        world.store, FakeBillingGateway(stripe), RecordingPublisher(), FixedClock(), CATALOGUE, 120
    )
    lifecycle.open_account(
        TenantFacts(
            tenant_id="t1", email="old@acme.test", tier="basic", occurred_at=datetime(2026, 1, 1, tzinfo=UTC)
        )
    )
    account = world.store.items["t1"]
    world.store.items["t1"] = account.model_copy(update={"customer_id": "cus_1", "subscription_id": "sub_1"})


def test_an_email_edited_in_stripe_becomes_desired_and_applied(world: World) -> None:
    opened(world)

    world.deliver("customer.updated", customer(email="new@acme.test"), T0)

    account = world.store.items["t1"]
    assert account.desired.email is not None
    assert account.desired.email.value == "new@acme.test"
    assert not account.needs_driving(), "the lifecycle must not push it back"


def test_an_echo_of_our_own_write_is_not_merged_again(world: World) -> None:
    opened(world)

    world.deliver(
        "customer.updated",
        customer(email="stale@acme.test"),
        T0,
        request={"id": "req_1", "idempotency_key": "sbt-billing:t1:customer:update:3:abc"},
    )

    assert world.store.items["t1"].desired.email.value == "old@acme.test"  # type: ignore[union-attr]


def test_a_plan_changed_in_stripe_becomes_the_tier(world: World) -> None:
    opened(world)

    world.deliver("customer.subscription.updated", subscription("active", lookup_key="premium_key"), T0)

    account = world.store.items["t1"]
    assert (account.desired.tier_value, account.applied_tier) == ("premium", "premium")
    assert account.price_id == "price_premium_key"
    assert not account.needs_driving()


def test_a_newer_sbt_fact_wins_over_an_older_stripe_edit(world: World) -> None:
    opened(world)
    newer = datetime.fromtimestamp(T0, UTC) + timedelta(hours=1)
    world.store.items["t1"] = world.store.items["t1"].model_copy(
        update={
            "desired": world.store.items["t1"].desired.merge(
                TenantFacts(tenant_id="t1", email="sbt@acme.test", occurred_at=newer)
            )
        }
    )

    world.deliver("customer.updated", customer(email="portal@acme.test"), T0)

    assert world.store.items["t1"].desired.email.value == "sbt@acme.test"  # type: ignore[union-attr]


# -- what goes on the bus ----------------------------------------------------------------------------------


def test_a_paid_invoice_is_a_billing_success_and_a_failed_payment_a_billing_failure(world: World) -> None:
    world.deliver("invoice.payment_failed", invoice("open", attempt_count=1), T0)
    world.deliver("invoice.paid", invoice("paid"), T0 + 60)

    [failure] = world.publisher.of_type(BILLING_FAILURE)
    [success] = world.publisher.of_type(BILLING_SUCCESS)
    assert failure["operation"] == "invoice_payment_failed"
    assert failure["attemptCount"] == 1
    assert (success["tenantId"], success["invoiceId"], success["amountPaid"]) == ("t1", "in_1", 2900)


def test_an_uncollectible_invoice_is_a_billing_failure(world: World) -> None:
    world.deliver("invoice.marked_uncollectible", invoice("uncollectible"), T0)

    assert world.publisher.of_type(BILLING_FAILURE)[0]["operation"] == "invoice_marked_uncollectible"


def test_nonpayment_deactivates_and_recovery_activates_when_switched_on() -> None:
    world = World(publish_deactivate=True, publish_activate=True)
    world.deliver("customer.subscription.created", subscription("active"), T0)
    world.deliver("customer.subscription.updated", subscription("unpaid"), T0 + 10)
    world.deliver("customer.subscription.updated", subscription("unpaid", cancel_at_period_end=True), T0 + 15)
    world.deliver("customer.subscription.updated", subscription("active"), T0 + 20)

    assert [kind for kind in world.types() if kind in (DEACTIVATE_REQUEST, ACTIVATE_REQUEST)] == [
        DEACTIVATE_REQUEST,
        ACTIVATE_REQUEST,
    ]
    assert world.publisher.of_type(DEACTIVATE_REQUEST)[0]["tenantId"] == "t1"


def test_a_cancellation_for_failed_payments_deactivates() -> None:
    world = World(publish_deactivate=True)
    world.deliver(
        "customer.subscription.deleted",
        subscription("canceled", cancellation_details={"reason": "payment_failed"}),
        T0,
    )

    assert DEACTIVATE_REQUEST in world.types()


def test_a_cancellation_on_request_does_not_deactivate() -> None:
    world = World(publish_deactivate=True)
    world.deliver(
        "customer.subscription.deleted",
        subscription("canceled", cancellation_details={"reason": "cancellation_requested"}),
        T0,
    )

    assert DEACTIVATE_REQUEST not in world.types()


def test_activate_and_deactivate_are_off_by_default(world: World) -> None:
    world.deliver("customer.subscription.updated", subscription("unpaid"), T0)
    world.deliver("customer.subscription.updated", subscription("active"), T0 + 10)

    assert not {DEACTIVATE_REQUEST, ACTIVATE_REQUEST} & set(world.types())


def test_a_change_of_state_or_plan_is_a_tenant_billing_update(world: World) -> None:
    world.deliver("customer.subscription.created", subscription("active"), T0)
    world.deliver("customer.subscription.updated", subscription("active"), T0 + 5)  # nothing new for the app
    world.deliver("customer.subscription.updated", subscription("past_due"), T0 + 10)

    updates = world.publisher.of_type(TENANT_BILLING_UPDATED)
    assert [(u["state"], u["allowed"]) for u in updates] == [("active", True), ("past_due", True)]
    assert updates[0]["tier"] == "basic"


def test_billing_updates_can_be_switched_off() -> None:
    world = World(publish_billing_updates=False)
    world.deliver("customer.subscription.created", subscription("active"), T0)

    assert world.types() == []


def test_a_concurrent_write_is_merged_again_not_lost(world: World) -> None:
    world.deliver("customer.subscription.created", subscription("active"), T0)
    store = world.store
    original_save = store.save
    interfered = []

    def save_after_someone_else(account, expected_revision):  # type: ignore[no-untyped-def]
        if not interfered:
            interfered.append(True)
            current = store.items["t1"]
            original_save(current.model_copy(update={"applied_tier": "basic"}), current.revision)
        return original_save(account, expected_revision)

    store.save = save_after_someone_else  # type: ignore[method-assign]
    outcome = world.deliver("invoice.paid", invoice("paid"), T0 + 10)

    account = store.items["t1"]
    assert outcome.result is Result.APPLIED
    assert account.applied_tier == "basic", "the other writer's change is kept"
    assert account.reported is not None
    assert account.reported.payment is not None
    assert world.types().count(BILLING_SUCCESS) == 1, "published once despite the retry"
