"""The HTTP side: SigV4-signed requests with urllib, answers parsed into the models, errors by status."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import asdict
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.session import Session, get_session

from .errors import BillingApiError, error_for
from .models import (
    Address,
    BillingChange,
    BillingStatus,
    HostedSession,
    Invoice,
    PlanPreview,
    TenantBilling,
)

SERVICE = "execute-api"


def _user_agent() -> str:
    try:
        return f"sbt-billing-client/{version('sbt-billing-client')}"
    except PackageNotFoundError:  # the package's folder copied into the caller's code
        return "sbt-billing-client"


USER_AGENT = _user_agent()


class BillingClient:
    """`base_url` is the API's stage URL (the stack's BillingApiUrl output). Credentials and region
    come from botocore's usual chain (the function's role on Lambda) unless given."""

    def __init__(
        self,
        base_url: str,
        *,
        region: str | None = None,
        credentials: Credentials | None = None,
        session: Session | None = None,
        timeout: float = 5.0,
    ) -> None:
        if not base_url.startswith(("https://", "http://")):
            raise ValueError("base_url must be the API's https:// stage URL")
        self._base = base_url.rstrip("/")
        self._session = session or get_session()
        self._credentials = credentials
        region = region or self._session.get_config_variable("region") or _region_of(self._base)
        if not region:
            raise ValueError("no region: pass region= or configure AWS_REGION")
        self._region = region
        self._timeout = timeout

    # -- the API ----------------------------------------------------------------------------------

    def status(self, tenant_id: str) -> BillingStatus:
        """The gate: may this tenant provision or create resources now? (One DynamoDB read.)"""
        return BillingStatus.from_json(self._get(f"/tenants/{_segment(tenant_id)}/billing/status"))

    def billing(self, tenant_id: str, *, limit: int = 10, starting_after: str | None = None) -> TenantBilling:
        """Customer, plan, subscription, next invoice and one page of invoices (newest first)."""
        query: dict[str, str] = {"limit": str(limit)}
        if starting_after is not None:
            query["startingAfter"] = starting_after
        return TenantBilling.from_json(self._get(f"/tenants/{_segment(tenant_id)}/billing", query))

    def invoices(self, tenant_id: str, *, page_size: int = 25) -> Iterator[Invoice]:
        """Every invoice of the tenant, newest first, page by page."""
        cursor: str | None = None
        while True:
            page = self.billing(tenant_id, limit=page_size, starting_after=cursor).invoices
            yield from page.invoices
            if not page.has_more or page.next_cursor is None:
                return
            cursor = page.next_cursor

    def update(
        self,
        tenant_id: str,
        *,
        tier: str | None = None,
        tenant_name: str | None = None,
        email: str | None = None,
        address: Address | None = None,
        proration_date: int | datetime | None = None,
        idempotency_key: str | None = None,
    ) -> BillingChange:
        """Changes the tenant's tier and/or details; answers once Stripe has the change. Pass an
        `idempotency_key` (e.g. a uuid4 per user action) to retry safely: a retry with the same key
        returns the first answer. Raises PaymentRequired (the invoice to pay), Busy (retry after
        `retry_after` seconds), Conflict (offboarded), IdempotencyKeyReused, InvalidRequest, TenantNotFound."""
        body: dict[str, Any] = {}
        if tier is not None:
            body["tier"] = tier
        if tenant_name is not None:
            body["tenantName"] = tenant_name
        if email is not None:
            body["email"] = email
        if address is not None:
            body["address"] = {
                "postalCode" if key == "postal_code" else key: value
                for key, value in asdict(address).items()
                if value is not None
            }
        if proration_date is not None:
            body["prorationDate"] = (
                int(proration_date.timestamp()) if isinstance(proration_date, datetime) else proration_date
            )
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return BillingChange.from_json(
            self._request("PATCH", f"/tenants/{_segment(tenant_id)}/billing", body=body, headers=headers)
        )

    def preview(self, tenant_id: str, tier: str, *, proration_date: int | None = None) -> PlanPreview:
        """What changing the tenant to `tier` costs now and on the next invoice (Stripe's preview).
        Pass its `proration_date` to update() to be invoiced exactly what it showed."""
        query = {"tier": tier}
        if proration_date is not None:
            query["prorationDate"] = str(proration_date)
        return PlanPreview.from_json(self._get(f"/tenants/{_segment(tenant_id)}/billing/preview", query))

    def portal_session(self, tenant_id: str, return_url: str, *, flow: str | None = None) -> HostedSession:
        """A Stripe customer portal session for the tenant (change plan, update the card, see invoices):
        redirect the tenant's browser to its `url`. `flow` deep-links into `payment_method_update`,
        `subscription_update` or `subscription_cancel` (where the deployment allows cancellation).
        Raises Conflict (no customer yet, or offboarded), InvalidRequest, TenantNotFound."""
        body: dict[str, Any] = {"returnUrl": return_url}
        if flow is not None:
            body["flow"] = flow
        return HostedSession.from_json(
            self._request("POST", f"/tenants/{_segment(tenant_id)}/billing/portal-session", body=body)
        )

    def checkout_session(self, tenant_id: str, success_url: str, cancel_url: str) -> HostedSession:
        """A Stripe Checkout Session in setup mode: the tenant gives a payment method for its invoices.
        Redirect its browser to `url`; once it completes, the gate's `payment_method_required` lifts
        and the subscription is charged automatically."""
        body = {"successUrl": success_url, "cancelUrl": cancel_url}
        return HostedSession.from_json(
            self._request("POST", f"/tenants/{_segment(tenant_id)}/billing/checkout-session", body=body)
        )

    def openapi(self) -> dict[str, Any]:
        return self._get("/billing/openapi.json")

    # -- signing and transport --------------------------------------------------------------------

    def _get(self, path: str, query: Mapping[str, str] | None = None) -> dict[str, Any]:
        return self._request("GET", path, query)

    def _request(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        url = self._base + path + (f"?{urllib.parse.urlencode(sorted(query.items()))}" if query else "")
        data = json.dumps(body).encode() if body is not None else None
        sent = {"Accept": "application/json", "User-Agent": USER_AGENT, **(headers or {})}
        if data is not None:
            sent["Content-Type"] = "application/json"
        signed = AWSRequest(method=method, url=url, headers=sent, data=data)
        credentials = self._credentials or self._session.get_credentials()
        if credentials is None:
            raise BillingApiError(403, "no_credentials", "no AWS credentials to sign the request with")
        SigV4Auth(credentials, SERVICE, self._region).add_auth(signed)
        request = urllib.request.Request(  # noqa: S310 - http(s) only, checked in __init__
            url, data=data, headers=dict(signed.headers.items()), method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310 - http(s) only, checked above
                answer = response.read()
        except urllib.error.HTTPError as error:
            raise _error(error.code, error.read(), error.headers.get("Retry-After")) from None
        except OSError as error:
            raise error_for(503, "unreachable", str(error)) from None
        document = json.loads(answer)
        if not isinstance(document, dict):
            raise error_for(502, "bad_response", "the API answered something other than a JSON object")
        return document


def _segment(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _region_of(base_url: str) -> str | None:
    """abc123.execute-api.<region>.amazonaws.com"""
    host = urllib.parse.urlsplit(base_url).hostname or ""
    parts = host.split(".")
    return parts[2] if len(parts) > 3 and parts[1] == "execute-api" else None


def _error(status: int, raw: bytes, retry_after: str | None = None) -> BillingApiError:
    try:
        document = json.loads(raw)
    except ValueError:
        document = {}
    error = document.get("error") if isinstance(document, dict) else None
    if isinstance(error, dict):
        invoice = error.get("invoice")
        return error_for(
            status,
            str(error.get("code", "error")),
            str(error.get("message", "")),
            retry_after=_seconds(retry_after),
            invoice=Invoice.from_json(invoice) if isinstance(invoice, dict) else None,
        )
    # API Gateway's own refusals (e.g. a missing or bad signature) are {"message": "..."}.
    message = document.get("message", "") if isinstance(document, dict) else ""
    return error_for(status, "gateway", str(message))


def _seconds(retry_after: str | None) -> float | None:
    try:
        return float(retry_after) if retry_after else None
    except ValueError:
        return None
