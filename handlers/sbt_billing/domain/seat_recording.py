"""What the user function does with a user event: records the user (idempotent per user id, last fact
wins) and schedules the tenant's seat sync once per burst (see seats for the sync itself). No account,
no Stripe."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbt_billing.domain.frozen import Frozen
from sbt_billing.domain.results import Result

if TYPE_CHECKING:
    from sbt_billing.domain.ports import SeatLedger, SyncScheduler


class SeatOutcome(Frozen):
    tenant_id: str
    user_id: str
    result: Result
    sync_scheduled: bool = False

    def as_response(self) -> dict[str, str]:
        return {key: str(value) for key, value in self.model_dump(mode="json").items()}


class SeatRecorder:
    """Records users and schedules the syncs: all the user function does (no account, no Stripe)."""

    def __init__(self, ledger: SeatLedger, scheduler: SyncScheduler, delay_seconds: int) -> None:
        self._ledger = ledger
        self._scheduler = scheduler
        self._delay = delay_seconds

    def record(self, tenant_id: str, user_id: str, present: bool, stamp: str) -> SeatOutcome:
        """A user was created (present) or deleted; `stamp` orders facts about the same user."""
        changed = self._ledger.record_user(tenant_id, user_id, present, stamp)
        # Even a duplicate makes sure a sync is pending: an earlier attempt may have recorded the user
        # and failed to schedule.
        scheduled = self._ledger.claim_sync(tenant_id, changed)
        if scheduled:
            try:
                self._scheduler.schedule(tenant_id, self._delay)
            except BaseException:
                self._ledger.release_claim(tenant_id)
                raise
        result = Result.RECORDED if changed else Result.UNCHANGED
        return SeatOutcome(tenant_id=tenant_id, user_id=user_id, result=result, sync_scheduled=scheduled)
