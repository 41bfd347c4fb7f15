"""The adoption tool (scripts/adopt): the same lifecycle, stores and paced Stripe client as the reconcile
function, in the operator's process, with the deployment's settings (read from the deployed function,
or from the environment), and the operator's AWS credentials."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import boto3

from sbt_billing.adapters.adoption_checkpoint import FileCheckpoint
from sbt_billing.adapters.clock import SystemClock
from sbt_billing.adapters.deployment import deployed_environment
from sbt_billing.adapters.sbt_tenants import SbtTenantApi, TenantSourceError, sbt_tenant, tenants_in_file
from sbt_billing.bootstrap.clients import forget_clients
from sbt_billing.bootstrap.lifecycle import catalogue, lifecycle
from sbt_billing.bootstrap.reconcile import listings, pacer
from sbt_billing.bootstrap.reconcile_stores import account_directory, reconcile_store
from sbt_billing.bootstrap.seats import seats
from sbt_billing.bootstrap.settings import Settings, settings
from sbt_billing.domain.adoption import Adoption, SbtTenant, StripeIndex
from sbt_billing.domain.catalogue import TierPlan
from sbt_billing.domain.models import Account
from sbt_billing.domain.reconcile_state import ReconcileReport
from sbt_billing.domain.values import Page

__all__ = ["TenantSourceError"]

BATCH = 100


def use_deployment(stack: str | None, rate: float) -> Settings:
    """The settings the tool runs with: the deployed stack's (`stack`), else the environment's, its Stripe
    requests paced at `rate` a second."""
    if stack is not None:
        os.environ.update(deployed_environment(boto3.client("cloudformation"), boto3.client("lambda"), stack))
    os.environ["STRIPE_REQUESTS_PER_SECOND"] = str(rate)
    forget_clients()
    return settings()


def tenants_from(api: str | None, file: Path | None, region: str | None) -> list[SbtTenant | None]:
    """SBT's tenants, each as a SbtTenant (None for a record that names no valid tenantId)."""
    if file is not None:
        records = list(tenants_in_file(file))
    else:
        assert api is not None
        session = boto3.Session()
        credentials = session.get_credentials()
        if credentials is None:
            raise TenantSourceError("no AWS credentials to sign the SBT API's requests with")
        found_region = region or session.region_name or _region_of(api)
        if found_region is None:
            raise TenantSourceError("no region for the SBT API's signature: pass --region")
        records = list(SbtTenantApi(api, credentials.get_frozen_credentials(), found_region).tenants())  # type: ignore[arg-type]
    return [sbt_tenant(record) for record in records]


def _region_of(url: str) -> str | None:
    """The region of an API Gateway URL (https://<id>.execute-api.<region>.amazonaws.com/...)."""
    host = url.split("//", 1)[-1].split("/", 1)[0].split(".")
    return host[2] if len(host) > 3 and host[1] == "execute-api" else None


def stripe_index(on_request: Callable[[], None]) -> StripeIndex:
    """Stripe's customers and live subscriptions, 100 a request (`on_request` told of each)."""
    gateway = listings()
    customers = _every(gateway.customers, lambda customer: customer.customer_id, on_request)
    live = _every(gateway.live_subscriptions, lambda subscription: subscription.subscription_id, on_request)
    return StripeIndex(customers, live)


def _every[T](
    read: Callable[[str | None], Page[T]], key: Callable[[T], str], on_request: Callable[[], None]
) -> list[T]:
    found: list[T] = []
    after: str | None = None
    while True:
        page = read(after)
        on_request()
        found.extend(page.items)
        if not page.has_more or not page.items:
            return found
        after = key(page.items[-1])


def accounts_of(tenant_ids: Sequence[str]) -> dict[str, Account]:
    store = account_directory()
    found: dict[str, Account] = {}
    for start in range(0, len(tenant_ids), BATCH):
        found.update(store.get_many(tenant_ids[start : start + BATCH]))
    return found


def tier_catalogue() -> Mapping[str, TierPlan]:
    return catalogue()


def adoption() -> Adoption:
    """The lifecycle with the paced client; one lease owner for the whole run."""
    gateway = listings()
    one = lifecycle(billing=gateway, with_seats=seats(billing=gateway))
    return Adoption(lambda: one, SystemClock())


def checkpoint(path: Path) -> FileCheckpoint:
    return FileCheckpoint(path)


def stripe_requests_made() -> int:
    """The Stripe requests this process made so far (each waited for its turn in the pace)."""
    paced = pacer()
    return paced.requests if paced is not None else 0


def last_reconcile_report() -> ReconcileReport | None:
    """The reconcile function's latest pass (None when the deployment has no reconcile table, or no pass)."""
    if not settings().reconcile_table:
        return None
    state = reconcile_store().load_pass()
    return state.report if state is not None else None
