"""Stripe read a page at a time: the reconciler's listing of every subscription (its customer expanded,
so that a page of 100 subscriptions is one request) and of missed events, and the adoption tool's
listing of customers and live subscriptions. The gateway's writes come with it (a reconcile run's
repairs go through the same client and the same pace).

The two lists a reconcile run reads in bulk are asked for as plain JSON (`raw_request`), not as the
SDK's typed objects: building those for a page of 100 subscriptions with their customers costs more
CPU than the page's whole comparison, and they would be turned back into plain data at once. Their
parameters are the typed lists' (SubscriptionListParams, EventListParams), checked by mypy all the
same; errors go through the same seam.

A page of subscriptions names the cursor of the next: that page is asked for at once, in the
background, while the caller compares the one it has (a list read page after page waits Stripe's
answer time for every page otherwise). A caller that stops early leaves at most that one request unused.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sbt_billing.adapters.stripe_lookups import StripeLookups
from sbt_billing.domain.adoption import StripeCustomer
from sbt_billing.domain.drift import ObservedItem, ObservedSubscription
from sbt_billing.domain.errors import ResourceMissing, TransientBillingError
from sbt_billing.domain.reconcile_state import EventWindow, WindowKind
from sbt_billing.domain.stripe_json import metadata_tenant
from sbt_billing.domain.stripe_reports import HANDLED_EVENTS
from sbt_billing.domain.values import Page

if TYPE_CHECKING:
    from stripe.params import CustomerListParams, EventListParams, SubscriptionListParams

PAGE_SIZE = 100  # the most Stripe gives in one list request


class StripeListings(StripeLookups):
    _ahead: tuple[str, Future[Page[ObservedSubscription]]] | None = None
    _ahead_pool: ThreadPoolExecutor | None = None

    # -- reconciling ------------------------------------------------------------------------------

    def subscriptions(self, after: str | None) -> Page[ObservedSubscription]:
        ahead, self._ahead = self._ahead, None
        page = ahead[1].result() if ahead is not None and ahead[0] == after else self._subscriptions(after)
        if page.has_more and page.items:
            cursor = page.items[-1].subscription_id
            if self._ahead_pool is None:
                self._ahead_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stripe-list")
            context = contextvars.copy_context()  # the invocation's end, for the seam's rate-limit waits
            self._ahead = (cursor, self._ahead_pool.submit(context.run, self._subscriptions, cursor))
        return page

    def _subscriptions(self, after: str | None) -> Page[ObservedSubscription]:
        params: SubscriptionListParams = {"status": "all", "limit": PAGE_SIZE, "expand": ["data.customer"]}
        if after is not None:
            params["starting_after"] = after
        data, has_more = self._raw_list("/v1/subscriptions", dict(params))
        return Page(tuple(observed_subscription(item) for item in data), has_more)

    def observe_subscription(self, subscription_id: str) -> ObservedSubscription | None:
        try:
            found = self._call(
                lambda: self._client.v1.subscriptions.retrieve(
                    subscription_id, params={"expand": ["customer"]}
                )
            )
        except ResourceMissing:
            return None
        return observed_subscription(found.to_dict(recursive=True))

    def events(
        self, window: EventWindow, after: str | None = None, before: str | None = None
    ) -> Page[Mapping[str, Any]]:
        params: EventListParams = {
            "limit": PAGE_SIZE,
            "types": sorted(HANDLED_EVENTS),
            "created": {"gte": int(window.since.timestamp()), "lte": int(window.until.timestamp())},
        }
        if window.kind is WindowKind.UNDELIVERED:
            params["delivery_success"] = False
        if after is not None:
            params["starting_after"] = after
        if before is not None:
            params["ending_before"] = before
        data, has_more = self._raw_list("/v1/events", dict(params))
        return Page(tuple(data), has_more)

    def _raw_list(self, path: str, params: dict[str, Any]) -> tuple[list[dict[str, Any]], bool]:
        response = self._call(lambda: self._client.raw_request("get", path, **params))
        body = response.data
        data = body.get("data") if isinstance(body, Mapping) else None
        if not isinstance(data, list):
            raise TransientBillingError(f"Stripe's list {path} answered no `data`")
        return data, bool(body.get("has_more"))

    # -- adopting ---------------------------------------------------------------------------------

    def customers(self, after: str | None) -> Page[StripeCustomer]:
        params: CustomerListParams = {"limit": PAGE_SIZE}
        if after is not None:
            params["starting_after"] = after
        page = self._call(lambda: self._client.v1.customers.list(params=params))
        found = []
        for customer in page.data:
            data = customer.to_dict(recursive=True)
            email = data.get("email")
            found.append(
                StripeCustomer(
                    customer_id=str(data["id"]),
                    tenant_id=metadata_tenant(data),
                    email=email if isinstance(email, str) and email else None,
                )
            )
        return Page(tuple(found), page.has_more)

    def live_subscriptions(self, after: str | None) -> Page[ObservedSubscription]:
        """Subscriptions that have not ended (Stripe's default listing), newest first."""
        params: SubscriptionListParams = {"limit": PAGE_SIZE}
        if after is not None:
            params["starting_after"] = after
        page = self._call(lambda: self._client.v1.subscriptions.list(params=params))
        return Page(
            tuple(observed_subscription(item.to_dict(recursive=True)) for item in page.data), page.has_more
        )


def observed_subscription(found: Mapping[str, Any]) -> ObservedSubscription:
    """A subscription as Stripe renders it (its customer an id or expanded) in the domain's terms."""
    customer = found.get("customer")
    customer_tenant = None
    if isinstance(customer, Mapping):
        customer_id = str(customer.get("id"))
        deleted = bool(customer.get("deleted"))
        customer_tenant = metadata_tenant(customer)
    else:
        customer_id, deleted = str(customer), False
    items = []
    for item in (found.get("items") or {}).get("data") or []:
        price = item.get("price") or {}
        metered = (price.get("recurring") or {}).get("usage_type") == "metered"
        quantity = item.get("quantity")
        items.append(
            ObservedItem(
                item_id=str(item["id"]),
                price_id=str(price.get("id")),
                lookup_key=price.get("lookup_key") if isinstance(price.get("lookup_key"), str) else None,
                quantity=None if metered or not isinstance(quantity, int) else quantity,
            )
        )
    cancel_at = found.get("cancel_at")
    return ObservedSubscription(
        subscription_id=str(found["id"]),
        customer_id=customer_id,
        customer_deleted=deleted,
        customer_tenant=customer_tenant,
        tenant=metadata_tenant(found),
        status=str(found.get("status")),
        items=tuple(items),
        cancel_at_period_end=bool(found.get("cancel_at_period_end")),
        cancel_at=datetime.fromtimestamp(cancel_at, UTC) if isinstance(cancel_at, int) else None,
    )
