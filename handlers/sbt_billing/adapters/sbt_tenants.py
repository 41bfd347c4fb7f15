"""The tenants a running SBT has: from its tenant management API (`GET /tenants`, signed with the
caller's IAM credentials, SigV4 for `execute-api`), or from an export of it (JSON: a list of tenant
records, or the API's `{"data": [...]}`; CSV: one record a row, SBT's field names as the header).

SBT's records hold `tenantId`, `tenantName`, `email`, `tier`, `tenantRegistrationId` and whatever the
control plane added; a deleted tenant is marked `sbtaws_active: false` (or a `tenantStatus` of
Deleting/Deleted). The API pages with `limit` and `start_key`, answering `next_start_key` while more
follow (SBT releases that do not page answer everything at once).
"""

from __future__ import annotations

import csv
import json
import re
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from sbt_billing.domain.adoption import SbtTenant

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+=-]{0,127}$")  # as the lifecycle's events accept
PAGE_SIZE = 100
TIMEOUT_SECONDS = 30


class TenantSourceError(Exception):
    """The tenants could not be read (the API refused, the file is not an export of them)."""


class SbtTenantApi:
    def __init__(self, base_url: str, credentials: Credentials, region: str) -> None:
        if urllib.parse.urlsplit(base_url).scheme not in ("https", "http"):
            raise TenantSourceError("the SBT API's URL must be https:// (http:// for a local one)")
        self._base = base_url.rstrip("/")
        self._credentials = credentials
        self._region = region

    def tenants(self) -> Iterator[Mapping[str, Any]]:
        start_key: str | None = None
        while True:
            query = {"limit": str(PAGE_SIZE)} | ({"start_key": start_key} if start_key else {})
            body = self._get(f"{self._base}/tenants?{urllib.parse.urlencode(query)}")
            records = body.get("data") if isinstance(body, dict) else body
            if not isinstance(records, list):
                raise TenantSourceError("GET /tenants answered no list of tenants (`data`)")
            yield from (record for record in records if isinstance(record, dict))
            following = body.get("next_start_key") if isinstance(body, dict) else None
            if not isinstance(following, str) or not following or following == start_key:
                return
            start_key = following

    def _get(self, url: str) -> Any:
        request = AWSRequest(method="GET", url=url, headers={"Accept": "application/json"})
        SigV4Auth(self._credentials, "execute-api", self._region).add_auth(request)
        # An http(s) URL, checked when the API was given.
        prepared = urllib.request.Request(url, headers=dict(request.headers.items()), method="GET")  # noqa: S310
        try:
            with urllib.request.urlopen(prepared, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise TenantSourceError(f"GET /tenants answered {error.code}") from None
        except (urllib.error.URLError, TimeoutError, ValueError) as error:
            raise TenantSourceError(f"GET /tenants failed: {type(error).__name__}") from None


def tenants_in_file(path: Path) -> Iterator[Mapping[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise TenantSourceError(f"{path}: cannot be read ({error.strerror})") from None
    if path.suffix.lower() == ".csv":
        yield from csv.DictReader(text.splitlines())
        return
    try:
        document = json.loads(text)
    except ValueError:
        raise TenantSourceError(f"{path}: is not JSON (nor a .csv file)") from None
    records = document.get("data") if isinstance(document, dict) else document
    if not isinstance(records, list):
        raise TenantSourceError(f"{path}: holds no list of tenants (a list, or `data`)")
    yield from (record for record in records if isinstance(record, dict))


def sbt_tenant(record: Mapping[str, Any]) -> SbtTenant | None:
    """A record as the domain's SbtTenant; None when it names no valid tenantId."""
    tenant_id = _text(record.get("tenantId"))
    if tenant_id is None or not ID_PATTERN.match(tenant_id):
        return None
    active = record.get("sbtaws_active")
    status = (_text(record.get("tenantStatus")) or "").lower()
    return SbtTenant(
        tenant_id=tenant_id,
        name=_text(record.get("tenantName")) or _text(record.get("name")),
        email=_text(record.get("email")),
        tier=_text(record.get("tier")),
        registration_id=_text(record.get("tenantRegistrationId")),
        offboarded=active is False or str(active).lower() == "false" or status.startswith("delet"),
    )


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None
