"""Helpers shared by the resource modules."""

from __future__ import annotations

import copy
from typing import Any

from .store import Obj


def snapshot(obj: Obj) -> Obj:
    return copy.deepcopy(obj)


def public(obj: Obj) -> Obj:
    """A copy of ``obj`` without the emulator's private ``_fields``, as the API shows it."""
    return copy.deepcopy({k: v for k, v in obj.items() if not k.startswith("_")})


def previous_attributes(before: Obj, after: Obj) -> Obj:
    """Top-level fields whose value changed, with their old values (as Stripe's events carry)."""
    prev: Obj = {}
    for key, old in before.items():
        if after.get(key) != old:
            prev[key] = copy.deepcopy(old)
    return prev


def money(amount: int, currency: str) -> str:
    symbols = {"usd": "$", "eur": "€", "gbp": "£"}
    sym = symbols.get(currency.lower())
    value = f"{abs(amount) / 100:,.2f}"
    sign = "-" if amount < 0 else ""
    return f"{sign}{sym}{value}" if sym else f"{sign}{value} {currency.upper()}"


def pick(d: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: d.get(k) for k in keys}
