"""The reconcile function end to end: accounts made by SBT's events through the template's routes,
changes made directly in the Stripe emulator (as someone would in the Dashboard, under no key of ours),
Stripe's events replayed from the emulator's events list, and what the next run finds, repairs and
reports on the SBT bus."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import stripe

from devtools.local_run import rebased
from tests.integration.test_webhooks import SECRET, deliver_all, events, post, signed, webhook_secret
from tests.support.harness import Stack, sample, stack_on

ONBOARDING = "00_onboarding_request.json"
PROVISION = "01_provision_success.json"
TENANT = sample(ONBOARDING)["detail"]["tenantId"]
FUNCTION = "ReconcileFunction"
DRIFT = "sbt_aws_billingDrift"


@pytest.fixture
def stack(moto_endpoint: str, emulator_url: str) -> Iterator[Stack]:
    overrides = {"WEBHOOK_SECRET_NAME": webhook_secret(moto_endpoint), "STRIPE_REQUESTS_PER_SECOND": "100"}
    with stack_on(moto_endpoint, emulator_url, overrides) as stack:
        stack.emulator.admin("POST", "webhook_endpoints", {"secret": SECRET})
        yield stack


def opened(stack: Stack) -> dict[str, Any]:
    """The sample tenant onboarded and provisioned (basic tier): its account, open."""
    stack.deliver(sample(ONBOARDING))
    [outcome] = stack.deliver(sample(PROVISION))
    assert outcome["result"] == "applied"
    stack.published()
    account = stack.account(TENANT)
    assert account is not None
    return account


def reconcile(stack: Stack) -> dict[str, Any]:
    """Invocations of the function until its pass is complete (each has the 30 s the test context
    gives, less what it keeps in reserve); the last one's answer, with the pass's `passCounts`."""
    for _ in range(20):
        answer: dict[str, Any] = stack.invoke(FUNCTION, sample("25_reconcile_schedule.json"))
        if answer["complete"]:
            return answer
    raise AssertionError("the pass did not complete in 20 invocations")


def drifts(stack: Stack) -> dict[str, list[dict[str, str]]]:
    """The drift events published, by tenant."""
    found: dict[str, list[dict[str, str]]] = {}
    for event in stack.published():
        if event["detail-type"] == DRIFT:
            found.setdefault(event["detail"]["tenantId"], []).extend(event["detail"]["drifts"])
    return found


def applied_since(stack: Stack, moment: datetime) -> None:
    """The webhook applied an event as recent as `moment` (the mark the replay starts from): what
    Stripe reported before it, and was not delivered, is past the replay's reach."""
    from sbt_billing.adapters.reconcile_store import DynamoReconcileStore
    from sbt_billing.domain.models import StripeStamp

    store = DynamoReconcileStore(stack.clients.dynamodb(), stack.resources.tables["ReconcileTable"])
    store.advance_applied_mark(StripeStamp(at=moment, event_id="evt_applied_by_the_webhook"))


def subscription(stack: Stack, subscription_id: str) -> stripe.Subscription:
    return stack.emulator.client().v1.subscriptions.retrieve(subscription_id)


def price_id(stack: Stack, lookup_key: str) -> str:
    prices = stack.emulator.client().v1.prices.list(params={"lookup_keys": [lookup_key]})
    return str(prices.data[0].id)


def reprice(stack: Stack, subscription_id: str, price: str) -> None:
    """The subscription's item moved to `price` in Stripe directly (no key of ours: not an echo)."""
    current = subscription(stack, subscription_id)
    item = current["items"].data[0].id
    stack.emulator.client().v1.subscriptions.update(
        subscription_id, params={"items": [{"id": item, "price": price}], "proration_behavior": "none"}
    )


# --- Found and reported ---------------------------------------------------------------------------------------


def test_a_subscription_cancelled_in_stripe_is_reported_as_ended_and_the_account_records_it(
    stack: Stack,
) -> None:
    # Given an open account whose subscription someone cancelled in Stripe
    account = opened(stack)
    stack.emulator.client().v1.subscriptions.cancel(account["subscription_id"])

    # When the next run reconciles
    answer = reconcile(stack)

    # Then the cancellation is reported for a person (no second subscription is made), and the account
    # records Stripe's status (its cancellation event was replayed)
    assert answer["complete"] is True
    [ended] = [d for d in drifts(stack)[TENANT] if d["kind"] == "subscription_ended"]
    assert ended == {
        "kind": "subscription_ended",
        "action": "reported",
        "account": "canceled",
        "stripe": "canceled",
    }
    after = stack.account(TENANT)
    assert after is not None
    assert after["subscription_status"] == "canceled"
    assert after["subscription_id"] == account["subscription_id"]
    assert answer["passCounts"]["events_applied"] >= 1
    assert len(stack.emulator.client().v1.subscriptions.list(params={"status": "all"}).data) == 1


def test_a_repricing_made_in_stripe_is_followed_when_its_event_is_replayed(stack: Stack) -> None:
    # Given an open basic account re-priced to premium in Stripe, its event never delivered
    account = opened(stack)
    reprice(stack, account["subscription_id"], price_id(stack, "sbt_premium_monthly"))

    # When the next run reconciles
    answer = reconcile(stack)

    # Then the replayed event makes Stripe's change the tenant's tier (a fact, as the webhook takes it):
    # nothing is moved back, and nothing is left to report about the price
    after = stack.account(TENANT)
    assert after is not None
    assert (after["applied_tier"], after["desired"]["tier"]["value"]) == ("premium", "premium")
    assert subscription(stack, account["subscription_id"])["items"].data[0].price.lookup_key == (
        "sbt_premium_monthly"
    )
    assert not [d for d in drifts(stack).get(TENANT, []) if d["kind"] == "price"]
    assert answer["passCounts"]["events_applied"] >= 1


def test_a_repricing_stripe_never_reported_is_repaired_to_the_recorded_tier(stack: Stack) -> None:
    # Given an open basic account re-priced to premium in Stripe, the event beyond the replay's reach
    account = opened(stack)
    reprice(stack, account["subscription_id"], price_id(stack, "sbt_premium_monthly"))
    applied_since(stack, datetime.now(UTC) + timedelta(hours=1))

    # When the next run reconciles
    reconcile(stack)

    # Then the recorded facts (tier basic) decide: the same subscription item is moved back, through the
    # lifecycle, and the drift is reported as repaired
    assert drifts(stack)[TENANT] == [
        {"kind": "price", "action": "repaired", "account": "basic", "stripe": "premium"}
    ]
    items = subscription(stack, account["subscription_id"])["items"].data
    assert [(item.id, item.price.lookup_key) for item in items] == [
        (account["subscription_item_id"], "sbt_basic_monthly")
    ]
    after = stack.account(TENANT)
    assert after is not None
    assert after["applied_tier"] == "basic"
    assert after["lease"] is None


def test_a_price_outside_the_catalogue_is_reported_and_left_as_it_is(stack: Stack) -> None:
    # Given an open account put on a custom price in Stripe (a deal someone made), the event lost
    account = opened(stack)
    custom = stack.emulator.client().v1.prices.create(
        params={
            "currency": "usd",
            "unit_amount": 1500,
            "recurring": {"interval": "month"},
            "product_data": {"name": "Negotiated"},
        }
    )
    reprice(stack, account["subscription_id"], custom.id)
    applied_since(stack, datetime.now(UTC) + timedelta(hours=1))

    # When the next run reconciles
    reconcile(stack)

    # Then it is reported for a person, and Stripe keeps the custom price
    assert drifts(stack)[TENANT] == [
        {"kind": "price", "action": "reported", "account": "basic", "stripe": custom.id}
    ]
    assert subscription(stack, account["subscription_id"])["items"].data[0].price.id == custom.id


def test_a_deleted_customer_is_reported(stack: Stack) -> None:
    # Given an open account whose customer someone deleted in Stripe (which ends its subscription)
    account = opened(stack)
    stack.emulator.client().v1.customers.delete(account["customer_id"])

    # When the next run reconciles
    reconcile(stack)

    # Then both are reported; no customer is created again
    kinds = {(d["kind"], d["action"]) for d in drifts(stack)[TENANT]}
    assert kinds == {("customer_deleted", "reported"), ("subscription_ended", "reported")}
    assert stack.emulator.client().v1.customers.list().data == []


def test_a_second_live_subscription_naming_the_tenant_is_reported(stack: Stack) -> None:
    # Given an open account, and a second subscription someone made for the same tenant
    account = opened(stack)
    extra = stack.emulator.client().v1.subscriptions.create(
        params={
            "customer": account["customer_id"],
            "items": [{"price": price_id(stack, "sbt_standard_monthly")}],
            "collection_method": "send_invoice",
            "days_until_due": 30,
            "metadata": {"tenantId": TENANT},
        }
    )

    # When the next run reconciles
    reconcile(stack)

    # Then it is reported, and neither subscription is touched
    assert {
        "kind": "extra_subscription",
        "action": "reported",
        "account": account["subscription_id"],
        "stripe": extra.id,
    } in drifts(stack)[TENANT]
    assert subscription(stack, extra.id).status == "active"


# --- Repaired -------------------------------------------------------------------------------------------------


def test_facts_that_never_reached_stripe_are_driven(stack: Stack) -> None:
    # Given a tier change recorded on the account whose drive died (its event dead-lettered, the lease
    # long expired): Stripe is behind the recorded facts and nobody is driving
    from sbt_billing.adapters.account_directory import DynamoAccountDirectory
    from sbt_billing.domain.models import TenantFacts

    account = opened(stack)
    store = DynamoAccountDirectory(stack.clients.dynamodb(), stack.resources.tables["AccountsTable"])
    current = store.get(TENANT)
    assert current is not None
    fact = TenantFacts(tenant_id=TENANT, tier="premium", occurred_at=datetime.now(UTC))
    store.save(
        current.model_copy(update={"desired": current.desired.merge(fact)}),
        expected_revision=current.revision,
    )
    stack.published()

    # When the next run reconciles
    reconcile(stack)

    # Then the lifecycle drives the recorded tier to Stripe, and says so
    assert drifts(stack)[TENANT][0] == {"kind": "behind", "action": "repaired", "account": "open"}
    assert subscription(stack, account["subscription_id"])["items"].data[0].price.lookup_key == (
        "sbt_premium_monthly"
    )
    after = stack.account(TENANT)
    assert after is not None
    assert after["applied_tier"] == "premium"


def test_an_offboarded_tenant_whose_subscription_was_set_to_run_on_is_cancelled_again(
    moto_endpoint: str, emulator_url: str
) -> None:
    overrides = {"CANCELLATION_MODE": "period_end", "STRIPE_REQUESTS_PER_SECOND": "100"}
    with stack_on(moto_endpoint, emulator_url, overrides) as stack:
        # Given an offboarded tenant (its subscription set to end with the paid period), whose
        # cancellation someone undid in Stripe
        account = opened(stack)
        deleted = rebased(sample("06_tenant_deleted.json"))
        [outcome] = stack.deliver(deleted)
        assert outcome["result"] == "applied"
        assert subscription(stack, account["subscription_id"]).cancel_at_period_end is True
        stack.emulator.client().v1.subscriptions.update(
            account["subscription_id"], params={"cancel_at_period_end": False}
        )
        stack.published()

        # When the next run reconciles
        reconcile(stack)

        # Then the facts (offboarded) decide: the subscription is set to end again, through the lifecycle
        assert {
            "kind": "not_canceled",
            "action": "repaired",
            "account": "closed",
            "stripe": "active",
        } in drifts(stack)[TENANT]
        assert subscription(stack, account["subscription_id"]).cancel_at_period_end is True
        after = stack.account(TENANT)
        assert after is not None
        assert after["status"] == "closed"


# --- Missed webhooks ---------------------------------------------------------------------------------------------

GAP = 130  # more than one page of Stripe's events list


def test_a_webhook_gap_of_n_events_is_replayed_each_applied_once(stack: Stack) -> None:
    # Given an account whose events the webhook applied, and then a gap: GAP changes to its customer in
    # Stripe while the endpoint was down
    account = opened(stack)
    assert {status for status, _ in deliver_all(stack, events(stack))} == {200}
    before = len(events(stack))
    client = stack.emulator.client()
    for n in range(GAP):
        client.v1.customers.update(account["customer_id"], params={"metadata": {"note": f"n{n}"}})
    gap = events(stack)[before:]
    assert len(gap) == GAP

    # When the next run reconciles
    first = reconcile(stack)

    # Then each missed event is applied once, and what the webhook had applied is not applied again
    assert first["passCounts"]["events_applied"] == GAP
    assert first["passCounts"].get("events_unchanged", 0) >= 1
    revision = stack.account(TENANT)["revision"]  # type: ignore[index]
    reported = stack.account(TENANT)["reported"]["customer"]  # type: ignore[index]
    assert (
        reported["event_id"] == gap[-1]["id"]
    )  # applied oldest first: the last one made is the last applied

    # And a second run, or the webhook's late delivery of a missed event, applies nothing again
    second = reconcile(stack)
    assert second["passCounts"].get("events_applied", 0) == 0
    status, body = post(stack, signed(stack, gap[0]["id"]))
    assert status == 200
    assert stack.account(TENANT)["revision"] == revision  # type: ignore[index]
    assert body["eventId"] == gap[0]["id"]


def test_the_webhook_notes_the_newest_event_it_applied(stack: Stack) -> None:
    # Given an opened account
    opened(stack)
    recorded = events(stack)

    # When the webhook applies its events
    deliver_all(stack, recorded)

    # Then the mark the replay starts from is the newest of them
    from sbt_billing.adapters.reconcile_store import DynamoReconcileStore

    store = DynamoReconcileStore(stack.clients.dynamodb(), stack.resources.tables["ReconcileTable"])
    mark = store.applied_mark()
    assert mark is not None
    assert int(mark.at.timestamp()) == max(event["created"] for event in recorded)


# --- The pass ----------------------------------------------------------------------------------------------------


def test_a_run_reports_its_pass_and_the_next_run_starts_another(stack: Stack) -> None:
    # Given an open account with nothing off
    opened(stack)

    # When two runs reconcile
    first = reconcile(stack)
    second = reconcile(stack)

    # Then each is a complete pass of its own that checked the account and found no drift
    assert first["complete"] is second["complete"] is True
    assert first["passId"] != second["passId"]
    assert first["passCounts"]["accounts_checked"] == 1
    assert first["passCounts"]["subscriptions_listed"] == 1
    assert not any(name.startswith("drift:") for name in second["passCounts"])
    assert drifts(stack) == {}
    print(json.dumps(second["passCounts"], sort_keys=True))
