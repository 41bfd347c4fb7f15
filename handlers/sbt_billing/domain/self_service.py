"""Stripe's hosted pages for the tenant's admin: the customer portal (change plan, update the card, see
invoices, cancel if the deployment allows it) and Checkout in setup mode (give a payment method).

The portal's configuration is the stack's: the catalogue's tier prices are what the tenant may switch
between, prorated as the deployment prorates, downgrades scheduled for the period's end as it
schedules them, cancellation only when allowed (offboarding is SBT's job). It is found in Stripe by its
name (metadata), updated when it differs from what the deployment says, and created only when none
exists: never a duplicate, however often the stack deploys or a function starts.

What the tenant then does in those pages comes back through the webhook (stripe_self_service.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from sbt_billing.domain.billing_policy import CancellationMode
from sbt_billing.domain.catalogue import TierPlan
from sbt_billing.domain.errors import NotBillable, UnknownTenant
from sbt_billing.domain.frozen import Frozen
from sbt_billing.domain.models import Account, AccountStatus, digest_of
from sbt_billing.domain.plan_timing import PriceTerms
from sbt_billing.domain.ports import AccountStore


class PortalFlow(StrEnum):
    """A deep link into one of the portal's flows (without one, the portal's home page)."""

    PAYMENT_METHOD_UPDATE = "payment_method_update"
    SUBSCRIPTION_UPDATE = "subscription_update"
    SUBSCRIPTION_CANCEL = "subscription_cancel"


class PortalPolicy(Frozen):
    """The deployment's choices the portal follows."""

    name: str  # the configuration's name in Stripe (its metadata): one per deployment
    proration_behavior: str
    downgrades_at_period_end: bool
    cancellation: bool  # off by default: offboarding is SBT's job
    cancellation_mode: CancellationMode


class PortalConfiguration(Frozen):
    """What the stack's portal offers."""

    name: str
    prices: tuple[str, ...]  # the tiers' prices (ids) the tenant may switch between, catalogue order
    proration_behavior: str
    schedule_downgrades: bool
    cancellation: bool
    cancel_at_period_end: bool

    def digest(self) -> str:
        return digest_of(self.model_dump(mode="json"))


class HostedSession(Frozen):
    session_id: str
    url: str
    expires_at: datetime | None = None


class FlowNotOffered(NotBillable):
    """The portal flow asked for is not one this deployment's portal offers (cancellation is off)."""


class Offboarded(NotBillable):
    """The tenant is offboarded: no hosted page for it."""


class HostedPages(Protocol):
    """Stripe's portal and Checkout, as the domain sees them."""

    def portal_configuration(self, configuration: PortalConfiguration) -> str:
        """The id of the configuration named `configuration.name`: found, updated if it differs, or
        created when there is none."""
        ...

    def portal_session(
        self,
        customer_id: str,
        configuration_id: str,
        return_url: str,
        flow: PortalFlow | None,
        subscription_id: str | None,
    ) -> HostedSession: ...

    def checkout_session(
        self, tenant_id: str, customer_id: str, currency: str, success_url: str, cancel_url: str
    ) -> HostedSession: ...

    def price_terms(self, price_id: str) -> PriceTerms: ...


class SelfService:
    def __init__(
        self,
        store: AccountStore,
        pages: HostedPages,
        price_id: Callable[[str], str],
        catalogue: Mapping[str, TierPlan],
        policy: PortalPolicy,
    ) -> None:
        self._store = store
        self._pages = pages
        self._price_id = price_id  # a lookup key (or id) as a price id
        self._catalogue = catalogue
        self._policy = policy

    def configuration(self) -> PortalConfiguration:
        policy = self._policy
        return PortalConfiguration(
            name=policy.name,
            prices=tuple(dict.fromkeys(self._price_id(plan.price) for plan in self._catalogue.values())),
            proration_behavior=policy.proration_behavior,
            schedule_downgrades=policy.downgrades_at_period_end,
            cancellation=policy.cancellation,
            cancel_at_period_end=policy.cancellation_mode is CancellationMode.PERIOD_END,
        )

    def open_portal(self, tenant_id: str, return_url: str, flow: PortalFlow | None) -> HostedSession:
        """A portal session for the tenant's customer (a deep link into `flow`, if given)."""
        account = self._customer_account(tenant_id)
        assert account.customer_id is not None
        if flow is PortalFlow.SUBSCRIPTION_CANCEL and not self._policy.cancellation:
            raise FlowNotOffered("cancellation is not offered in this deployment's portal")
        subscription = None
        if flow in (PortalFlow.SUBSCRIPTION_UPDATE, PortalFlow.SUBSCRIPTION_CANCEL):
            subscription = account.subscription_id
            if subscription is None or account.subscription_status in ("canceled", "incomplete_expired"):
                raise NotBillable("the tenant has no live subscription to change")
        configuration = self._pages.portal_configuration(self.configuration())
        return self._pages.portal_session(account.customer_id, configuration, return_url, flow, subscription)

    def open_checkout(self, tenant_id: str, success_url: str, cancel_url: str) -> HostedSession:
        """A Checkout Session in setup mode: the tenant gives a payment method for its invoices, in the
        currency of its plan."""
        account = self._customer_account(tenant_id)
        assert account.customer_id is not None
        tier = account.applied_tier or account.desired.tier_value
        plan = self._catalogue.get(tier) if tier is not None else None
        price = account.price_id or (self._price_id(plan.price) if plan is not None else None)
        if price is None:
            raise NotBillable("the tenant has no plan yet: its currency is unknown")
        currency = self._pages.price_terms(price).currency
        return self._pages.checkout_session(tenant_id, account.customer_id, currency, success_url, cancel_url)

    def _customer_account(self, tenant_id: str) -> Account:
        account = self._store.get(tenant_id)
        if account is None:
            raise UnknownTenant(tenant_id)
        if account.status is AccountStatus.CLOSED or account.desired.closed is not None:
            raise Offboarded("the tenant is offboarded")
        if account.customer_id is None:
            raise NotBillable("the tenant has no Stripe customer yet")
        return account
