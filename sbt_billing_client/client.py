"""The HTTP side: SigV4-signed GETs with urllib, answers parsed into the models, errors by status."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.session import Session, get_session

from .errors import BillingApiError, error_for
from .models import BillingStatus, Invoice, TenantBilling

SERVICE = "execute-api"
USER_AGENT = "sbt-billing-client/1.0"


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

    def openapi(self) -> dict[str, Any]:
        return self._get("/billing/openapi.json")

    # -- signing and transport --------------------------------------------------------------------

    def _get(self, path: str, query: Mapping[str, str] | None = None) -> dict[str, Any]:
        url = self._base + path + (f"?{urllib.parse.urlencode(sorted(query.items()))}" if query else "")
        signed = AWSRequest(
            method="GET", url=url, headers={"Accept": "application/json", "User-Agent": USER_AGENT}
        )
        credentials = self._credentials or self._session.get_credentials()
        if credentials is None:
            raise BillingApiError(403, "no_credentials", "no AWS credentials to sign the request with")
        SigV4Auth(credentials, SERVICE, self._region).add_auth(signed)
        request = urllib.request.Request(url, headers=dict(signed.headers.items()), method="GET")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310 - http(s) only, checked above
                body = response.read()
        except urllib.error.HTTPError as error:
            raise _error(error.code, error.read()) from None
        except OSError as error:
            raise error_for(503, "unreachable", str(error)) from None
        document = json.loads(body)
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


def _error(status: int, raw: bytes) -> BillingApiError:
    try:
        document = json.loads(raw)
    except ValueError:
        document = {}
    error = document.get("error") if isinstance(document, dict) else None
    if isinstance(error, dict):
        return error_for(status, str(error.get("code", "error")), str(error.get("message", "")))
    # API Gateway's own refusals (e.g. a missing or bad signature) are {"message": "..."}.
    message = document.get("message", "") if isinstance(document, dict) else ""
    return error_for(status, "gateway", str(message))
