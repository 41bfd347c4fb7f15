"""Drift: where a tenant's account and Stripe disagree, and which side the recorded facts take.

A reconcile run compares each account with the subscription Stripe holds for it, after Stripe's
missed events have been replayed (event_replay.py): a change made in Stripe that Stripe told about
in the last 30 days is then a fact of the account already (the webhook's rules), so what still
differs is one of three things.

- The recorded facts determine it, and Stripe can be moved to them without creating anything:
  REPAIRED, through the lifecycle (same lease, same keys). Facts Stripe never got (a fact recorded
  whose drive died), a price that is another tier's than the account's, a seat count that is not the
  tenant's user count, a subscription still live for an offboarded tenant.
- Stripe's own state, which no fact of ours decides (the subscription's status): RECORDED, the
  account follows Stripe, so that the gate tells the truth.
- Neither: REPORTED, for a person. A deleted customer or an ended subscription of a tenant who was
  never offboarded (repairing either would mean a second customer or subscription, which the lifecycle
  never makes), a cancellation someone scheduled, a price outside the catalogue, a second live
  subscription naming the tenant.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum

from sbt_billing.domain.catalogue import TierPlan, tier_for_price
from sbt_billing.domain.frozen import Frozen
from sbt_billing.domain.models import ENDED, Account, AccountStatus


class DriftKind(StrEnum):
    BEHIND = "behind"  # recorded facts Stripe never got, and nobody is driving them
    CUSTOMER_DELETED = "customer_deleted"  # the account's customer is deleted in Stripe
    SUBSCRIPTION_MISSING = "subscription_missing"  # Stripe has no subscription by the account's id
    SUBSCRIPTION_ENDED = "subscription_ended"  # ended in Stripe; the tenant was never offboarded
    CANCELLATION_SCHEDULED = "cancellation_scheduled"  # set to end; the tenant was never offboarded
    NOT_CANCELED = "not_canceled"  # the tenant is offboarded; its subscription lives on
    STATUS = "subscription_status"  # Stripe's status is not the one the account records
    PRICE = "price"  # the subscription's prices are not the tier's
    SEATS = "seats"  # the seat quantity is not the tenant's user count
    EXTRA_SUBSCRIPTION = "extra_subscription"  # another live subscription names the tenant
    NO_ACCOUNT = "no_account"  # a live subscription names a tenant billing has no account of


class DriftAction(StrEnum):
    REPAIRED = "repaired"  # Stripe moved to what the facts say, through the lifecycle
    RECORDED = "recorded"  # the account now records Stripe's own state
    REPORTED = "reported"  # neither side can be decided by the facts: a person decides


class Drift(Frozen):
    """One difference. `account` and `stripe` say what each side holds, in ids and states only (never
    a name, an email or an address)."""

    kind: DriftKind
    action: DriftAction
    account: str | None = None
    stripe: str | None = None

    def as_detail(self) -> dict[str, str]:
        return {key: str(value) for key, value in self.model_dump(mode="json").items() if value is not None}


class ObservedItem(Frozen):
    item_id: str
    price_id: str
    lookup_key: str | None = None
    quantity: int | None = None  # None for a metered price


class ObservedSubscription(Frozen):
    """A subscription as a Stripe listing showed it, its customer expanded."""

    subscription_id: str
    customer_id: str
    customer_deleted: bool = False
    customer_tenant: str | None = None  # the customer's metadata.tenantId
    tenant: str | None = None  # the subscription's own metadata.tenantId
    status: str
    items: tuple[ObservedItem, ...] = ()
    cancel_at_period_end: bool = False
    cancel_at: datetime | None = None

    def tenant_id(self) -> str | None:
        return self.tenant or self.customer_tenant

    @property
    def live(self) -> bool:
        return self.status not in ENDED

    @property
    def ending(self) -> bool:
        """Set to end (at the period's end or a date) while still live."""
        return self.live and (self.cancel_at_period_end or self.cancel_at is not None)


class ObservedPlan(Frozen):
    """The items a subscription has in Stripe, as the account records them: the base item (the one on
    a tier's price, else the account's own), and the seat item (on a tier's seat price)."""

    item_id: str
    price_id: str
    seat_item_id: str | None = None
    seat_price_id: str | None = None


class Findings(Frozen):
    """What the lifecycle must take from Stripe before it drives (Lifecycle.reconcile_account)."""

    subscription_status: str | None = None  # Stripe's status, to record
    plan: ObservedPlan | None = None  # the subscription's items, when their prices are not the tier's
    still_live: bool = False  # a closed account's subscription is neither ended nor ending


class Comparison(Frozen):
    drifts: tuple[Drift, ...] = ()
    findings: Findings | None = None  # for the lifecycle, when something is to be recorded or driven
    seat_quantity: int | None = None  # the seat item's quantity to correct to the user count

    @property
    def needs_lifecycle(self) -> bool:
        return self.findings is not None


def is_busy(account: Account, now: datetime) -> bool:
    """Someone drives the tenant right now: compare it on the next run, not against a moving target."""
    return account.lease is not None and account.lease.expires_at > now


def compare(
    account: Account,
    observed: ObservedSubscription | None,
    catalogue: Mapping[str, TierPlan],
    users: int | None = None,
) -> Comparison:
    """The account (not busy, with a subscription recorded) against its subscription in Stripe (None:
    Stripe has none by that id). `users` is the tenant's user count when its seats can be checked
    (no seat sync is under way)."""
    if observed is None:
        return Comparison(
            drifts=(
                Drift(
                    kind=DriftKind.SUBSCRIPTION_MISSING,
                    action=DriftAction.REPORTED,
                    account=account.subscription_id,
                ),
            )
        )
    drifts: list[Drift] = []
    closed = account.desired.closed is not None
    if observed.customer_deleted and not closed and not account.customer_deleted:
        drifts.append(
            Drift(
                kind=DriftKind.CUSTOMER_DELETED,
                action=DriftAction.REPORTED,
                account=account.customer_id,
                stripe="deleted",
            )
        )
    if closed:
        if observed.live and not observed.ending:
            drifts.append(
                Drift(
                    kind=DriftKind.NOT_CANCELED,
                    action=DriftAction.REPAIRED,
                    account="closed",
                    stripe=observed.status,
                )
            )
            return Comparison(
                drifts=tuple(drifts),
                findings=Findings(subscription_status=observed.status, still_live=True),
            )
        return Comparison(drifts=tuple(drifts))
    status = observed.status if observed.status != account.subscription_status else None
    if not observed.live:
        # Reported on every pass until a person decides (offboard the tenant, or subscribe it again):
        # a new subscription is nothing the lifecycle makes by itself. Its status is recorded.
        drifts.append(
            Drift(
                kind=DriftKind.SUBSCRIPTION_ENDED,
                action=DriftAction.REPORTED,
                account=account.subscription_status,
                stripe=observed.status,
            )
        )
        return Comparison(
            drifts=tuple(drifts), findings=Findings(subscription_status=status) if status else None
        )
    if status is not None:
        drifts.append(
            Drift(
                kind=DriftKind.STATUS,
                action=DriftAction.RECORDED,
                account=account.subscription_status,
                stripe=observed.status,
            )
        )
    if observed.ending:
        drifts.append(
            Drift(
                kind=DriftKind.CANCELLATION_SCHEDULED,
                action=DriftAction.REPORTED,
                account=account.subscription_status,
                stripe="cancel_at_period_end" if observed.cancel_at_period_end else "cancel_at",
            )
        )
    plan, price_drift = _plan_drift(account, observed, catalogue)
    if price_drift is not None:
        drifts.append(price_drift)
    seat_quantity = None
    if price_drift is None and users is not None and account.seat_item_id is not None:
        seat = next((item for item in observed.items if item.item_id == account.seat_item_id), None)
        if seat is not None and seat.quantity is not None and seat.quantity != users:
            drifts.append(
                Drift(
                    kind=DriftKind.SEATS,
                    action=DriftAction.REPAIRED,
                    account=str(users),
                    stripe=str(seat.quantity),
                )
            )
            seat_quantity = seat.quantity
    findings = None
    if status is not None or (price_drift is not None and price_drift.action is DriftAction.REPAIRED):
        findings = Findings(
            subscription_status=status,
            plan=plan if price_drift is not None and price_drift.action is DriftAction.REPAIRED else None,
        )
    return Comparison(drifts=tuple(drifts), findings=findings, seat_quantity=seat_quantity)


def _plan_drift(
    account: Account, observed: ObservedSubscription, catalogue: Mapping[str, TierPlan]
) -> tuple[ObservedPlan | None, Drift | None]:
    """The subscription's items against the prices of the account's applied tier. A tier change that
    waits for its invoice to be paid (pending) leaves the old prices in place on purpose."""
    tier = account.applied_tier
    if tier is None or account.pending_plan is not None or tier not in catalogue:
        return None, None
    plan = catalogue[tier]
    priced = [item for item in observed.items if item.quantity is not None]  # licensed, not metered
    seat_prices = {tier_plan.seat_price for tier_plan in catalogue.values() if tier_plan.seat_price}
    seat = next((item for item in priced if {item.price_id, item.lookup_key} & seat_prices), None)
    base = next(
        (item for item in priced if item is not seat and _tier_of(catalogue, item) is not None),
        next((item for item in priced if item.item_id == account.subscription_item_id), None),
    )
    if base is None:
        base = next((item for item in priced if item is not seat), None)
    if base is None:
        return None, None
    base_ok = plan.price in {base.price_id, base.lookup_key}
    seats_ok = (
        (seat is None)
        if plan.seat_price is None
        else (seat is not None and plan.seat_price in {seat.price_id, seat.lookup_key})
    )
    if base_ok and seats_ok:
        return None, None
    found = ObservedPlan(
        item_id=base.item_id,
        price_id=base.price_id,
        seat_item_id=seat.item_id if seat else None,
        seat_price_id=seat.price_id if seat else None,
    )
    stripe_tier = _tier_of(catalogue, base)
    described = stripe_tier or base.lookup_key or base.price_id
    if stripe_tier is None:
        # A price outside the catalogue: a deal someone made in Stripe, not a tier to move back from.
        return found, Drift(kind=DriftKind.PRICE, action=DriftAction.REPORTED, account=tier, stripe=described)
    if not seats_ok and base_ok:
        described = f"{stripe_tier} (seat item {'missing' if seat is None else 'on another price'})"
    return found, Drift(kind=DriftKind.PRICE, action=DriftAction.REPAIRED, account=tier, stripe=described)


def _tier_of(catalogue: Mapping[str, TierPlan], item: ObservedItem) -> str | None:
    return tier_for_price(catalogue, item.price_id, item.lookup_key)


def extra_subscription(account: Account | None, observed: ObservedSubscription) -> Drift | None:
    """A live subscription naming the tenant that is not the one the account records."""
    if not observed.live:
        return None
    if account is None:
        return Drift(kind=DriftKind.NO_ACCOUNT, action=DriftAction.REPORTED, stripe=observed.subscription_id)
    if account.status is AccountStatus.PENDING or account.subscription_id in (None, observed.subscription_id):
        return None  # an opening that has not recorded its subscription yet: resumed as `behind`
    return Drift(
        kind=DriftKind.EXTRA_SUBSCRIPTION,
        action=DriftAction.REPORTED,
        account=account.subscription_id,
        stripe=observed.subscription_id,
    )
