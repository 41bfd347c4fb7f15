"""The tenant billing lifecycle: open, update and close an account, exactly once, in any order.

Every event goes through the same two steps.

1. Record: the event's facts are merged into the account's desired state (per-field last-writer-wins
   on the fact's time; a close is a terminal tombstone) with an optimistic, revision-checked write.
   If Stripe now lags behind the facts and nobody else holds the tenant's lease, the same write takes
   the lease.
2. Drive (lease holder only): Stripe is moved to the desired state with deterministic idempotency
   keys, then the progress is written and the lease released, again revision-checked. If someone
   merged newer facts meanwhile, the holder drives again before releasing, so a fact recorded while
   the lease was held is never left behind.

Creates use keys fixed per tenant and parameters fixed when opening starts (`OpeningSnapshot`), so a
retry replays Stripe's first answer. After Stripe's 24-hour key window, the account record is the
memory: a recorded customer or subscription is never created again, and an opening interrupted
before it was recorded is recovered by looking the customer up by `metadata.tenantId` and listing
its subscriptions before anything is created.

An opening Stripe refuses for good (a create it will not take as sent) is marked refused; the next
fact about the tenant (a corrected email, another tier, a redrive) starts it again from the desired
state as a new generation, with keys of its own, after the same look-ups, so that it never makes a
second customer; an offboarding of a refused opening only looks up what to close.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from uuid import uuid4

from sbt_billing.domain.account_writes import Again, Write, account_or_none, write_merged
from sbt_billing.domain.billing_policy import DowngradeAt
from sbt_billing.domain.catalogue import TierPlan, tier_plan
from sbt_billing.domain.errors import (
    NotBillable,
    PermanentBillingError,
    RevisionConflict,
    TenantBusy,
    TransientBillingError,
    UnknownTenant,
)
from sbt_billing.domain.models import (
    ENDED,
    Account,
    AccountStatus,
    Adopted,
    InvoiceFact,
    Lease,
    OpeningSnapshot,
    Outcome,
    PendingPlan,
    ScheduledChange,
    Stamp,
    TenantFacts,
)
from sbt_billing.domain.plan_timing import ScheduledPlanChange, is_downgrade
from sbt_billing.domain.ports import AccountStore, BillingGateway, Clock, EventPublisher
from sbt_billing.domain.published import BILLING_FAILURE, BILLING_SUCCESS
from sbt_billing.domain.results import Operation, Result
from sbt_billing.domain.seats import Seats
from sbt_billing.domain.usage import Usage
from sbt_billing.domain.values import PlanChange, PlanPreview, PlanPrices, SubscriptionState

if TYPE_CHECKING:  # a reconcile run's findings: only the reconciler builds them
    from sbt_billing.domain.drift import Findings

TIER_MISSING = (
    "tier_missing: no event has named the tenant's tier, so no price can be chosen; send `tier` in "
    "tenantData at registration (POST /tenant-registrations), or export `tier` from the provisioning job"
)

# Past this age an interrupted opening can no longer count on Stripe replaying its idempotent create.
KEY_WINDOW_MARGIN = timedelta(hours=23)
# The time of no fact: what a reconcile run brings is Stripe's state, not a fact of the tenant's.
NO_FACT = datetime.min.replace(tzinfo=UTC)
CHANGED_SINCE_COMPARED = "changed_since_compared: the account changed after the reconcile run read it"


class Lifecycle:
    def __init__(
        self,
        store: AccountStore,
        billing: BillingGateway,
        publisher: EventPublisher,
        clock: Clock,
        catalogue: Mapping[str, TierPlan],
        lease_seconds: int,
        owner: str | None = None,
        working_until: datetime | None = None,
        metered_prices: Sequence[str] = (),
        seats: Seats | None = None,
        usage: Usage | None = None,
        downgrade_at: DowngradeAt = DowngradeAt.IMMEDIATELY,
    ) -> None:
        self._downgrade_at = downgrade_at
        self._metered_prices = tuple(metered_prices)
        self._seats = seats
        self._usage = usage
        self._store = store
        self._billing = billing
        self._publisher = publisher
        self._clock = clock
        self._catalogue = catalogue
        self._lease = timedelta(seconds=lease_seconds)
        self._owner = owner or uuid4().hex
        self._working_until = working_until

    # -- operations -------------------------------------------------------------------------------

    def open_account(self, facts: TenantFacts, registration_id: str | None = None) -> Outcome:
        """Asks for the tenant's account (provisioned, or onboarded when billing starts there) with
        what the event says; it opens as soon as a tier is known."""
        return self.update_account(
            facts.model_copy(update={"open_requested": True}), registration_id, Operation.OPEN_ACCOUNT
        )

    def adopt_account(
        self, facts: TenantFacts, registration_id: str | None = None, adopt: Adopted | None = None
    ) -> Outcome:
        """Opens the account of a tenant SBT had before billing (the adoption tool), with `adopt`'s
        existing Stripe customer (and subscription) if given, instead of creating them. An account past
        pending (SBT's own events got there first) takes nothing from it: UNCHANGED."""
        return self.update_account(
            facts.model_copy(update={"open_requested": True}),
            registration_id,
            Operation.OPEN_ACCOUNT,
            adopt=adopt,
            only_pending=True,
        )

    def update_account(
        self,
        facts: TenantFacts,
        registration_id: str | None = None,
        operation: Operation = Operation.UPDATE_ACCOUNT,
        must_exist: bool = False,
        adopt: Adopted | None = None,
        only_pending: bool = False,
    ) -> Outcome:
        """Merges the facts (an SBT event's or a billing API request's) and drives Stripe to them.
        With `must_exist`, a tenant without an account is UnknownTenant instead of a pending account.
        The facts' tier was checked against the catalogue where they entered (the event's or the
        request's parsing); an opening on a tier the catalogue lacks still fails before any write."""

        def merge(account: Account) -> Account:
            if only_pending and account.status is not AccountStatus.PENDING:
                return account
            merged = account.model_copy(update={"desired": account.desired.merge(facts)})
            if registration_id is not None and merged.registration_id is None:
                merged = merged.model_copy(update={"registration_id": registration_id})
            desired = merged.desired
            if (
                merged.status is AccountStatus.PENDING
                and desired.closed is None
                and desired.open_requested is not None
                and desired.tier_value is not None
            ):
                merged = self._start_opening(merged, adopt)
            elif (
                merged.status is AccountStatus.OPENING
                and merged.opening is not None
                and merged.opening.refused
                and desired.closed is None
            ):
                # Stripe refused the opening as it was sent: start again from what the facts say now
                # (an adoption that was refused looks its customer up again by metadata.tenantId).
                merged = self._start_opening(merged, generation=merged.opening.generation + 1)
            return merged

        return self._run(operation, facts, merge, must_exist=must_exist)

    def reconcile_account(self, tenant_id: str, revision: int, findings: Findings | None) -> Outcome:
        """A reconcile run compared the account, as it was at `revision`, with Stripe. What Stripe holds
        is taken first (its status; items whose prices are not the applied tier's, so that the tier is
        applied again; a closed account's subscription still live, so that it is closed again); then,
        under the tenant's lease, Stripe is driven to the recorded facts as for any fact, with the same
        keys. Without findings, only facts recorded and never driven are driven. If the account changed
        since it was compared, nothing is taken: the next run compares it again."""

        taken: list[bool] = [findings is None]

        def merge(account: Account) -> Account:
            taken[:] = [findings is None or account.revision == revision]
            if findings is None or account.revision != revision:
                return account
            update: dict[str, object] = {}
            if findings.subscription_status is not None:
                update["subscription_status"] = findings.subscription_status
            if findings.plan is not None:
                update |= {
                    "applied_tier": None,  # applied again: the drive moves the items to the tier's prices
                    "price_id": findings.plan.price_id,
                    "subscription_item_id": findings.plan.item_id,
                    "seat_item_id": findings.plan.seat_item_id,
                    "seat_price_id": findings.plan.seat_price_id,
                }
            if findings.still_live and account.status is AccountStatus.CLOSED:
                update["status"] = AccountStatus.OPEN  # closed again by the drive
            return account.model_copy(update=update)

        facts = TenantFacts(tenant_id=tenant_id, occurred_at=NO_FACT)
        reopens = findings is not None and findings.still_live
        outcome = self._run(Operation.RECONCILE_ACCOUNT, facts, merge, reopens_closed=reopens)
        if not taken[0] and outcome.result is not Result.FAILED:
            return outcome.model_copy(update={"reason": CHANGED_SINCE_COMPARED})
        return outcome

    def preview_plan_change(self, tenant_id: str, tier: str, proration_date: datetime) -> PlanPreview:
        """What changing the tenant's plan to `tier`, prorated as of `proration_date`, would cost:
        Stripe's invoice preview of the very update the driver would send. Writes nothing."""
        prices = self.prices_for(tier)
        account = self._store.get(tenant_id)
        if account is None:
            raise UnknownTenant(tenant_id)
        if (
            account.status is not AccountStatus.OPEN
            or account.desired.closed is not None
            or account.customer_id is None
            or account.subscription_id is None
            or account.subscription_item_id is None
        ):
            raise NotBillable("the account has no subscription to change yet")
        change = plan_change(account, prices, self._seats.count if self._seats else None, proration_date)
        preview = self._billing.preview_change(account.customer_id, change)
        return preview.model_copy(update={"from_tier": account.applied_tier})

    def close_account(self, facts: TenantFacts) -> Outcome:
        """Offboarding; or, for `facts.provisioning_failed`, SBT could not provision the tenant: the
        account closes without charging it (the subscription cancelled unbilled, its open invoices
        voided)."""
        now = self._clock.now()
        unbilled = facts.provisioning_failed

        def merge(account: Account) -> Account:
            closed = account.model_copy(
                update={"desired": account.desired.close(facts.stamp(), provisioning_failed=unbilled)}
            )
            if closed.status is AccountStatus.PENDING and closed.opening is None:
                # Nothing was ever created in Stripe: the tombstone alone closes the account, and a
                # provisioning event that arrives later finds it and creates nothing.
                closed = closed.model_copy(update={"status": AccountStatus.CLOSED, "closed_at": now})
            return closed

        return self._run(Operation.CLOSE_ACCOUNT, facts, merge)

    def _run(
        self,
        operation: Operation,
        facts: TenantFacts,
        merge: Callable[[Account], Account],
        must_exist: bool = False,
        reopens_closed: bool = False,
    ) -> Outcome:
        try:
            return self._handle(operation, facts, merge, must_exist, reopens_closed)
        except PermanentBillingError as error:
            self._publisher.publish(
                BILLING_FAILURE,
                {"tenantId": facts.tenant_id, "operation": operation.value, "reason": str(error)},
            )
            return Outcome(
                tenant_id=facts.tenant_id, operation=operation, result=Result.FAILED, reason=str(error)
            )

    # -- step 1: record ---------------------------------------------------------------------------

    def _handle(
        self,
        operation: Operation,
        facts: TenantFacts,
        merge: Callable[[Account], Account],
        must_exist: bool = False,
        reopens_closed: bool = False,
    ) -> Outcome:
        current = self._store.get(facts.tenant_id)
        if current is None and must_exist:
            raise UnknownTenant(facts.tenant_id)

        def step(current: Account | None) -> Outcome | Write[Outcome]:
            now = self._clock.now()
            base = current or Account(tenant_id=facts.tenant_id)
            if base.status is AccountStatus.CLOSED and not reopens_closed:
                result = Result.UNCHANGED if operation is Operation.CLOSE_ACCOUNT else Result.IGNORED
                return self._outcome(operation, base, result)
            merged = merge(base)
            # A merge that takes nothing (an adoption of an account past pending, a reconcile of an
            # account that changed since) leaves the account as it is.
            if (
                merged is not base
                and facts.occurred_at != NO_FACT
                and (merged.last_fact_at is None or facts.occurred_at > merged.last_fact_at)
            ):
                merged = merged.model_copy(update={"last_fact_at": facts.occurred_at})
            lead = merged.needs_driving() and not merged.leased_to_other(self._owner, now)
            if lead:
                expires_at = now + self._lease
                # Unknown when this invocation ends: copies fail and retry, as after the holder's end.
                working_until = min(self._working_until, expires_at) if self._working_until else None
                merged = merged.model_copy(
                    update={
                        "lease": Lease(owner=self._owner, expires_at=expires_at, working_until=working_until)
                    }
                )
            if current is not None and merged == current:
                if merged.needs_driving():
                    # Stripe lags behind facts already recorded, under a lease someone else holds. While
                    # the holder's invocation runs, this is a copy of what it is driving: in flight, not a
                    # failure. Once that invocation is over, the holder died (this may be its own retry):
                    # fail, so the platform retries after the lease has expired, rather than answer
                    # "unchanged" and leave the work undone.
                    if current.lease is not None and _holder_working(current.lease, now):
                        return self._outcome(operation, current, Result.IN_FLIGHT)
                    expires_at = current.lease.expires_at if current.lease else now
                    raise TenantBusy(retry_after=max((expires_at - now).total_seconds(), 0.0))
                return self._outcome(operation, current, Result.UNCHANGED)

            def written(account: Account) -> Outcome | Again:
                if not lead:
                    return self._recorded(operation, account, facts)
                try:
                    return self._drive(operation, account, resumed=base.opening is not None)
                except PermanentBillingError:
                    latest = self._store.get(facts.tenant_id)
                    if latest is None or not _refused_with_newer_facts(latest, account):
                        raise
                    # Facts merged while Stripe refused this opening (a corrected email, say) were left
                    # to this lease's holder: start the opening again with them now, not at the next fact.
                    return Again(latest)

            return Write(merged, written)

        return write_merged(self._store, current, step)

    def _recorded(self, operation: Operation, written: Account, facts: TenantFacts) -> Outcome:
        """The outcome of a write that did not take the lease."""
        if (
            written.desired.open_requested == facts.stamp()
            and written.status is AccountStatus.PENDING
            and written.desired.closed is None
            and written.desired.tier_value is None
        ):
            # This event asked for the account first, and no event has named the tier: kept (a later
            # tier opens it), and said loudly, once.
            self._publisher.publish(
                BILLING_FAILURE,
                {"tenantId": written.tenant_id, "operation": operation.value, "reason": TIER_MISSING},
            )
            return self._outcome(operation, written, Result.FAILED, reason=TIER_MISSING)
        if written.needs_driving() or written.status is AccountStatus.PENDING:
            # The lease holder applies it before releasing, or the account opens with it later.
            return self._outcome(operation, written, Result.RECORDED)
        if written.status is AccountStatus.CLOSED:
            self._publish_success(operation, written)
            return self._outcome(operation, written, Result.APPLIED)
        return self._outcome(operation, written, Result.UNCHANGED)

    def _start_opening(self, account: Account, adopt: Adopted | None = None, generation: int = 0) -> Account:
        tier = account.desired.tier_value
        assert tier is not None
        prices = self.prices_for(tier)
        seat_quantity = self._seats.count(account.tenant_id) if prices.seats and self._seats else 0
        snapshot = OpeningSnapshot(
            details=account.desired.details(),
            tier=tier,
            price_id=prices.base,
            seat_price_id=prices.seats,
            seat_quantity=seat_quantity,
            metered_price_ids=prices.metered,
            started_at=self._clock.now(),
            adopted=adopt,
            generation=generation,
        )
        return account.model_copy(update={"status": AccountStatus.OPENING, "opening": snapshot})

    # -- step 2: drive ----------------------------------------------------------------------------

    def _drive(self, operation: Operation, account: Account, resumed: bool) -> Outcome:
        driver = _Driver(self, account, resumed)
        published: set[str] = set()
        try:
            while True:
                driven = driver.run()
                released = driven.model_copy(update={"lease": None})
                # Before the write that records the outcome: an event may be repeated, never lost.
                if driver.payment_required is not None and BILLING_FAILURE not in published:
                    self._publish_payment_required(operation, released, driver.payment_required)
                    published.add(BILLING_FAILURE)
                elif driver.payment_required is None and BILLING_SUCCESS not in published:
                    self._publish_success(operation, released)
                    published.add(BILLING_SUCCESS)
                try:
                    written = self._store.save(released, expected_revision=driven.revision)
                except RevisionConflict as conflict:
                    latest = account_or_none(conflict.current)
                    if latest is None or latest.lease is None or latest.lease.owner != self._owner:
                        raise TransientBillingError(
                            "the tenant's lease expired while driving Stripe"
                        ) from None
                    driver.account = latest.with_progress_of(driven)
                    continue
                if driver.payment_required is not None:
                    return self._outcome(
                        operation, written, Result.PAYMENT_REQUIRED, invoice=driver.payment_required.invoice
                    )
                if driver.scheduled is not None:
                    return self._outcome(operation, written, Result.SCHEDULED)
                return self._outcome(operation, written, Result.APPLIED, invoice=driver.invoiced)
        except PermanentBillingError:
            self._release(_opening_refused(driver.account))
            raise
        except BaseException:
            self._release(driver.account)
            raise

    def _release(self, account: Account) -> None:
        """Best effort: keep what was done in Stripe and hand the lease back, so the retry proceeds
        at once. If this write fails too, the lease simply expires."""
        try:
            self._store.save(account.model_copy(update={"lease": None}), expected_revision=account.revision)
        except RevisionConflict as conflict:
            latest = account_or_none(conflict.current)
            if latest is not None and latest.lease and latest.lease.owner == self._owner:
                progressed = latest.with_progress_of(account).model_copy(update={"lease": None})
                try:
                    self._store.save(progressed, expected_revision=latest.revision)
                except Exception:
                    return
        except Exception:
            return

    # -- helpers ----------------------------------------------------------------------------------

    def prices_for(self, tier: str) -> PlanPrices:
        """The price ids a subscription on `tier` carries (lookup keys resolved, cached per container)."""
        plan = tier_plan(self._catalogue, tier)
        return PlanPrices(
            base=self._billing.price_for(plan.price),
            seats=self._billing.price_for(plan.seat_price) if plan.seat_price else None,
            metered=tuple(self._billing.price_for(price) for price in self._metered_prices),
        )

    def _publish_success(self, operation: Operation, account: Account) -> None:
        detail: dict[str, object] = {
            "tenantId": account.tenant_id,
            "operation": operation.value,
            "accountStatus": account.status.value,
        }
        for key, value in (
            ("customerId", account.customer_id),
            ("subscriptionId", account.subscription_id),
            ("subscriptionStatus", account.subscription_status),
            ("tier", account.applied_tier),
        ):
            if value is not None:
                detail[key] = value
        if account.scheduled_change is not None:
            detail["scheduledChange"] = {
                "tier": account.scheduled_change.tier,
                "at": account.scheduled_change.at.isoformat(),
            }
        self._publisher.publish(BILLING_SUCCESS, detail)

    def _publish_payment_required(self, operation: Operation, account: Account, pending: PendingPlan) -> None:
        detail: dict[str, object] = {
            "tenantId": account.tenant_id,
            "operation": operation.value,
            "reason": f"{Result.PAYMENT_REQUIRED.value}: the change to tier {pending.tier!r} waits for "
            "its invoice to be paid",
            "tier": pending.tier,
        }
        if pending.invoice is not None:
            detail["invoiceId"] = pending.invoice.invoice_id
        if account.applied_tier is not None:
            detail["appliedTier"] = account.applied_tier
        self._publisher.publish(BILLING_FAILURE, detail)

    @staticmethod
    def _outcome(
        operation: Operation,
        account: Account,
        result: Result,
        reason: str | None = None,
        invoice: InvoiceFact | None = None,
    ) -> Outcome:
        return Outcome(
            tenant_id=account.tenant_id,
            operation=operation,
            result=result,
            reason=reason,
            customer_id=account.customer_id,
            subscription_id=account.subscription_id,
            subscription_status=account.subscription_status,
            tier=account.applied_tier,
            invoice=invoice,
            account=account,
        )


class _Driver:
    """Moves Stripe one step at a time toward the account's desired state; `account` always holds
    the progress made so far, so that a failure part-way loses nothing that Stripe already did."""

    def __init__(self, lifecycle: Lifecycle, account: Account, resumed: bool) -> None:
        self._lifecycle = lifecycle
        self._billing = lifecycle._billing
        self._clock = lifecycle._clock
        self.account = account
        # An earlier invocation started this opening and did not record its end: it may have
        # created the customer and the subscription already.
        self._resumed = resumed
        self.invoiced: InvoiceFact | None = None  # what this drive's plan change invoiced at once
        self.payment_required: PendingPlan | None = None  # this drive's change waits for its invoice
        self.scheduled: ScheduledChange | None = None  # this drive's change waits for the period's end

    def _key(self, *parts: object) -> str:
        return ":".join(("sbt-billing", self.account.tenant_id, *(str(part) for part in parts)))

    def _create_key(self, kind: str, snapshot: OpeningSnapshot) -> str:
        """The key of an opening's create: the first generation's as it always was, later ones their own
        (the refused request's key would replay its refusal, or refuse other parameters)."""
        generation = (f"g{snapshot.generation}",) if snapshot.generation else ()
        return self._key(kind, "create", *generation)

    def _progress(self, **changes: object) -> None:
        self.account = self.account.model_copy(update=changes)

    def run(self) -> Account:
        if self.account.desired.closed is not None:
            self._close()
        else:
            self._open()
            self._sync_details()
            self._sync_payment_method()
            self._sync_plan()
        return self.account

    def _open(self) -> None:
        snapshot = self.account.opening
        if snapshot is None:
            return
        if self.account.customer_id is None:
            if snapshot.adopted is not None:
                self._adopt_customer(snapshot, snapshot.adopted)
            else:
                self._find_or_create_customer(snapshot)
        if self.account.subscription_id is None:
            assert self.account.customer_id is not None
            subscription = None
            prices = PlanPrices(
                base=snapshot.price_id, seats=snapshot.seat_price_id, metered=snapshot.metered_price_ids
            )
            if snapshot.adopted is not None and snapshot.adopted.subscription_id is not None:
                subscription = self._adopted_subscription(snapshot.adopted.subscription_id, prices)
            elif self._resumed or snapshot.generation:
                subscription = self._billing.find_subscription(self.account.customer_id, prices)
            if subscription is None:
                subscription = self._billing.create_subscription(
                    self.account.tenant_id,
                    self.account.customer_id,
                    prices,
                    snapshot.seat_quantity,
                    idempotency_key=self._create_key("subscription", snapshot),
                )
            self._progress(
                status=AccountStatus.OPEN,
                subscription_id=subscription.subscription_id,
                subscription_item_id=subscription.item_id,
                subscription_status=subscription.status,
                price_id=subscription.price_id,
                # An adopted subscription on another price is applied the tier by _sync_plan.
                applied_tier=snapshot.tier if subscription.price_id == snapshot.price_id else None,
                seat_item_id=subscription.seat_item_id,
                seat_price_id=snapshot.seat_price_id if subscription.seat_item_id else None,
                metered_items=subscription.metered_items,
            )

    def _adopt_customer(self, snapshot: OpeningSnapshot, adopted: Adopted) -> None:
        """The existing customer becomes the tenant's (its metadata.tenantId set, so that Stripe's events
        find the tenant); its details stay as Stripe has them until a fact changes them."""
        self._billing.link_customer(
            adopted.customer_id, self.account.tenant_id, idempotency_key=self._key("customer", "adopt")
        )
        self._progress(customer_id=adopted.customer_id, applied_details_digest=snapshot.details.digest())

    def _adopted_subscription(self, subscription_id: str, prices: PlanPrices) -> SubscriptionState:
        subscription = self._billing.subscription_state(subscription_id, prices)
        if subscription is None or subscription.status in ENDED:
            raise PermanentBillingError(
                f"the subscription to adopt ({subscription_id}) has ended or is gone: adopt the tenant again"
            )
        return subscription

    def _find_or_create_customer(self, snapshot: OpeningSnapshot) -> None:
        customer_id = None
        applied: str | None = snapshot.details.digest()
        if snapshot.generation or (
            self._resumed and self._clock.now() - snapshot.started_at > KEY_WINDOW_MARGIN
        ):
            # Past the key window, or after a refusal (an earlier generation may have made the customer,
            # with other details: _sync_details brings them up to date).
            customer_id = self._billing.find_customer(self.account.tenant_id)
            if customer_id is not None and snapshot.generation:
                applied = None
        if customer_id is None:
            customer_id = self._billing.create_customer(
                self.account.tenant_id,
                snapshot.details,
                idempotency_key=self._create_key("customer", snapshot),
            )
        self._progress(customer_id=customer_id, applied_details_digest=applied)

    def _sync_details(self) -> None:
        details = self.account.desired.details()
        if self.account.customer_id is None or self.account.applied_details_digest == details.digest():
            return
        self._billing.update_customer(
            self.account.customer_id,
            details,
            idempotency_key=self._key("customer", "update", self.account.revision, details.digest()),
        )
        self._progress(applied_details_digest=details.digest())

    def _sync_plan(self) -> None:
        account = self.account
        register = account.desired.tier
        if register is None or account.subscription_id is None or account.subscription_item_id is None:
            return
        tier = register.value
        if tier == account.applied_tier:
            if account.pending_plan is not None:
                # Paid and applied (a webhook followed it), or no longer wanted.
                self._progress(pending_plan=None)
            if account.scheduled_change is not None:
                # Back to the tier billed now before the period ended: the scheduled change is withdrawn.
                self._withdraw_scheduled_change()
            return
        prices = self._lifecycle.prices_for(tier)
        if account.plan_blocked():
            # Tried once and waiting for its invoice: never tried again by itself (no second charge).
            if self.payment_required is None:
                self._follow_pending_plan(account.subscription_id, tier, prices)
            return
        if account.plan_scheduled():
            return  # Stripe moves the subscription to it when the period ends
        if self._waits_for_period_end(prices):
            self._schedule_plan(tier, register.stamp, prices)
            return
        if account.scheduled_change is not None:
            self._withdraw_scheduled_change()  # a change now (an upgrade) replaces the scheduled one
        if prices.base != account.price_id or prices.seats != account.seat_price_id:
            seats = self._lifecycle._seats
            change = plan_change(account, prices, seats.count if seats else None, register.proration_date)
            state = self._billing.change_plan(
                change, idempotency_key=self._key("plan", account.revision, prices.base, prices.seats or "")
            )
            if state.pending_update:
                self.payment_required = PendingPlan(
                    tier=tier,
                    stamp=register.stamp,
                    invoice=state.latest_invoice,
                    expires_at=state.pending_update_expires_at,
                )
                self._progress(pending_plan=self.payment_required)
                return
            invoice = state.latest_invoice
            if invoice is not None and invoice.invoice_id != account.plan_invoice_id:
                self.invoiced = invoice
                self._progress(plan_invoice_id=invoice.invoice_id)
            self._progress(
                seat_item_id=state.seat_item_id,
                seat_price_id=prices.seats if state.seat_item_id else None,
                subscription_status=state.status,
            )
        self._progress(applied_tier=tier, price_id=prices.base, pending_plan=None)

    def _waits_for_period_end(self, prices: PlanPrices) -> bool:
        """A downgrade, when the deployment keeps the paid period's tier until the period ends. Not
        during a trial: nothing is paid for yet (and Stripe prorates nothing while trialing)."""
        current = self.account.price_id
        if self._lifecycle._downgrade_at is not DowngradeAt.PERIOD_END or current is None:
            return False
        if self.account.subscription_status == "trialing":
            return False
        if prices.base == current:
            return False
        return is_downgrade(self._billing.price_terms(prices.base), self._billing.price_terms(current))

    def _schedule_plan(self, tier: str, stamp: Stamp, prices: PlanPrices) -> None:
        account = self.account
        assert account.subscription_id is not None
        assert account.price_id is not None
        seats = self._lifecycle._seats
        adds_seats = prices.seats is not None and account.seat_item_id is None
        change = ScheduledPlanChange(
            tenant_id=account.tenant_id,
            tier=tier,
            subscription_id=account.subscription_id,
            from_base=account.price_id,
            to_base=prices.base,
            from_seat=account.seat_price_id if account.seat_item_id else None,
            to_seat=prices.seats,
            seat_quantity=seats.count(account.tenant_id) if adds_seats and seats else 0,
        )
        plan = self._billing.schedule_plan_change(
            change,
            idempotency_key=self._key("schedule", account.revision, prices.base, prices.seats or ""),
        )
        self.scheduled = ScheduledChange(
            tier=tier,
            at=plan.at,
            schedule_id=plan.schedule_id,
            price_id=prices.base,
            stamp=stamp,
            since=stamp.at,
        )
        self._progress(scheduled_change=self.scheduled, pending_plan=None)

    def _withdraw_scheduled_change(self) -> None:
        scheduled = self.account.scheduled_change
        assert scheduled is not None
        self._billing.release_schedule(
            scheduled.schedule_id, idempotency_key=self._key("schedule", scheduled.schedule_id, "release")
        )
        self._progress(scheduled_change=None)

    def _sync_payment_method(self) -> None:
        """The payment method the tenant gave becomes the customer's default for invoices, and the
        subscription is charged automatically from then on (no more invoices to pay by hand)."""
        account = self.account
        register = account.desired.payment_method
        if (
            register is None
            or account.customer_id is None
            or register.value == account.applied_payment_method
        ):
            return
        status = account.subscription_status
        live = account.subscription_id is not None and status not in ("canceled", "incomplete_expired")
        self._billing.use_payment_method(
            account.customer_id,
            account.subscription_id if live else None,
            register.value,
            idempotency_key=self._key("payment-method", register.value, register.stamp.digest[:16]),
        )
        self._progress(applied_payment_method=register.value)

    def _follow_pending_plan(self, subscription_id: str, tier: str, prices: PlanPrices) -> None:
        """One read: once the tenant paid, Stripe applied the pending change and the account follows."""
        state = self._billing.subscription_state(subscription_id, prices)
        if state is None or state.pending_update or state.price_id != prices.base:
            return
        self._progress(
            applied_tier=tier,
            price_id=prices.base,
            seat_item_id=state.seat_item_id,
            seat_price_id=prices.seats if state.seat_item_id else None,
            subscription_status=state.status,
            pending_plan=None,
        )

    def _close(self) -> None:
        snapshot = self.account.opening
        if self.account.customer_id is None and snapshot is not None:
            # An opening was under way: learn what it created, so that nothing is left orphaned.
            if snapshot.refused:
                # Stripe refused its create: look for what an earlier attempt made, create nothing.
                customer_id = self._billing.find_customer(self.account.tenant_id)
                if customer_id is not None:
                    self._progress(customer_id=customer_id)
            else:
                self._find_or_create_customer(snapshot)
        if self.account.subscription_id is None and self.account.customer_id is not None:
            found = self._billing.find_subscription(self.account.customer_id)
            if found is not None:
                self._progress(subscription_id=found.subscription_id, subscription_item_id=found.item_id)
        # Closed before, and found live by a reconcile run: cancelled again under keys of this drive (the
        # first cancellation's key would only replay its answer for a day).
        again = ("again", self.account.revision) if self.account.closed_at is not None else ()
        if self.account.subscription_id is not None and self.account.subscription_status != "canceled":
            if self.account.desired.provisioning_failed is not None:
                # SBT could not provision the tenant: nothing to charge, nothing owed.
                status = self._billing.cancel_unbilled(
                    self.account.subscription_id,
                    idempotency_key=self._key("subscription", "cancel-unbilled", *again),
                )
                self._progress(subscription_status=status)
                self._close_customer()
                return
            # What the tenant used and its last seat count reach Stripe before the final invoice.
            if self._lifecycle._usage is not None:
                self._lifecycle._usage.flush(self.account.tenant_id, account=self.account)
            if self._lifecycle._seats is not None:
                self._lifecycle._seats.settle(self.account)
            status = self._billing.cancel_subscription(
                self.account.subscription_id, idempotency_key=self._key("subscription", "cancel", *again)
            )
            self._progress(subscription_status=status)
        self._close_customer()

    def _close_customer(self) -> None:
        # When the tenant was offboarded (the fact's time), not when this attempt runs: a retry after
        # Stripe took the close but before it was recorded sends it again as it was, under its key.
        # A second closing keeps the first's time.
        offboarded = self.account.desired.closed
        closed_at = self.account.closed_at or (offboarded.at if offboarded else self._clock.now())
        deleted = self.account.customer_deleted
        if self.account.customer_id is not None and not deleted:
            deleted = self._billing.close_customer(
                self.account.customer_id, closed_at=closed_at, idempotency_key=self._key("customer", "close")
            )
        self._progress(status=AccountStatus.CLOSED, closed_at=closed_at, customer_deleted=deleted)


def plan_change(
    account: Account,
    prices: PlanPrices,
    seat_count: Callable[[str], int] | None,
    proration_date: datetime | None,
) -> PlanChange:
    """The one subscription update that moves the account's items to `prices`."""
    assert account.subscription_id is not None
    assert account.subscription_item_id is not None
    adds_seats = prices.seats is not None and account.seat_item_id is None
    return PlanChange(
        subscription_id=account.subscription_id,
        base_item_id=account.subscription_item_id,
        base_price=prices.base,
        seat_item_id=account.seat_item_id,
        seat_price=prices.seats,
        seat_quantity=seat_count(account.tenant_id) if adds_seats and seat_count else 0,
        proration_date=proration_date,
    )


def _opening_refused(account: Account) -> Account:
    """The account after Stripe refused a request for good: if the refusal came while opening (no
    subscription yet), its snapshot is marked refused, so that the next fact starts it again."""
    opening = account.opening
    if opening is None or opening.refused or account.subscription_id is not None:
        return account
    return account.model_copy(update={"opening": opening.model_copy(update={"refused": True})})


def _refused_with_newer_facts(latest: Account, written: Account) -> bool:
    """Whether the opening was refused and released while others merged facts it did not drive."""
    return (
        latest.opening is not None
        and latest.opening.refused
        and latest.lease is None
        and latest.desired.closed is None
        and latest.desired != written.desired
    )


def _holder_working(lease: Lease, now: datetime) -> bool:
    return lease.working_until is not None and now < lease.working_until <= lease.expires_at
