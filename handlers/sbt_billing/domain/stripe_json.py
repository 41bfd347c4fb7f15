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
