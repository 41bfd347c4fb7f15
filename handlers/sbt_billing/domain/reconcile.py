"""Reconciling: every account compared with Stripe, what the facts determine repaired, the rest reported.

A pass goes through three phases, each read in pages and each page's progress saved before the next
(so an invocation that runs out of time, or fails, leaves the pass for the next to continue where it
stopped, and a page is at worst done twice: everything in it is idempotent):

1. REPLAY: Stripe's events the webhook missed, applied through its processor (event_replay.py).
2. STRIPE: every subscription in Stripe, 100 a request with its customer expanded, against the account
   of the tenant it names (the accounts read 100 at a time): drift.py says what differs and what to do.
   A live subscription naming a tenant that records another one is reported. The ids listed are kept.
3. ACCOUNTS: every account's reference (1,000 a request); those whose subscription the listing did not
   show (one made since the listing started, one Stripe does not have, an opening that never recorded
   its subscription) are read whole, their subscription asked of Stripe one by one, and compared; facts
   Stripe never got (a drive that died before its subscription was recorded, say) are driven.

Repairs go through the lifecycle (Lifecycle.reconcile_account): the tenant's lease, the same keys,
never a second customer or subscription. Each tenant with drift gets one `sbt_aws_billingDrift` on the
bus per page it appears in, saying what differs (ids and states, never personal data) and what was done.

One invocation at a time runs a pass (the pass records its owner until the invocation's end).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from uuid import uuid4

from sbt_billing.domain.catalogue import TierPlan
from sbt_billing.domain.drift import (
    Comparison,
    Drift,
    DriftAction,
    DriftKind,
    ObservedSubscription,
    compare,
    extra_subscription,
    is_busy,
)
from sbt_billing.domain.errors import RevisionConflict, TenantBusy
from sbt_billing.domain.event_replay import ApplyEvent, replay_page, replay_windows
from sbt_billing.domain.frozen import Frozen
from sbt_billing.domain.lifecycle import CHANGED_SINCE_COMPARED, Lifecycle
from sbt_billing.domain.models import Account, AccountStatus
from sbt_billing.domain.ports import AccountDirectory, Clock, EventPublisher, ReconcileStore, StripeListings
from sbt_billing.domain.published import BILLING_DRIFT
from sbt_billing.domain.reconcile_state import (
    PassState,
    Phase,
    ReconcileReport,
    Tally,
    TenantDrift,
    WindowKind,
)
from sbt_billing.domain.results import Result
from sbt_billing.domain.seats import Seats

ACCOUNTS_PAGE = 1000  # references a Scan page holds (well under its 1 MB)
BATCH = 100  # accounts read whole in one request
OWNER_MARGIN = timedelta(seconds=30)  # past the deadline, the pass is free for the next invocation


class ReconcileRun(Frozen):
    """What one invocation did: this invocation's counts, and the pass's report as it stands."""

    pass_id: str | None = None
    busy: bool = False  # another invocation runs the pass: this one did nothing
    counts: dict[str, int]
    report: ReconcileReport | None = None

    @property
    def complete(self) -> bool:
        return self.report is not None and self.report.complete


class Reconciler:
    def __init__(
        self,
        store: ReconcileStore,
        listings: StripeListings,
        accounts: AccountDirectory,
        lifecycle: Lifecycle,
        apply_event: ApplyEvent,
        publisher: EventPublisher,
        clock: Clock,
        catalogue: Mapping[str, TierPlan],
        seats: Seats | None = None,
        owner: str | None = None,
    ) -> None:
        self._store = store
        self._listings = listings
        self._accounts = accounts
        self._lifecycle = lifecycle  # the repairs' (its lease holder is this invocation, until its end)
        self._apply_event = apply_event
        self._publisher = publisher
        self._clock = clock
        self._catalogue = catalogue
        self._seats = seats
        self._owner = owner or uuid4().hex
        self._tally = Tally()
        self._everything = Tally()
        self._pass_id = ""
        self._seen_cache: tuple[str, set[str]] | None = None

    def run(self, deadline: datetime, restart: bool = False) -> ReconcileRun:
        """Continues the pass (or starts one, when the last one is done or `restart`) until it is done
        or `deadline` comes."""
        state = self._claim(deadline, restart)
        if state is None:
            return ReconcileRun(busy=True, counts={})
        self._pass_id = state.pass_id
        try:
            state = self._continue(state, deadline)
        except RevisionConflict:
            # Another invocation took the pass over (this one outlived its claim): it carries on.
            return ReconcileRun(pass_id=state.pass_id, counts=self._everything.counts)
        finally:
            self._release(state)
        return ReconcileRun(pass_id=state.pass_id, counts=self._everything.counts, report=state.report)

    # -- the pass ---------------------------------------------------------------------------------

    def _claim(self, deadline: datetime, restart: bool) -> PassState | None:
        now = self._clock.now()
        current = self._store.load_pass()
        claim = {"owner": self._owner, "owner_until": deadline + OWNER_MARGIN}
        if current is not None and current.held_by_other(self._owner, now) and not restart:
            return None
        if current is None or current.phase is Phase.DONE or restart:
            pass_id = now.strftime("%Y%m%dT%H%M%SZ-") + uuid4().hex[:8]
            state = PassState(
                pass_id=pass_id,
                started_at=now,
                windows=replay_windows(now, self._store.applied_mark(), current),
                report=ReconcileReport(pass_id=pass_id, started_at=now),
                **claim,
            )
        else:
            state = current.model_copy(update=claim)
        report = state.report.model_copy(update={"invocations": state.report.invocations + 1})
        try:
            return self._store.save_pass(
                state.model_copy(update={"report": report}), current.revision if current else None
            )
        except RevisionConflict:
            return None  # another invocation claimed it at the same moment

    def _continue(self, state: PassState, deadline: datetime) -> PassState:
        while state.phase is not Phase.DONE and self._clock.now() < deadline:
            if state.phase is Phase.REPLAY:
                state = self._replay(state)
            elif state.phase is Phase.STRIPE:
                state = self._subscriptions(state)
            else:
                state = self._unlisted_accounts(state)
        return state

    def _save(self, state: PassState, **changes: object) -> PassState:
        tally = self._tally.taken()
        for name, value in tally.counts.items():
            self._everything.add(name, value)
        report = state.report.plus(tally)
        if changes.get("phase") is Phase.DONE:
            report = report.model_copy(update={"finished_at": self._clock.now()})
        return self._store.save_pass(
            state.model_copy(update={**changes, "report": report}), expected_revision=state.revision
        )

    def _release(self, state: PassState) -> None:
        """Best effort: the pass is free for the next invocation at once (else when the claim ends)."""
        try:
            latest = self._store.load_pass()
            if latest is not None and latest.owner == self._owner:
                self._store.save_pass(
                    latest.model_copy(update={"owner": None, "owner_until": None}), latest.revision
                )
        except Exception:  # noqa: S110 - the claim expires by itself
            pass

    # -- 1. replay --------------------------------------------------------------------------------

    def _replay(self, state: PassState) -> PassState:
        window = next((window for window in state.windows if not window.done), None)
        if window is None:
            return self._save(state, phase=Phase.STRIPE)
        moved = replay_page(window, self._listings, self._apply_event, self._tally)
        if moved.done and moved.kind is WindowKind.AFTER_MARK and moved.newest is not None:
            self._store.advance_applied_mark(moved.newest)
        windows = tuple(moved if w.kind is window.kind else w for w in state.windows)
        return self._save(state, windows=windows)

    # -- 2. every subscription in Stripe ----------------------------------------------------------

    def _subscriptions(self, state: PassState) -> PassState:
        page = self._listings.subscriptions(state.subscriptions_cursor)
        self._tally.add("stripe_requests")
        self._tally.add("subscriptions_listed", len(page.items))
        named = sorted({tenant for observed in page.items if (tenant := observed.tenant_id()) is not None})
        accounts = self._accounts.get_many(named) if named else {}
        found: dict[str, list[Drift]] = {}
        checked: dict[str, Account] = {}
        for observed in page.items:
            tenant = observed.tenant_id()
            if tenant is None:
                continue  # not a tenant's: another product's subscription in the same Stripe account
            account = accounts.get(tenant)
            if account is not None and account.subscription_id == observed.subscription_id:
                checked[tenant] = account
                found.setdefault(tenant, []).extend(self._check(account, observed))
            elif (extra := extra_subscription(account, observed)) is not None:
                found.setdefault(tenant, []).append(extra)
        for tenant, drifts in found.items():
            self._report(tenant, checked.get(tenant) or accounts.get(tenant), drifts)
        seen_pages = state.seen_pages
        if page.items:
            seen_pages += 1
            self._store.add_seen(
                state.pass_id, seen_pages, [observed.subscription_id for observed in page.items]
            )
        return self._save(
            state,
            subscriptions_cursor=page.items[-1].subscription_id if page.items else state.subscriptions_cursor,
            seen_pages=seen_pages,
            phase=Phase.STRIPE if page.has_more else Phase.ACCOUNTS,
        )

    # -- 3. the accounts the listing did not show -------------------------------------------------

    def _unlisted_accounts(self, state: PassState) -> PassState:
        seen = self._seen(state)
        page = self._accounts.refs(state.accounts_cursor, ACCOUNTS_PAGE)
        unlisted = [
            ref.tenant_id
            for ref in page.items
            if ref.status is not AccountStatus.PENDING
            and (ref.subscription_id is None or ref.subscription_id not in seen)
        ]
        accounts: dict[str, Account] = {}
        for start in range(0, len(unlisted), BATCH):
            accounts.update(self._accounts.get_many(unlisted[start : start + BATCH]))
        for account in accounts.values():
            if account.status is AccountStatus.PENDING or account.subscription_id in seen:
                continue  # changed since its reference was read
            observed = None
            if account.subscription_id is not None and not is_busy(account, self._clock.now()):
                observed = self._listings.observe_subscription(account.subscription_id)
                self._tally.add("stripe_requests")
            drifts = self._check(account, observed)
            if drifts:
                self._report(account.tenant_id, account, drifts)
        last = page.items[-1].tenant_id if page.items else state.accounts_cursor
        return self._save(state, accounts_cursor=last, phase=Phase.ACCOUNTS if page.has_more else Phase.DONE)

    def _seen(self, state: PassState) -> set[str]:
        if self._seen_cache is None or self._seen_cache[0] != state.pass_id:
            self._seen_cache = (state.pass_id, self._store.seen(state.pass_id, state.seen_pages))
        return self._seen_cache[1]

    # -- one account ------------------------------------------------------------------------------

    def _check(self, account: Account, observed: ObservedSubscription | None) -> list[Drift]:
        """The account against Stripe, repaired where the facts say so; the drifts found."""
        now = self._clock.now()
        if is_busy(account, now):
            self._tally.add("accounts_busy")
            return []
        self._tally.add("accounts_checked")
        comparison = Comparison()
        if account.subscription_id is not None:
            comparison = compare(account, observed, self._catalogue, self._users(account))
        behind = account.needs_driving()
        drifts = list(comparison.drifts)
        if behind:
            drifts.insert(
                0, Drift(kind=DriftKind.BEHIND, action=DriftAction.REPAIRED, account=account.status.value)
            )
        if behind or comparison.needs_lifecycle:
            drifts = self._repair(account, comparison, drifts)
        seats = self._seats
        if (
            comparison.seat_quantity is not None
            and seats is not None
            and not seats.correct(account, comparison.seat_quantity, self._owner)
        ):
            drifts = [_unrepaired(d) if d.kind is DriftKind.SEATS else d for d in drifts]
        return drifts

    def _users(self, account: Account) -> int | None:
        if self._seats is None or account.seat_item_id is None:
            return None
        if self._seats.sync_scheduled(account.tenant_id):
            return None  # a sync is on its way with the latest count
        return self._seats.count(account.tenant_id)

    def _repair(self, account: Account, comparison: Comparison, drifts: list[Drift]) -> list[Drift]:
        try:
            outcome = self._lifecycle.reconcile_account(
                account.tenant_id, account.revision, comparison.findings
            )
        except TenantBusy:
            self._tally.add("accounts_busy")
            return [_unrepaired(drift) for drift in drifts]
        if outcome.result is Result.FAILED:
            # Stripe refused the repair for good (reported on the bus by the lifecycle): for a person.
            self._tally.add("repairs_failed")
            return [_unrepaired(drift) for drift in drifts]
        if outcome.result is Result.IN_FLIGHT or outcome.reason == CHANGED_SINCE_COMPARED:
            # Someone changed or drives the account since it was read: the next run compares it again.
            self._tally.add("accounts_busy")
            return []
        return drifts

    def _report(self, tenant_id: str, account: Account | None, drifts: list[Drift]) -> None:
        if not drifts:
            return
        found = TenantDrift(
            tenant_id=tenant_id,
            customer_id=account.customer_id if account else None,
            subscription_id=account.subscription_id if account else None,
            drifts=tuple(drifts),
        )
        detail: dict[str, object] = {"tenantId": tenant_id, "reconcileRunId": self._pass_id}
        for key, value in (("customerId", found.customer_id), ("subscriptionId", found.subscription_id)):
            if value is not None:
                detail[key] = value
        detail["drifts"] = [drift.as_detail() for drift in drifts]
        self._publisher.publish(BILLING_DRIFT, detail)
        self._tally.drifted(found)


def _unrepaired(drift: Drift) -> Drift:
    if drift.action is DriftAction.REPAIRED:
        return drift.model_copy(update={"action": DriftAction.REPORTED})
    return drift
