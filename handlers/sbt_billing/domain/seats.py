"""Seats: a tenant's user count becomes its per-seat item's quantity, coalesced under Stripe's limit.

Stripe allows a limited number of quantity updates per subscription per hour (200), so a burst of
user events must not become a burst of updates. Each user event records the user (idempotent per
user id, last fact wins) and bumps the tenant's change version; the first event of a burst also
schedules one sync after a delay (SEAT_SYNC_DELAY_SECONDS). The sync counts the users and sets the
quantity once. If users changed while it ran (the version moved), it schedules itself again, so the
last change is never lost, and a tenant gets at most one update per delay window.
"""

from __future__ import annotations

from sbt_billing.domain.frozen import Frozen
from sbt_billing.domain.models import Account, AccountStatus
from sbt_billing.domain.ports import AccountStore, BillingGateway, SeatLedger, SyncScheduler
from sbt_billing.domain.seat_recording import SeatRecorder


class SyncOutcome(Frozen):
    tenant_id: str
    quantity: int | None = None
    updated: bool = False
    rescheduled: bool = False


class Seats(SeatRecorder):
    """The seat sync, the count an opening starts with, and the last count at offboarding."""

    def __init__(
        self,
        ledger: SeatLedger,
        scheduler: SyncScheduler,
        accounts: AccountStore,
        billing: BillingGateway,
        delay_seconds: int,
    ) -> None:
        super().__init__(ledger, scheduler, delay_seconds)
        self._accounts = accounts
        self._billing = billing

    def count(self, tenant_id: str) -> int:
        return self._ledger.count(tenant_id)

    def sync(self, tenant_id: str) -> SyncOutcome:
        """Sets the seat quantity to the user count, once per scheduled sync."""
        version, applied, applied_item = self._ledger.sync_version(tenant_id)
        account = self._accounts.get(tenant_id)
        opening = account.opening if account is not None else None
        if (
            account is not None
            and account.status is AccountStatus.OPENING
            and not (opening and opening.refused)
        ):
            # The opening counts the users it starts with; check again once it is done. (A refused
            # opening waits for a fact, and its next generation counts them: nothing to check until then.)
            self._scheduler.schedule(tenant_id, self._delay)
            return SyncOutcome(tenant_id=tenant_id, rescheduled=True)
        quantity, updated = None, False
        item_id = (
            account.seat_item_id if account is not None and account.status is AccountStatus.OPEN else None
        )
        if account is not None and item_id is not None:
            quantity, updated = self._apply(
                account, item_id, version, applied if applied_item == item_id else None
            )
        if self._ledger.finish_sync(tenant_id, version, quantity, item_id if quantity is not None else None):
            return SyncOutcome(tenant_id=tenant_id, quantity=quantity, updated=updated)
        # Users changed while this sync ran: one more sync after the delay carries the last change.
        self._scheduler.schedule(tenant_id, self._delay)
        return SyncOutcome(tenant_id=tenant_id, quantity=quantity, updated=updated, rescheduled=True)

    def settle(self, account: Account) -> None:
        """Offboarding: the final count reaches Stripe now, before the final invoice."""
        if account.seat_item_id is None:
            return
        version, applied, applied_item = self._ledger.sync_version(account.tenant_id)
        known = applied if applied_item == account.seat_item_id else None
        quantity, _ = self._apply(account, account.seat_item_id, version, known)
        self._ledger.finish_sync(account.tenant_id, version, quantity, account.seat_item_id)

    def sync_scheduled(self, tenant_id: str) -> bool:
        return self._ledger.sync_scheduled(tenant_id)

    def correct(self, account: Account, found: int, run_id: str) -> bool:
        """A reconcile run found the seat item at `found`, not the user count: the count is set again,
        under a key of the run's own (the same count at the same version may have been set before, and
        Stripe would replay that answer), unless a sync is on its way. True when Stripe was updated."""
        item_id = account.seat_item_id
        if item_id is None or self._ledger.sync_scheduled(account.tenant_id):
            return False
        version, _, _ = self._ledger.sync_version(account.tenant_id)
        count = self._ledger.count(account.tenant_id)
        if count == found:
            return False
        key = f"sbt-billing:{account.tenant_id}:seats:{item_id}:{version}:{count}:reconcile:{run_id}"
        if not self._billing.set_quantity(item_id, count, idempotency_key=key):
            return False
        self._ledger.finish_sync(account.tenant_id, version, count, item_id)
        return True

    def _apply(
        self, account: Account, item_id: str, version: int, known: int | None
    ) -> tuple[int | None, bool]:
        count = self._ledger.count(account.tenant_id)
        current = known if known is not None else self._billing.item_quantity(item_id)
        if current is None:  # the item is gone (the tier changed meanwhile): nothing to set
            return None, False
        if current == count:
            return count, False
        key = f"sbt-billing:{account.tenant_id}:seats:{item_id}:{version}:{count}"
        if not self._billing.set_quantity(item_id, count, idempotency_key=key):
            return None, False
        return count, True
