"""A reconcile pass as it is kept between invocations: where it got to (its phase and cursors), who
is running it, and what it found so far. One pass compares every account with Stripe once; an
invocation that runs out of time leaves the state for the next one, which continues where it stopped.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from sbt_billing.domain.drift import Drift
from sbt_billing.domain.frozen import Frozen
from sbt_billing.domain.models import StripeStamp

EXAMPLES_KEPT = 100  # tenants with drift a pass keeps for its report (every one goes to the bus)


class Phase(StrEnum):
    REPLAY = "replay"  # Stripe's events the webhook missed, applied through the webhook's processor
    STRIPE = "stripe"  # every subscription in Stripe, 100 a page, against the account it names
    ACCOUNTS = "accounts"  # every account whose subscription the listing did not show
    DONE = "done"


class WindowKind(StrEnum):
    AFTER_MARK = "after_mark"  # everything since the last event applied (a disabled endpoint)
    UNDELIVERED = "undelivered"  # what Stripe could not deliver since the last pass (a lost delivery)


class EventWindow(Frozen):
    """One span of Stripe's events to replay (created in [since, until]), applied oldest first: Stripe
    lists newest first, so the window is first read back to its oldest page (`cursor` the oldest event
    read), then forward (`ascending`, `cursor` the newest event applied). `newest` is the newest event
    the window holds."""

    kind: WindowKind
    since: datetime
    until: datetime
    cursor: str | None = None
    ascending: bool = False
    newest: StripeStamp | None = None
    done: bool = False


class TenantDrift(Frozen):
    tenant_id: str
    customer_id: str | None = None
    subscription_id: str | None = None
    drifts: tuple[Drift, ...]


class ReconcileReport(Frozen):
    """What a pass did and found, summed over its invocations. `counts` holds plain counters: the
    run's own Stripe reads (`stripe_requests`), `events_*`, `subscriptions_listed`, `accounts_checked`,
    `accounts_busy`, `tenants_with_drift`, `repairs_failed`, and one `drift:<kind>` and
    `action:<action>` per drift."""

    pass_id: str
    started_at: datetime
    finished_at: datetime | None = None
    invocations: int = 0
    counts: dict[str, int] = Field(default_factory=dict)
    examples: tuple[TenantDrift, ...] = ()

    @property
    def complete(self) -> bool:
        return self.finished_at is not None

    def count(self, name: str) -> int:
        return self.counts.get(name, 0)

    def drift_counts(self) -> dict[str, int]:
        return {
            name.removeprefix("drift:"): n for name, n in self.counts.items() if name.startswith("drift:")
        }

    def plus(self, tally: Tally) -> ReconcileReport:
        counts = dict(self.counts)
        for name, value in tally.counts.items():
            counts[name] = counts.get(name, 0) + value
        room = max(0, EXAMPLES_KEPT - len(self.examples))
        return self.model_copy(
            update={"counts": counts, "examples": (*self.examples, *tally.examples[:room])}
        )


class Tally:
    """What one invocation counts (mutable, folded into the pass's report at each save)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.examples: list[TenantDrift] = []

    def add(self, name: str, value: int = 1) -> None:
        if value:
            self.counts[name] = self.counts.get(name, 0) + value

    def drifted(self, tenant: TenantDrift) -> None:
        self.add("tenants_with_drift")
        for drift in tenant.drifts:
            self.add(f"drift:{drift.kind.value}")
            self.add(f"action:{drift.action.value}")
        self.examples.append(tenant)

    def taken(self) -> Tally:
        """This tally's counts, handed over and cleared (what a save folds into the report)."""
        handed = Tally()
        handed.counts, handed.examples = self.counts, self.examples
        self.counts, self.examples = {}, []
        return handed


class PassState(Frozen):
    pass_id: str
    revision: int = 0
    started_at: datetime
    owner: str | None = None  # the invocation running the pass
    owner_until: datetime | None = None  # ... until then at the latest
    phase: Phase = Phase.REPLAY
    windows: tuple[EventWindow, ...] = ()
    subscriptions_cursor: str | None = None
    seen_pages: int = 0  # pages of listed subscription ids kept for the accounts phase
    accounts_cursor: str | None = None
    report: ReconcileReport

    def held_by_other(self, owner: str, now: datetime) -> bool:
        return (
            self.phase is not Phase.DONE
            and self.owner not in (None, owner)
            and self.owner_until is not None
            and self.owner_until > now
        )

    def window(self, kind: WindowKind) -> EventWindow | None:
        return next((window for window in self.windows if window.kind is kind), None)
