"""Reading Stripe's JSON objects (events, re-fetched objects) where a field may be an id or the object
it names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def object_id(value: Any) -> str | None:
    """An object's id, whether Stripe sent the id or the expanded object."""
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def metadata_tenant(obj: Mapping[str, Any]) -> str | None:
    """The tenant an object's `metadata.tenantId` names (None: none, or empty)."""
    tenant = (obj.get("metadata") or {}).get("tenantId")
    return tenant if isinstance(tenant, str) and tenant else None
