"""Helpers shared by the resource modules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .params import Params
from .store import Obj, clone


def snapshot(obj: Obj) -> Obj:
    return clone(obj)  # type: ignore[no-any-return]


def public(obj: Obj) -> Obj:
    """A copy of ``obj`` without the emulator's private ``_fields``, as the API shows it."""
    return {k: clone(v) for k, v in obj.items() if not k.startswith("_")}


def previous_attributes(before: Obj, after: Obj) -> Obj:
    """Top-level fields whose value changed, with their old values (as Stripe's events carry)."""
    prev: Obj = {}
    for key, old in before.items():
        if after.get(key) != old:
            prev[key] = clone(old)
    return prev


def money(amount: int, currency: str) -> str:
    symbols = {"usd": "$", "eur": "€", "gbp": "£"}
    sym = symbols.get(currency.lower())
    value = f"{abs(amount) / 100:,.2f}"
    sign = "-" if amount < 0 else ""
    return f"{sign}{sym}{value}" if sym else f"{sign}{value} {currency.upper()}"


def pick(d: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: d.get(k) for k in keys}


def created_filter(p: Params, name: str) -> Callable[[int], bool]:
    """A list's timestamp filter: ``created=t`` (that second) or ``created[gt|gte|lt|lte]=t``."""
    if not p.has(name):
        return lambda _: True
    if not isinstance(p.raw(name), dict):
        exact = p.int(name)
        return lambda t: t == exact
    bounds = p.sub(name)
    assert bounds is not None
    bounds.check({"gt", "gte", "lt", "lte"})
    gt, gte, lt, lte = (bounds.int(k) for k in ("gt", "gte", "lt", "lte"))
    return lambda t: (
        (gt is None or t > gt)
        and (gte is None or t >= gte)
        and (lt is None or t < lt)
        and (lte is None or t <= lte)
    )
