"""Self-service in the domain, with in-memory doubles: when a downgrade waits for the period's end, what
the gate says about payment methods and payments needing the customer, the portal's configuration, and
what the webhook makes of Checkout, the portal and Stripe's clock."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from sbt_billing.domain.billing_policy import BillingState, CancellationMode, DowngradeAt
from sbt_billing.domain.catalogue import TierPlan
from sbt_billing.domain.errors import NotBillable
from sbt_billing.domain.gate import GatePolicy, decide
from sbt_billing.domain.models import (
    Account,
    AccountStatus,
    PaymentState,
    ReportedPayment,
    ScheduledChange,
    StripeReport,
    StripeStamp,
    TenantFacts,
)
from sbt_billing.domain.plan_timing import PriceTerms, is_downgrade
from sbt_billing.domain.published import BILLING_SUCCESS, TRIAL_WILL_END
from sbt_billing.domain.results import Result
from sbt_billing.domain.self_service import FlowNotOffered, PortalFlow, PortalPolicy, SelfService
from sbt_billing.domain.stripe_events import StripeEvent
from sbt_billing.domain.stripe_reports import WebhookPolicy, WebhookProcessor
from sbt_billing.domain.stripe_self_service import GIVE_PAYMENT_METHOD

from tests.support.doubles import InMemoryAccountStore, InMemoryBilling, RecordingPublisher

CATALOGUE = {"basic": TierPlan(price="basic_key"), "premium": TierPlan(price="premium_key")}
POLICY = GatePolicy(allowed_states=frozenset({BillingState.ACTIVE, BillingState.TRIALING}))
T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def fact(at_seconds: int, **fields: Any) -> TenantFacts:
    return TenantFacts(tenant_id="t1", occurred_at=T0.replace(second=at_seconds), **fields)


def opened_on(billing: InMemoryBilling, tier: str) -> None:
    outcome = billing.lifecycle().open_account(fact(0, tier=tier, name="acme"))
    assert outcome.result is Result.APPLIED


# -- what a downgrade is ------------------------------------------------------------------------------------


def terms(amount: int | None, interval: str = "month", count: int = 1) -> PriceTerms:
    return PriceTerms(price_id="p", amount=amount, currency="usd", interval=interval, interval_count=count)


def test_a_downgrade_is_a_lower_amount_per_month_whatever_the_interval() -> None:
    assert is_downgrade(terms(2900), terms(29900))
    assert not is_downgrade(terms(29900), terms(2900))
    assert is_downgrade(terms(30000, "year"), terms(2900))  # 2500 a month
    assert not is_downgrade(terms(36000, "year"), terms(2900))  # 3000 a month
    assert not is_downgrade(terms(2900), terms(2900))


def test_a_price_without_a_flat_amount_is_never_a_downgrade() -> None:
    assert not is_downgrade(terms(None), terms(2900))
    assert not is_downgrade(terms(100, "fortnight"), terms(2900))


# -- downgrades at the period's end ---------------------------------------------------------------------------


def test_with_period_end_a_downgrade_is_scheduled_and_the_tier_billed_now_stays() -> None:
    billing = InMemoryBilling(CATALOGUE, downgrade_at=DowngradeAt.PERIOD_END)
    opened_on(billing, "premium")

    outcome = billing.lifecycle().update_account(fact(10, tier="basic"))

    account = billing.store.items["t1"]
    assert outcome.result is Result.SCHEDULED
    assert account.applied_tier == "premium"
    assert account.scheduled_change is not None
    assert (account.scheduled_change.tier, account.scheduled_change.at) == (
        "basic",
        billing.stripe.period_end,
    )
    assert billing.stripe.writes("change_plan") == 0
    assert not account.needs_driving()
    [published] = billing.publisher.of_type(BILLING_SUCCESS)[-1:]
    assert published["scheduledChange"] == {"tier": "basic", "at": billing.stripe.period_end.isoformat()}


def test_with_period_end_a_downgrade_during_a_trial_applies_at_once() -> None:
    billing = InMemoryBilling(CATALOGUE, downgrade_at=DowngradeAt.PERIOD_END)
    opened_on(billing, "premium")
    account = billing.store.items["t1"]
    billing.store.items["t1"] = account.model_copy(update={"subscription_status": "trialing"})

    outcome = billing.lifecycle().update_account(fact(10, tier="basic"))

    assert outcome.result is Result.APPLIED
    assert billing.store.items["t1"].applied_tier == "basic"
    assert billing.stripe.writes("schedule_plan_change") == 0


def test_with_period_end_an_upgrade_stays_immediate() -> None:
    billing = InMemoryBilling(CATALOGUE, downgrade_at=DowngradeAt.PERIOD_END)
    opened_on(billing, "basic")

    outcome = billing.lifecycle().update_account(fact(10, tier="premium"))

    assert outcome.result is Result.APPLIED
    assert billing.store.items["t1"].applied_tier == "premium"
    assert billing.stripe.writes("schedule_plan_change") == 0


def test_by_default_a_downgrade_applies_at_once() -> None:
    billing = InMemoryBilling(CATALOGUE)
    opened_on(billing, "premium")

    outcome = billing.lifecycle().update_account(fact(10, tier="basic"))

    assert outcome.result is Result.APPLIED
    assert billing.store.items["t1"].applied_tier == "basic"
    assert billing.stripe.writes("schedule_plan_change") == 0


def test_an_upgrade_before_the_period_end_releases_the_schedule_then_changes_the_plan() -> None:
    billing = InMemoryBilling(
        {**CATALOGUE, "standard": TierPlan(price="standard_key")}, downgrade_at=DowngradeAt.PERIOD_END
    )
    billing.stripe.prices["standard_key"] = "price_standard"
    billing.stripe.amounts["price_standard"] = 9900
    opened_on(billing, "standard")
    billing.lifecycle().update_account(fact(10, tier="basic"))
    [schedule_id] = billing.stripe.schedules

    outcome = billing.lifecycle().update_account(fact(20, tier="premium"))

    account = billing.store.items["t1"]
    assert outcome.result is Result.APPLIED
    assert billing.stripe.schedules[schedule_id][1] == "released"
    assert (account.applied_tier, account.scheduled_change) == ("premium", None)
    assert billing.stripe.calls[-2:] == ["release_schedule", "change_plan"]


def test_going_back_to_the_tier_billed_now_withdraws_the_scheduled_downgrade() -> None:
    billing = InMemoryBilling(CATALOGUE, downgrade_at=DowngradeAt.PERIOD_END)
    opened_on(billing, "premium")
    billing.lifecycle().update_account(fact(10, tier="basic"))

    outcome = billing.lifecycle().update_account(fact(20, tier="premium"))

    assert outcome.result is Result.APPLIED
    assert billing.store.items["t1"].scheduled_change is None
    assert billing.stripe.writes("release_schedule") == 1
    assert billing.stripe.writes("change_plan") == 0


def test_the_same_downgrade_asked_again_schedules_nothing_more() -> None:
    billing = InMemoryBilling(CATALOGUE, downgrade_at=DowngradeAt.PERIOD_END)
    opened_on(billing, "premium")
    billing.lifecycle().update_account(fact(10, tier="basic"))

    again = billing.lifecycle().update_account(fact(20, tier="basic"))

    assert again.result is Result.UNCHANGED
    assert billing.stripe.writes("schedule_plan_change") == 1


# -- the payment method the tenant gave -------------------------------------------------------------------


def test_a_payment_method_given_becomes_the_default_and_the_subscription_charges_it() -> None:
    billing = InMemoryBilling(CATALOGUE)
    opened_on(billing, "basic")
    account = billing.store.items["t1"]

    first = billing.lifecycle().update_account(fact(10, payment_method="pm_1"))
    again = billing.lifecycle().update_account(fact(10, payment_method="pm_1"))

    assert (first.result, again.result) == (Result.APPLIED, Result.UNCHANGED)
    assert billing.stripe.defaults[str(account.customer_id)] == ("pm_1", account.subscription_id)
    assert billing.stripe.writes("use_payment_method") == 1
    assert billing.store.items["t1"].applied_payment_method == "pm_1"


def test_a_later_card_replaces_the_earlier_and_an_older_report_changes_nothing() -> None:
    billing = InMemoryBilling(CATALOGUE)
    opened_on(billing, "basic")
    billing.lifecycle().update_account(fact(10, payment_method="pm_1"))
    billing.lifecycle().update_account(fact(20, payment_method="pm_2"))

    older = billing.lifecycle().update_account(fact(15, payment_method="pm_old"))

    assert older.result is Result.UNCHANGED
    assert billing.store.items["t1"].applied_payment_method == "pm_2"


# -- the gate ----------------------------------------------------------------------------------------------


def open_account(**fields: Any) -> Account:
    opened: dict[str, Any] = {
        "status": AccountStatus.OPEN,
        "customer_id": "cus_1",
        "subscription_id": "sub_1",
        "subscription_status": "active",
        "applied_tier": "basic",
    }
    return Account(tenant_id="t1", **{**opened, **fields})


REQUIRING = POLICY.model_copy(update={"require_payment_method": True})


def test_the_gate_requires_a_payment_method_only_when_the_deployment_says_so() -> None:
    account = open_account()

    assert decide(account, POLICY).allowed
    required = decide(account, REQUIRING)
    assert (required.allowed, required.reasons) == (False, ("subscription_active", "payment_method_required"))
    given = decide(account.model_copy(update={"applied_payment_method": "pm_1"}), REQUIRING)
    assert (given.allowed, given.reasons) == (True, ("subscription_active",))


def test_a_payment_method_stripe_reports_removed_is_required_again() -> None:
    from sbt_billing.domain.models import ReportedPaymentMethod

    stamp = StripeStamp(at=T0, event_id="evt_1")
    removed = StripeReport(
        customer_id="cus_1", payment_method=ReportedPaymentMethod(payment_method_id=None, stamp=stamp)
    )
    account = open_account(applied_payment_method="pm_1", reported=removed)

    assert decide(account, REQUIRING).reasons[-1] == "payment_method_required"


def test_a_payment_needing_the_customer_is_a_reason_of_its_own() -> None:
    stamp = StripeStamp(at=T0, event_id="evt_1")
    report = StripeReport(
        customer_id="cus_1",
        payment=ReportedPayment(
            state=PaymentState.ACTION_REQUIRED,
            invoice_id="in_1",
            stamp=stamp,
            hosted_invoice_url="https://invoice.stripe.test/i/1",
        ),
    )

    decision = decide(open_account(reported=report), POLICY)

    assert decision.reasons == ("subscription_active", "payment_action_required")


def test_the_gate_names_the_scheduled_change() -> None:
    change = ScheduledChange(tier="basic", at=T0, schedule_id="sub_sched_1")

    assert decide(open_account(scheduled_change=change), POLICY).scheduled_change == change


# -- the portal ------------------------------------------------------------------------------------------------


class FakePages:
    def __init__(self) -> None:
        self.configurations: list[Any] = []
        self.sessions: list[tuple[Any, ...]] = []

    def portal_configuration(self, configuration: Any) -> str:
        self.configurations.append(configuration)
        return "bpc_1"

    def portal_session(self, *args: Any) -> Any:
        from sbt_billing.domain.self_service import HostedSession

        self.sessions.append(args)
        return HostedSession(session_id="bps_1", url="https://billing.stripe.test/p/session/1")

    def checkout_session(self, *args: Any) -> Any:
        from sbt_billing.domain.self_service import HostedSession

        self.sessions.append(args)
        return HostedSession(session_id="cs_1", url="https://checkout.stripe.test/c/pay/1")

    def price_terms(self, price_id: str) -> PriceTerms:
        return PriceTerms(price_id=price_id, amount=2900, currency="eur", interval="month")


def self_service(account: Account | None, **policy: Any) -> tuple[SelfService, FakePages]:
    store = InMemoryAccountStore()
    if account is not None:
        store.items["t1"] = account
    pages = FakePages()
    choices = {
        "name": "stack-1",
        "proration_behavior": "create_prorations",
        "downgrades_at_period_end": False,
        "cancellation": False,
        "cancellation_mode": CancellationMode.IMMEDIATELY,
        **policy,
    }
    return SelfService(store, pages, lambda key: f"price_{key}", CATALOGUE, PortalPolicy(**choices)), pages


def test_the_portal_offers_the_catalogue_prices_as_the_deployment_configures_them() -> None:
    service, pages = self_service(open_account(), downgrades_at_period_end=True)

    service.open_portal("t1", "https://admin.test", PortalFlow.SUBSCRIPTION_UPDATE)

    [configuration] = pages.configurations
    assert configuration.prices == ("price_basic_key", "price_premium_key")
    assert (configuration.schedule_downgrades, configuration.cancellation) == (True, False)
    assert pages.sessions == [
        ("cus_1", "bpc_1", "https://admin.test", PortalFlow.SUBSCRIPTION_UPDATE, "sub_1")
    ]


def test_a_configuration_of_other_choices_has_another_digest() -> None:
    service, _ = self_service(None)
    other, _ = self_service(None, downgrades_at_period_end=True)

    assert service.configuration().digest() == service.configuration().digest()
    assert service.configuration().digest() != other.configuration().digest()


def test_cancellation_in_the_portal_needs_the_deployment_to_allow_it() -> None:
    service, pages = self_service(open_account())

    with pytest.raises(FlowNotOffered):
        service.open_portal("t1", "https://admin.test", PortalFlow.SUBSCRIPTION_CANCEL)

    assert pages.sessions == []


def test_checkout_is_in_the_currency_of_the_tenants_plan() -> None:
    service, pages = self_service(open_account(price_id="price_basic_key"))

    service.open_checkout("t1", "https://admin.test/ok", "https://admin.test")

    assert pages.sessions == [("t1", "cus_1", "eur", "https://admin.test/ok", "https://admin.test")]


def test_a_tenant_without_a_customer_gets_no_hosted_page() -> None:
    service, _ = self_service(Account(tenant_id="t1"))

    with pytest.raises(NotBillable):
        service.open_checkout("t1", "https://admin.test/ok", "https://admin.test")


# -- what the webhook makes of it ---------------------------------------------------------------------------


class Lookup:
    def __init__(self) -> None:
        self.setup_intents = {"seti_1": "pm_from_checkout"}

    def tenant_of_customer(self, customer_id: str) -> str | None:
        return "t1" if customer_id == "cus_1" else None

    def subscription_object(self, subscription_id: str) -> Mapping[str, Any] | None:
        return None

    def setup_intent_payment_method(self, setup_intent_id: str) -> str | None:
        return self.setup_intents.get(setup_intent_id)

    def price_lookup_key(self, price_id: str) -> str | None:
        return price_id.removeprefix("price_")


class Inbox:
    def __init__(self) -> None:
        self.given: list[tuple[str, str]] = []

    def payment_method_given(
        self, tenant_id: str, payment_method_id: str, at: datetime, event_id: str
    ) -> None:
        self.given.append((tenant_id, payment_method_id))


class Webhook:
    def __init__(self, account: Account) -> None:
        self.store = InMemoryAccountStore()
        self.store.items["t1"] = account
        self.publisher = RecordingPublisher()
        self.inbox = Inbox()
        self.processor = WebhookProcessor(
            self.store,
            self.publisher,
            Lookup(),
            {"basic": TierPlan(price="basic_key"), "premium": TierPlan(price="premium_key")},
            WebhookPolicy(gate=REQUIRING, livemode=False, publish_billing_updates=False),
            inbox=self.inbox,
        )
        self.created = 1_795_000_000

    def deliver(
        self, type_: str, obj: dict[str, Any], key: str | None = None, created: int | None = None
    ) -> Any:
        self.created += 1
        event = StripeEvent.model_validate(
            {
                "id": f"evt_{self.created}",
                "type": type_,
                "created": created or self.created,
                "data": {"object": obj},
                "request": {"id": "req_1" if key else None, "idempotency_key": key},
            }
        )
        return self.processor.apply(event)

    def operations(self) -> list[object]:
        return [detail["operation"] for detail in self.publisher.of_type(BILLING_SUCCESS)]


def checkout(status: str = "complete") -> dict[str, Any]:
    return {
        "id": "cs_1",
        "object": "checkout.session",
        "mode": "setup",
        "status": status,
        "customer": "cus_1",
        "setup_intent": "seti_1",
        "metadata": {"tenantId": "t1"},
    }


def customer(default: str | None) -> dict[str, Any]:
    return {
        "id": "cus_1",
        "object": "customer",
        "metadata": {"tenantId": "t1"},
        "invoice_settings": {"default_payment_method": default},
    }


def test_a_completed_checkout_is_recorded_at_once_and_handed_to_the_lifecycle() -> None:
    webhook = Webhook(open_account())

    webhook.deliver("checkout.session.completed", checkout())

    account = webhook.store.items["t1"]
    assert decide(account, REQUIRING).allowed
    assert webhook.inbox.given == [("t1", "pm_from_checkout")]
    assert webhook.operations() == ["payment_method_updated"]


def test_an_open_checkout_session_gives_nothing() -> None:
    webhook = Webhook(open_account())

    webhook.deliver("checkout.session.completed", checkout(status="open"))

    assert webhook.inbox.given == []
    assert not decide(webhook.store.items["t1"], REQUIRING).allowed


def test_the_lifecycles_own_default_is_recorded_but_not_handed_back() -> None:
    webhook = Webhook(open_account(applied_payment_method="pm_1"))

    webhook.deliver("customer.updated", customer("pm_1"), key="sbt-billing:t1:payment-method:pm_1:x:customer")

    assert webhook.inbox.given == []
    assert webhook.operations() == []
    assert webhook.store.items["t1"].reported.payment_method.payment_method_id == "pm_1"  # type: ignore[union-attr]


def test_a_card_updated_in_the_portal_is_handed_to_the_lifecycle_and_announced() -> None:
    webhook = Webhook(open_account(applied_payment_method="pm_1"))

    webhook.deliver("customer.updated", customer("pm_2"))

    assert webhook.inbox.given == [("t1", "pm_2")]
    assert webhook.operations() == ["payment_method_updated"]


def test_an_older_report_of_the_default_does_not_undo_a_newer_one() -> None:
    webhook = Webhook(open_account())
    webhook.deliver("customer.updated", customer("pm_2"), created=1_795_000_100)

    webhook.deliver("customer.updated", customer(None), created=1_795_000_050)

    assert decide(webhook.store.items["t1"], REQUIRING).allowed


def subscription(lookup_key: str, schedule: str | None = None, status: str = "active") -> dict[str, Any]:
    return {
        "id": "sub_1",
        "object": "subscription",
        "customer": "cus_1",
        "status": status,
        "schedule": schedule,
        "metadata": {"tenantId": "t1"},
        "cancel_at_period_end": False,
        "items": {"data": [{"id": "si_1", "price": {"id": f"price_{lookup_key}", "lookup_key": lookup_key}}]},
    }


def test_the_scheduled_change_taking_effect_ends_it_and_is_published() -> None:
    asked = datetime.fromtimestamp(1_794_999_000, UTC)  # before the phase's event
    change = ScheduledChange(tier="basic", at=T0, schedule_id="sub_sched_1", since=asked)
    webhook = Webhook(open_account(applied_tier="premium", scheduled_change=change))

    webhook.deliver("customer.subscription.updated", subscription("basic_key", schedule="sub_sched_1"))

    account = webhook.store.items["t1"]
    assert (account.applied_tier, account.scheduled_change) == ("basic", None)
    [published] = webhook.publisher.of_type(BILLING_SUCCESS)
    assert (published["operation"], published["tier"], published["origin"]) == (
        "scheduled_plan_change_applied",
        "basic",
        "stripe",
    )


def test_a_report_older_than_the_downgrade_does_not_end_it() -> None:
    asked = datetime.fromtimestamp(1_795_100_000, UTC)  # after the event below was created
    change = ScheduledChange(tier="basic", at=T0, schedule_id="sub_sched_1", since=asked)
    webhook = Webhook(open_account(applied_tier="premium", scheduled_change=change))

    webhook.deliver("customer.subscription.updated", subscription("basic_key"))

    assert webhook.store.items["t1"].scheduled_change == change


def test_a_plan_changed_in_stripe_is_published_but_the_lifecycles_own_change_is_not() -> None:
    webhook = Webhook(open_account(applied_tier="basic"))

    webhook.deliver("customer.subscription.updated", subscription("basic_key"), key="sbt-billing:t1:plan:3")
    webhook.deliver("customer.subscription.updated", subscription("premium_key"))

    assert webhook.operations() == ["plan_changed"]
    assert webhook.store.items["t1"].applied_tier == "premium"


def test_the_lifecycles_schedule_ending_without_its_change_ends_the_scheduled_change() -> None:
    change = ScheduledChange(tier="basic", at=T0, schedule_id="sub_sched_1")
    webhook = Webhook(open_account(applied_tier="premium", scheduled_change=change))

    webhook.deliver(
        "subscription_schedule.released",
        {"id": "sub_sched_1", "object": "subscription_schedule", "status": "released", "customer": "cus_1"},
    )

    assert webhook.store.items["t1"].scheduled_change is None


def test_a_downgrade_scheduled_in_the_portal_shows_in_the_gate() -> None:
    webhook = Webhook(open_account(applied_tier="premium"))
    end = 1_797_000_000

    webhook.deliver(
        "subscription_schedule.updated",
        {
            "id": "sub_sched_9",
            "object": "subscription_schedule",
            "status": "active",
            "customer": "cus_1",
            "subscription": "sub_1",
            "current_phase": {"start_date": end - 100, "end_date": end},
            "phases": [
                {"start_date": end - 100, "end_date": end, "items": [{"price": "price_premium_key"}]},
                {"start_date": end, "end_date": end + 100, "items": [{"price": "price_basic_key"}]},
            ],
        },
    )

    scheduled = decide(webhook.store.items["t1"], POLICY).scheduled_change
    assert scheduled is not None
    assert (scheduled.tier, scheduled.schedule_id, int(scheduled.at.timestamp())) == (
        "basic",
        "sub_sched_9",
        end,
    )


def test_a_trial_about_to_end_is_announced_with_whether_a_card_is_there() -> None:
    webhook = Webhook(open_account(subscription_status="trialing"))

    webhook.deliver(
        "customer.subscription.trial_will_end",
        {**subscription("basic_key", status="trialing"), "trial_end": 1_795_259_200},
    )

    [announced] = webhook.publisher.of_type(TRIAL_WILL_END)
    assert announced == {
        "tenantId": "t1",
        "subscriptionId": "sub_1",
        "hasPaymentMethod": False,
        "stripeEventId": announced["stripeEventId"],
        "trialEnd": datetime.fromtimestamp(1_795_259_200, UTC).isoformat(),
    }


def test_handing_a_payment_method_to_the_lifecycle_is_not_a_bus_event() -> None:
    webhook = Webhook(open_account())

    webhook.deliver("checkout.session.completed", checkout())

    assert GIVE_PAYMENT_METHOD not in [kind for kind, _ in webhook.publisher.events]
