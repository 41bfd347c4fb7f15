"""Reading Stripe's JSON objects (events, re-fetched objects, API answers as data): a field that may be an
id or the object it names, strings and times that may be absent, an invoice as the account records it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sbt_billing.domain.models import InvoiceFact


def object_id(value: Any) -> str | None:
    """An object's id, whether Stripe sent the id or the expanded object."""
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def metadata_tenant(obj: Mapping[str, Any]) -> str | None:
    """The tenant an object's `metadata.tenantId` names (None: none, or empty)."""
    tenant = (obj.get("metadata") or {}).get("tenantId")
    return tenant if isinstance(tenant, str) and tenant else None


def text(value: Any) -> str | None:
    """A string field's value (None: absent, empty or not a string)."""
    return value if isinstance(value, str) and value else None


def from_epoch(value: Any) -> datetime | None:
    """A time field (Unix seconds) as a datetime (None: absent or not a number)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return datetime.fromtimestamp(value, UTC)


def invoice_fact(obj: Mapping[str, Any]) -> InvoiceFact:
    """An invoice (an event's object, or an API answer as data) as the account records it."""
    return InvoiceFact(
        invoice_id=str(obj["id"]),
        number=text(obj.get("number")),
        status=text(obj.get("status")),
        amount_due=int(obj.get("amount_due") or 0),
        amount_paid=int(obj.get("amount_paid") or 0),
        currency=text(obj.get("currency")),
        due_date=from_epoch(obj.get("due_date")),
        hosted_invoice_url=text(obj.get("hosted_invoice_url")),
        attempt_count=int(obj.get("attempt_count") or 0),
        created=from_epoch(obj.get("created")),
    )
