"""Adopting the tenants a running SBT already has: each gets its billing account through the same
lifecycle as a tenant SBT onboards today, with the Stripe customer it may already have.

For each tenant, a plan step first (nothing is written until the plan is shown):

- a tenant SBT offboarded, one billing already has an account for, or one without a tier (or with a
  tier the catalogue lacks) is skipped, with the reason;
- a Stripe customer whose metadata.tenantId names the tenant is linked (LINK): the account opens with
  it, and with its live subscription on one of the catalogue's prices if it has one (else a new
  subscription on the tier's price). Two customers naming the tenant, two such subscriptions, or a live
  subscription outside the catalogue are left to a person (skipped, with the reason): adopting them
  could bill the tenant twice;
- failing that, a customer with the tenant's email and no tenantId at all may be the tenant's: linked
  the same way, but only with explicit confirmation (LINK_BY_EMAIL); two such customers are skipped;
- otherwise the account opens as any new tenant's (OPEN): a customer and a subscription created;
- an account an earlier run left opening (stopped part-way) is driven to its end (RESUME).

Applying a step is one `Lifecycle.open_account`: an account that exists by then (SBT's own events got
there first) changes nothing, and an opening interrupted part-way resumes with the same keys. So a run
stopped at any point and run again does nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum

from sbt_billing.domain.catalogue import TierPlan, tier_for_price
from sbt_billing.domain.drift import ObservedSubscription
from sbt_billing.domain.frozen import Frozen
from sbt_billing.domain.lifecycle import Lifecycle
from sbt_billing.domain.models import Account, AccountStatus, Adopted, TenantFacts
from sbt_billing.domain.ports import Clock
from sbt_billing.domain.results import Result


class SbtTenant(Frozen):
    """A tenant as SBT's tenant management lists it (or a row of an export of it)."""

    tenant_id: str
    name: str | None = None
    email: str | None = None
    tier: str | None = None
    registration_id: str | None = None
    offboarded: bool = False  # SBT deleted it (or is deleting it)


class StripeCustomer(Frozen):
    customer_id: str
    tenant_id: str | None = None  # its metadata.tenantId
    email: str | None = None


class AdoptionAction(StrEnum):
    OPEN = "open"  # no customer of its own in Stripe: one is created, as for a new tenant
    LINK = "link"  # its customer found by metadata.tenantId
    LINK_BY_EMAIL = "link_by_email"  # a customer with its email and no tenantId: only once confirmed
    RESUME = "resume"  # an opening under way or interrupted (an earlier run's): driven to its end
    SKIP = "skip"


class AdoptionStep(Frozen):
    tenant: SbtTenant
    action: AdoptionAction
    reason: str | None = None
    customer_id: str | None = None
    subscription_id: str | None = None  # the live subscription adopted with the customer
    subscription_tier: str | None = None  # its tier, when it is not the tenant's (the tier is then applied)

    @property
    def tenant_id(self) -> str:
        return self.tenant.tenant_id


class StripeIndex:
    """Stripe's customers and live subscriptions, listed once, looked up per tenant."""

    def __init__(self, customers: Sequence[StripeCustomer], live: Sequence[ObservedSubscription]) -> None:
        self.customers = len(customers)
        self.by_tenant: dict[str, list[StripeCustomer]] = {}
        self.by_email: dict[str, list[StripeCustomer]] = {}
        for customer in customers:
            if customer.tenant_id is not None:
                self.by_tenant.setdefault(customer.tenant_id, []).append(customer)
            elif customer.email:
                self.by_email.setdefault(customer.email.strip().lower(), []).append(customer)
        self.subscriptions: dict[str, list[ObservedSubscription]] = {}
        for subscription in live:
            if subscription.live:
                self.subscriptions.setdefault(subscription.customer_id, []).append(subscription)


def plan_step(
    tenant: SbtTenant,
    account: Account | None,
    stripe: StripeIndex,
    catalogue: Mapping[str, TierPlan],
) -> AdoptionStep:
    def skip(reason: str) -> AdoptionStep:
        return AdoptionStep(tenant=tenant, action=AdoptionAction.SKIP, reason=reason)

    if tenant.offboarded:
        return skip("offboarded in SBT")
    if account is not None and account.status is AccountStatus.OPENING:
        return AdoptionStep(tenant=tenant, action=AdoptionAction.RESUME, customer_id=account.customer_id)
    if account is not None and account.status is not AccountStatus.PENDING:
        return skip(f"already billed (account {account.status.value})")
    if tenant.tier is None:
        return skip("no tier: SBT's record names none (give one with --default-tier)")
    if tenant.tier not in catalogue:
        return skip(f"tier {tenant.tier!r} is not in the catalogue ({', '.join(sorted(catalogue))})")
    named = stripe.by_tenant.get(tenant.tenant_id, [])
    if len(named) > 1:
        return skip(f"{len(named)} Stripe customers name the tenant in metadata.tenantId: keep one first")
    if named:
        return _link(tenant, named[0], AdoptionAction.LINK, stripe, catalogue)
    same_email = stripe.by_email.get((tenant.email or "").strip().lower(), []) if tenant.email else []
    if len(same_email) > 1:
        return skip(f"{len(same_email)} Stripe customers without a tenantId have the tenant's email")
    if same_email:
        return _link(tenant, same_email[0], AdoptionAction.LINK_BY_EMAIL, stripe, catalogue)
    return AdoptionStep(tenant=tenant, action=AdoptionAction.OPEN)


def _link(
    tenant: SbtTenant,
    customer: StripeCustomer,
    action: AdoptionAction,
    stripe: StripeIndex,
    catalogue: Mapping[str, TierPlan],
) -> AdoptionStep:
    live = stripe.subscriptions.get(customer.customer_id, [])
    priced = [(subscription, _tier(subscription, catalogue)) for subscription in live]
    on_catalogue = [(subscription, tier) for subscription, tier in priced if tier is not None]
    outside = [subscription.subscription_id for subscription, tier in priced if tier is None]
    if len(on_catalogue) > 1:
        ids = ", ".join(subscription.subscription_id for subscription, _ in on_catalogue)
        return AdoptionStep(
            tenant=tenant,
            action=AdoptionAction.SKIP,
            customer_id=customer.customer_id,
            reason=f"its customer has {len(on_catalogue)} live subscriptions on the catalogue ({ids})",
        )
    if not on_catalogue and outside:
        return AdoptionStep(
            tenant=tenant,
            action=AdoptionAction.SKIP,
            customer_id=customer.customer_id,
            reason=f"its customer has live subscriptions outside the catalogue ({', '.join(outside)}): "
            "a new one would bill it twice",
        )
    subscription, tier = on_catalogue[0] if on_catalogue else (None, None)
    return AdoptionStep(
        tenant=tenant,
        action=action,
        customer_id=customer.customer_id,
        subscription_id=subscription.subscription_id if subscription else None,
        subscription_tier=tier if tier != tenant.tier else None,
    )


def _tier(subscription: ObservedSubscription, catalogue: Mapping[str, TierPlan]) -> str | None:
    for item in subscription.items:
        tier = tier_for_price(catalogue, item.price_id, item.lookup_key)
        if tier is not None:
            return tier
    return None


class AdoptionResult(StrEnum):
    OPENED = "opened"  # a new customer and subscription
    LINKED = "linked"  # the existing customer (and subscription) adopted
    RESUMED = "resumed"  # an opening an earlier run left part-way, finished
    UNCHANGED = "unchanged"  # the account was there already: nothing done
    FAILED = "failed"  # Stripe refused (reported on the bus by the lifecycle, as for any opening)


class Adoption:
    def __init__(self, lifecycle: Callable[[], Lifecycle], clock: Clock) -> None:
        self._lifecycle = lifecycle
        self._clock = clock

    def apply(self, step: AdoptionStep) -> tuple[AdoptionResult, str | None]:
        """Opens the tenant's account as the step says; (what happened, why it failed). Raises
        TransientBillingError (Stripe or AWS unavailable, the tenant busy): nothing lost, run again."""
        tenant = step.tenant
        assert step.action is not AdoptionAction.SKIP
        assert tenant.tier is not None
        facts = TenantFacts(
            tenant_id=tenant.tenant_id,
            name=tenant.name,
            email=tenant.email,
            tier=tenant.tier,
            occurred_at=self._clock.now(),
        )
        adopt = (
            Adopted(customer_id=step.customer_id, subscription_id=step.subscription_id)
            if step.customer_id is not None
            and step.action in (AdoptionAction.LINK, AdoptionAction.LINK_BY_EMAIL)
            else None
        )
        outcome = self._lifecycle().adopt_account(facts, registration_id=tenant.registration_id, adopt=adopt)
        if outcome.result is Result.FAILED:
            return AdoptionResult.FAILED, outcome.reason
        if outcome.result is not Result.APPLIED:
            return AdoptionResult.UNCHANGED, None
        if step.action is AdoptionAction.RESUME:
            return AdoptionResult.RESUMED, None
        return (AdoptionResult.LINKED if adopt is not None else AdoptionResult.OPENED), None
