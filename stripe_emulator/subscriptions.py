"""Subscriptions and subscription items: lifecycle, prorations, cancellation, renewals.

Creating a subscription (first invoice is finalized at once):

* ``collection_method=send_invoice`` -> ``active``, first invoice ``open`` with a due date
  (``days_until_due`` is required). Licensed items bill ``unit_amount x quantity``; metered
  items appear as $0 lines (usage is billed in arrears).
* a trial (``trial_period_days``/``trial_end``) -> ``trialing`` with a $0 invoice, paid.
* ``charge_automatically`` with a usable payment method (``default_payment_method`` on the
  subscription, or the customer's ``invoice_settings.default_payment_method``) -> ``active``,
  invoice paid. Payment methods whose id contains "declined" (``pm_card_chargeDeclined``) fail.
* ``charge_automatically`` with no trial and no payment method -> ``incomplete`` with the
  first invoice ``open`` (the ``default_incomplete`` outcome). This is a deliberate choice
  for every ``payment_behavior`` except ``error_if_incomplete``, which answers 400 as Stripe
  does. Real Stripe may instead reject ``allow_incomplete`` without a payment method, so
  product code that relies on ``incomplete`` should pass ``payment_behavior=default_incomplete``.
  Paying that invoice makes the subscription ``active``; unpaid for 23 hours -> ``incomplete_expired``.

Prorations follow Stripe's documented maths (see README): credit for unused time on the old
price x quantity, charge for the remaining time on the new one, each
``round_half_up(amount x seconds_remaining / seconds_in_period)``.

Time: whenever the emulator clock has moved, the due index (``due.py``) applies what fell due:
trial ends, scheduled cancellations, renewals (invoice for the new period, finalized at once
rather than Stripe's ~1 hour draft window), payment retries and the incomplete expiry.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from . import invoices, meters, pending_updates
from .common import money, previous_attributes, public
from .errors import StripeError, invalid, missing_param, no_such
from .params import Params, apply_metadata
from .store import Kind, Obj, clone

if TYPE_CHECKING:
    from .server import Emulator, Request

DAY = 86400
INCOMPLETE_EXPIRY = 23 * 3600
TRIAL_WILL_END_NOTICE = 3 * DAY
_TRIAL_WILL_END = "_trial_will_end_sent_for"  # the trial end the notice was sent for
TIMES = "\u00d7"  # Stripe's line descriptions read "2 \u00d7 Basic (at $10.00 / month)"
MAX_TRIAL_DAYS = 730
LIVE = ("active", "past_due", "unpaid", "trialing", "incomplete", "paused")
PRORATING = ("active", "past_due", "unpaid")
PRORATION_BEHAVIORS = ["create_prorations", "always_invoice", "none"]
PAYMENT_BEHAVIORS = ["allow_incomplete", "default_incomplete", "error_if_incomplete", "pending_if_incomplete"]

CREATE_PARAMS = {
    "customer",
    "items",
    "collection_method",
    "days_until_due",
    "trial_period_days",
    "trial_end",
    "trial_settings",
    "payment_behavior",
    "proration_behavior",
    "metadata",
    "description",
    "default_payment_method",
    "cancel_at_period_end",
    "cancel_at",
    "currency",
    "off_session",
    "payment_settings",
    "automatic_tax",
    "trial_from_plan",
}
UPDATE_PARAMS = {
    "items",
    "proration_behavior",
    "proration_date",
    "cancel_at_period_end",
    "cancel_at",
    "metadata",
    "trial_end",
    "pause_collection",
    "description",
    "default_payment_method",
    "collection_method",
    "days_until_due",
    "payment_behavior",
    "cancellation_details",
    "off_session",
    "payment_settings",
    "trial_settings",
    "automatic_tax",
    "trial_from_plan",
}
ITEM_PARAMS = {"id", "price", "quantity", "deleted", "metadata", "clear_usage"}
CANCELLATION_FEEDBACK = [
    "customer_service",
    "low_quality",
    "missing_features",
    "other",
    "switched_service",
    "too_complex",
    "too_expensive",
    "unused",
]


def register(emu: Emulator) -> None:
    emu.store.register(Kind("subscription", "sub", "subscriptions", lambda s: render(emu, s)))
    emu.store.register(Kind("subscription_item", "si", "subscription_items", lambda i: render_item(emu, i)))
    emu.due.add_source("sub", "subscriptions", _next_due, _apply_due, rank=2)
    emu.due.add_source("in", "invoices", _next_retry, _retry, rank=3)
    r = emu.router
    r.add("POST /v1/subscriptions", create, CREATE_PARAMS)
    r.add(
        "GET /v1/subscriptions",
        list_subscriptions,
        {
            "customer",
            "price",
            "status",
            "collection_method",
            "limit",
            "starting_after",
            "ending_before",
            "created",
            "current_period_end",
            "current_period_start",
            "plan",
            "test_clock",
            "automatic_tax",
        },
    )
    r.add("GET /v1/subscriptions/{id}", retrieve)
    r.add("POST /v1/subscriptions/{id}", update, UPDATE_PARAMS)
    r.add("DELETE /v1/subscriptions/{id}", cancel, {"invoice_now", "prorate", "cancellation_details"})
    r.add(
        "POST /v1/subscription_items",
        create_item,
        {
            "subscription",
            "price",
            "quantity",
            "proration_behavior",
            "proration_date",
            "metadata",
            "payment_behavior",
        },
    )
    r.add(
        "GET /v1/subscription_items", list_items, {"subscription", "limit", "starting_after", "ending_before"}
    )
    r.add("GET /v1/subscription_items/{id}", retrieve_item)
    r.add(
        "POST /v1/subscription_items/{id}",
        update_item,
        {
            "price",
            "quantity",
            "proration_behavior",
            "proration_date",
            "metadata",
            "payment_behavior",
            "off_session",
        },
    )
    r.add(
        "DELETE /v1/subscription_items/{id}",
        delete_item,
        {"proration_behavior", "proration_date", "clear_usage", "payment_behavior"},
    )


# for the modules built on subscriptions (schedules, the billing portal) ---------------------------
def price_of(emu: Emulator, price_id: str) -> Obj:
    return _price(emu, price_id)


def period_of(emu: Emulator, sub: Obj) -> tuple[int, int]:
    """The current billing period ``[start, end)``."""
    return _period(emu, sub)


def record_change(emu: Emulator, sub: Obj, before: Obj) -> None:
    """``customer.subscription.updated`` with what changed since ``before`` (rendered), if anything."""
    _changed(emu, sub, before)


def resolve_price(emu: Emulator, ip: Params, param: str) -> Obj:
    """The active recurring price ``ip[price]`` names, or Stripe's error."""
    return _resolve_price(emu, ip, param)


def check_compatible(prices: list[Obj]) -> None:
    _check_compatible(prices)


def set_trial_end(emu: Emulator, sub: Obj, trial_end: int | str) -> None:
    _set_trial_end(emu, sub, trial_end)


# time arithmetic --------------------------------------------------------------------------------
def add_interval(ts: int, interval: str, count: int, n: int = 1) -> int:
    """``ts`` plus ``n`` x (``count`` ``interval``s), by the calendar in UTC (Jan 31 + 1 month = Feb 28)."""
    dt = datetime.fromtimestamp(ts, UTC)
    if interval == "day":
        return int((dt + timedelta(days=count * n)).timestamp())
    if interval == "week":
        return int((dt + timedelta(weeks=count * n)).timestamp())
    months = count * n * (12 if interval == "year" else 1)
    total = dt.month - 1 + months
    year, month = dt.year + total // 12, total % 12 + 1
    day = min(dt.day, calendar.monthrange(year, month)[1])
    return int(dt.replace(year=year, month=month, day=day).timestamp())


def prorate(amount: int, at: int, start: int, end: int) -> int:
    """``amount`` x (end - at) / (end - start), rounded half up to the cent (minor unit)."""
    if end <= start:
        return 0
    exact = Decimal(amount) * Decimal(end - at) / Decimal(end - start)
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _date(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%d %b %Y")


# rendering --------------------------------------------------------------------------------------
def items_of(emu: Emulator, sub: Obj) -> list[Obj]:
    """The subscription's items, in creation order."""
    return emu.store.coll("subscription_items").grouped("subscription", sub["id"])


def _plan(price: Obj) -> Obj:
    rec = price["recurring"] or {}
    return {
        "id": price["id"],
        "object": "plan",
        "active": price["active"],
        "amount": price["unit_amount"],
        "amount_decimal": price["unit_amount_decimal"],
        "billing_scheme": price["billing_scheme"],
        "created": price["created"],
        "currency": price["currency"],
        "interval": rec.get("interval"),
        "interval_count": rec.get("interval_count"),
        "livemode": False,
        "metadata": dict(price["metadata"]),
        "meter": rec.get("meter"),
        "nickname": price["nickname"],
        "product": price["product"],
        "tiers_mode": None,
        "transform_usage": None,
        "trial_period_days": rec.get("trial_period_days"),
        "usage_type": rec.get("usage_type"),
    }


def render_item(emu: Emulator, item: Obj) -> Obj:
    out = public(item)
    if item.get("deleted"):
        return out
    price = emu.store.render(emu.store.coll("prices")[item["price"]])
    out["price"] = price
    out["plan"] = _plan(price)
    if _metered(price):
        out.pop("quantity", None)
    return out


def render(emu: Emulator, sub: Obj) -> Obj:
    out = public(sub)
    data = [render_item(emu, i) for i in items_of(emu, sub)]
    out["items"] = {
        "object": "list",
        "data": data,
        "has_more": False,
        "total_count": len(data),
        "url": f"/v1/subscription_items?subscription={sub['id']}",
    }
    return out


def _metered(price: Obj) -> bool:
    return bool((price.get("recurring") or {}).get("usage_type") == "metered")


def _price(emu: Emulator, price_id: str) -> Obj:
    return emu.store.coll("prices")[price_id]


def _product_name(emu: Emulator, price: Obj) -> str:
    prod = emu.store.coll("products").get(price["product"]) or {}
    return str(prod.get("name") or price["product"])


def _interval_text(price: Obj) -> str:
    rec = price["recurring"]
    if rec["interval_count"] == 1:
        return str(rec["interval"])
    return f"every {rec['interval_count']} {rec['interval']}s"


def _item_amount(emu: Emulator, item: Obj) -> int:
    price = _price(emu, item["price"])
    return 0 if _metered(price) else int(price["unit_amount"]) * int(item.get("quantity") or 0)


def _period_line(
    emu: Emulator,
    sub: Obj,
    item: Obj,
    period: tuple[int, int],
    trial: bool = False,
    usage_period: tuple[int, int] | None = None,
) -> Obj:
    """A line for ``period``; metered items bill usage in arrears over ``usage_period`` if given."""
    price = _price(emu, item["price"])
    qty = 0 if _metered(price) else int(item["quantity"])
    name = _product_name(emu, price)
    amount = _item_amount(emu, item)
    if _metered(price) and usage_period is not None and not trial:
        # The meter's aggregation for the customer over the past period x unit price; usage
        # before the item existed is not billed (usage-based/manage-billing-setup).
        start = max(usage_period[0], int(item.get("created") or usage_period[0]))
        usage = meters.billable_usage(
            emu, price["recurring"].get("meter"), sub["customer"], start, usage_period[1]
        )
        qty = int(usage.to_integral_value())
        amount = meters.usage_amount(price["unit_amount_decimal"], usage)
        period = usage_period
    if trial:
        desc, amount = f"Trial period for {name}", 0
    else:
        desc = f"{qty} {TIMES} {name} (at {money(price['unit_amount'], price['currency'])} / {_interval_text(price)})"
    return invoices.make_line(
        emu,
        amount=amount,
        currency=price["currency"],
        description=desc,
        period=period,
        price=price,
        quantity=qty,
        subscription=sub["id"],
        subscription_item=item["id"],
    )


# status changes ---------------------------------------------------------------------------------
def _changed(emu: Emulator, sub: Obj, before: Obj, event: str = "customer.subscription.updated") -> None:
    after = emu.store.render(sub)
    prev = previous_attributes(before, after)
    if prev or event != "customer.subscription.updated":
        emu.store.record_event(event, sub, prev or None)


def set_status(emu: Emulator, sub: Obj, status: str) -> None:
    if sub["status"] != status:
        before = emu.store.render(sub)
        sub["status"] = status
        _changed(emu, sub, before)


def on_invoice_paid(emu: Emulator, sub: Obj, inv: Obj) -> None:
    if pending_updates.is_pending_invoice(sub, inv):
        before = emu.store.render(sub)
        pending_updates.apply(emu, sub)
        _changed(emu, sub, before)
        emu.store.record_event("customer.subscription.pending_update_applied", sub)
    if sub["status"] in ("incomplete", "past_due", "unpaid"):
        still_open = [
            i
            for i in emu.store.coll("invoices").values()
            if i["status"] == "open" and i["id"] != inv["id"] and invoices.subscription_id(i) == sub["id"]
        ]
        if not still_open:
            set_status(emu, sub, "active")


def on_payment_failed(emu: Emulator, sub: Obj, inv: Obj, exhausted: bool) -> None:
    if not pending_updates.failure_moves_status(sub, inv):
        return
    if sub["status"] in ("active", "trialing"):
        set_status(emu, sub, "past_due")
    if exhausted and sub["status"] == "past_due":
        outcome = emu.settings.payment_failure_outcome
        if outcome == "canceled":
            cancel_now(emu, sub, reason="payment_failed")
        elif outcome == "unpaid":
            set_status(emu, sub, "unpaid")


def cancel_now(
    emu: Emulator,
    sub: Obj,
    reason: str,
    comment: str | None = None,
    feedback: str | None = None,
    at: int | None = None,
) -> None:
    now = emu.clock.now() if at is None else at
    before = emu.store.render(sub)
    sub["status"] = "canceled"
    sub["canceled_at"] = sub["canceled_at"] or now
    sub["ended_at"] = now
    sub["cancellation_details"] = {"comment": comment, "feedback": feedback, "reason": reason}
    _changed(emu, sub, before, "customer.subscription.deleted")


# creation ---------------------------------------------------------------------------------------
@dataclass
class ItemSpec:
    price: Obj
    quantity: int | None
    metadata: dict[str, str]


def _resolve_price(emu: Emulator, ip: Params, param: str) -> Obj:
    price_id = ip.str("price", required=True)
    assert price_id is not None
    price = emu.store.coll("prices").get(price_id)
    if price is None:
        raise no_such("price", price_id, param)
    if not price["active"]:
        raise invalid("The price specified is inactive. This field only accepts active prices.", param=param)
    if price["type"] != "recurring":
        raise invalid(
            "The price specified is set to `type=one_time` but this field only accepts prices with "
            "`type=recurring`.",
            param=param,
        )
    return price


def _quantity(ip: Params, price: Obj, default: int | None) -> int | None:
    qty = ip.int("quantity", minimum=0)
    if _metered(price):
        if qty is not None:
            raise invalid(
                "Quantity should not be specified where usage_type is `metered`. Remove quantity from "
                f"`{ip.prefix}`.",
                param=ip.path("quantity"),
            )
        return None
    return default if qty is None else qty


def _check_compatible(prices: list[Obj]) -> None:
    first = prices[0]
    for price in prices[1:]:
        if price["currency"] != first["currency"]:
            raise invalid("All prices on a subscription must have the same currency.", param="items")
        a, b = price["recurring"], first["recurring"]
        if (a["interval"], a["interval_count"]) != (b["interval"], b["interval_count"]):
            raise invalid(
                "The emulator requires all prices on a subscription to share one billing interval.",
                param="items",
            )
    ids = [p["id"] for p in prices]
    dupes = {i for i in ids if ids.count(i) > 1}
    if dupes:
        raise invalid(
            f"Cannot add multiple subscription items with the same price: {sorted(dupes)[0]}", param="items"
        )


def _trial_end(p: Params, now: int, allow_now: bool) -> int | str | None:
    if not p.has("trial_end"):
        return None
    raw = p.str("trial_end", required=True)
    if raw == "now":
        return "now" if allow_now else now
    ts = p.int("trial_end")
    assert ts is not None
    if ts <= now:
        raise invalid(
            "Invalid timestamp: must be an integer Unix timestamp in the future.", param="trial_end"
        )
    if ts > now + MAX_TRIAL_DAYS * DAY:
        raise invalid("Invalid timestamp: can be no more than 730 days in the future.", param="trial_end")
    return ts


def _trial_settings(p: Params, current: Obj | None) -> Obj:
    ts = p.sub("trial_settings")
    result = current or {"end_behavior": {"missing_payment_method": "create_invoice"}}
    if ts is None:
        return result
    ts.check({"end_behavior"})
    eb = ts.sub("end_behavior", required=True)
    assert eb is not None
    eb.check({"missing_payment_method"})
    mpm = eb.enum("missing_payment_method", ["cancel", "pause", "create_invoice"], required=True)
    return {"end_behavior": {"missing_payment_method": mpm}}


def _has_payment_method(emu: Emulator, sub: Obj) -> bool:
    return bool(sub.get("default_payment_method")) or (
        invoices.payment_method_for_customer(emu, sub["customer"]) is not None
    )


def _insert_item(
    emu: Emulator,
    sub: Obj,
    price: Obj,
    quantity: int | None,
    metadata: dict[str, str],
    period: tuple[int, int],
    created: int,
) -> Obj:
    """A new subscription item for ``period`` (a metered price carries no quantity)."""
    item: Obj = {
        "id": emu.store.new_id("si"),
        "object": "subscription_item",
        "billing_thresholds": None,
        "created": created,
        "current_period_end": period[1],
        "current_period_start": period[0],
        "discounts": [],
        "metadata": metadata,
        "price": price["id"],
        "quantity": None if _metered(price) else quantity,
        "subscription": sub["id"],
        "tax_rates": [],
    }
    return emu.store.insert("subscription_items", item)


def create(req: Request) -> Obj:
    return req.store.render(start_subscription(req.emulator, req.params))


def start_subscription(emu: Emulator, p: Params, schedule: str | None = None) -> Obj:
    """Create a subscription from ``p`` (the create endpoint's params); ``schedule``: the
    subscription schedule that starts it."""
    store, now = emu.store, emu.clock.now()
    customer_id = p.str("customer", required=True)
    assert customer_id is not None
    store.get("customers", customer_id, "customer", "customer")
    item_params = p.items("items")
    if not item_params:
        raise missing_param("items")
    specs: list[ItemSpec] = []
    for ip in item_params:
        ip.check(ITEM_PARAMS - {"id", "deleted", "clear_usage"})
        price = _resolve_price(emu, ip, ip.path("price"))
        specs.append(ItemSpec(price, _quantity(ip, price, 1), apply_metadata({}, ip.metadata())))
    _check_compatible([s.price for s in specs])
    if p.has("currency") and p.str("currency") != specs[0].price["currency"]:
        raise invalid("The currency must match the prices' currency.", param="currency")
    method = p.enum("collection_method", ["charge_automatically", "send_invoice"]) or "charge_automatically"
    days_until_due = p.int("days_until_due", minimum=0)
    if method == "send_invoice" and days_until_due is None:
        raise missing_param("days_until_due")
    if method == "charge_automatically" and days_until_due is not None:
        raise invalid(
            "days_until_due can only be set when collection_method is send_invoice.", param="days_until_due"
        )
    payment_behavior = p.enum("payment_behavior", PAYMENT_BEHAVIORS) or "allow_incomplete"
    p.enum("proration_behavior", PRORATION_BEHAVIORS)
    trial_days = p.int("trial_period_days", minimum=0)
    if trial_days is not None and trial_days > MAX_TRIAL_DAYS:
        raise invalid("trial_period_days can be no more than 730.", param="trial_period_days")
    trial_end = _trial_end(p, now, allow_now=False)
    if trial_days and trial_end is not None:
        raise invalid(
            "You may only specify one of these parameters: trial_end, trial_period_days.", param="trial_end"
        )
    if trial_days is None and trial_end is None and p.bool("trial_from_plan"):
        trial_days = specs[0].price["recurring"].get("trial_period_days")
    trial_until = (
        now + trial_days * DAY if trial_days else (trial_end if isinstance(trial_end, int) else None)
    )
    if trial_until is not None and trial_until <= now:
        trial_until = None
    cancel_at = p.int("cancel_at")
    rec = specs[0].price["recurring"]
    anchor = trial_until or now
    period_end = trial_until or add_interval(now, rec["interval"], rec["interval_count"])

    sub: Obj = {
        "id": store.new_id("sub"),
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": anchor,
        "billing_cycle_anchor_config": None,
        "billing_mode": {
            "flexible": {"proration_discounts": "included"},
            "type": "flexible",
            "updated_at": now,
        },
        "billing_thresholds": None,
        "cancel_at": cancel_at,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "collection_method": method,
        "created": now,
        "currency": specs[0].price["currency"],
        "customer": customer_id,
        "days_until_due": days_until_due,
        "default_payment_method": p.str("default_payment_method", nullable=True),
        "default_source": None,
        "default_tax_rates": [],
        "description": p.str("description", nullable=True),
        "discounts": [],
        "ended_at": None,
        "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
        "latest_invoice": None,
        "livemode": False,
        "metadata": apply_metadata({}, p.metadata()),
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": None,
        "payment_settings": {
            "payment_method_options": None,
            "payment_method_types": None,
            "save_default_payment_method": "off",
        },
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "schedule": schedule,
        "start_date": now,
        "status": "trialing" if trial_until else "incomplete",
        "test_clock": None,
        "transfer_data": None,
        "trial_end": trial_until,
        "trial_settings": _trial_settings(p, None),
        "trial_start": now if trial_until else None,
    }
    if p.bool("cancel_at_period_end"):
        sub["cancel_at_period_end"] = True
        sub["cancel_at"] = period_end
    first_total = (
        0
        if trial_until
        else sum(0 if _metered(s.price) else s.price["unit_amount"] * (s.quantity or 0) for s in specs)
    )
    needs_payment = method == "charge_automatically" and first_total > 0 and not _has_payment_method(emu, sub)
    if needs_payment and payment_behavior == "error_if_incomplete":
        raise invalid(
            "This customer has no attached payment source or default payment method. Please consider "
            "adding a default payment method."
        )
    balance = int((store.coll("customers")[customer_id]).get("balance", 0))
    pm = sub["default_payment_method"] or invoices.payment_method_for_customer(emu, customer_id)
    if trial_until:
        sub["status"] = "trialing"
    elif (
        method == "send_invoice"
        or first_total + balance <= 0
        or (payment_behavior != "default_incomplete" and invoices.pays(emu, pm))
    ):
        sub["status"] = "active"
    store.insert("subscriptions", sub)
    for spec in specs:
        _insert_item(emu, sub, spec.price, spec.quantity, spec.metadata, (now, period_end), now)
    store.record_event("customer.subscription.created", sub)

    lines = [
        _period_line(emu, sub, i, (now, period_end), trial=bool(trial_until)) for i in items_of(emu, sub)
    ]
    inv = invoices.build_invoice(
        emu,
        customer=customer_id,
        sub=sub,
        lines=lines,
        billing_reason="subscription_create",
        period=(now, now),
        sweep_pending=False,
    )
    sub["latest_invoice"] = inv["id"]
    invoices.finalize(emu, inv)
    if method == "charge_automatically" and (
        sub["status"] == "active"
        or (sub["status"] == "incomplete" and pm is not None and payment_behavior != "default_incomplete")
    ):
        # An incomplete subscription's first invoice is tried once (a decline: invoice.payment_failed;
        # a card needing 3D Secure: also invoice.payment_action_required) and not retried: the
        # customer pays it on the hosted page or the subscription expires after 23 hours.
        invoices.attempt_payment(emu, inv)
        if sub["status"] == "incomplete":
            inv["next_payment_attempt"] = None
    return sub


# retrieve / list --------------------------------------------------------------------------------
def retrieve(req: Request) -> Obj:
    return req.store.render(req.store.get("subscriptions", req.id(), "subscription"))


def list_subscriptions(req: Request) -> Obj:
    p = req.params
    customer = p.str("customer")
    price = p.str("price") or p.str("plan")
    status = p.enum(
        "status",
        [
            "active",
            "all",
            "canceled",
            "ended",
            "incomplete",
            "incomplete_expired",
            "past_due",
            "paused",
            "trialing",
            "unpaid",
        ],
    )
    method = p.enum("collection_method", ["charge_automatically", "send_invoice"])

    def keep(s: Obj) -> bool:
        if customer is not None and s["customer"] != customer:
            return False
        if method is not None and s["collection_method"] != method:
            return False
        if price is not None and price not in [i["price"] for i in items_of(req.emulator, s)]:
            return False
        if status is None:
            return bool(s["status"] != "canceled")
        if status == "all":
            return True
        if status == "ended":
            return s["status"] in ("canceled", "incomplete_expired")
        return bool(s["status"] == status)

    return req.store.paginate(
        req.store.newest_first("subscriptions", keep), p, "/v1/subscriptions", "subscription"
    )


# item changes and prorations -------------------------------------------------------------------
@dataclass
class Change:
    item: Obj | None  # None: a new item
    price: Obj | None  # new price (None: unchanged)
    quantity: int | None  # new quantity (None: unchanged)
    deleted: bool = False
    metadata: dict[str, str] | None = None


def _period(emu: Emulator, sub: Obj) -> tuple[int, int]:
    items = items_of(emu, sub)
    if not items:
        return sub["billing_cycle_anchor"], sub["billing_cycle_anchor"]
    return int(items[0]["current_period_start"]), int(items[0]["current_period_end"])


def _proration_line(
    emu: Emulator,
    sub: Obj,
    item_id: str,
    price: Obj,
    qty: int,
    at: int,
    period: tuple[int, int],
    credit: bool,
) -> Obj:
    full = int(price["unit_amount"]) * qty
    amount = -prorate(full, at, *period) if credit else prorate(full, at, *period)
    name = _product_name(emu, price)
    kind = "Unused time" if credit else "Remaining time"
    return invoices.make_line(
        emu,
        amount=amount,
        currency=price["currency"],
        description=f"{kind} on {qty} {TIMES} {name} after {_date(at)}",
        period=(at, period[1]),
        price=price,
        quantity=qty,
        subscription=sub["id"],
        subscription_item=item_id,
        proration=True,
    )


def apply_changes(emu: Emulator, sub: Obj, changes: list[Change], behavior: str, at: int | None) -> None:
    """Validate then apply item changes, creating proration items per ``behavior``."""
    store = emu.store
    now = emu.clock.now()
    at = now if at is None else at
    if sub["status"] in ("canceled", "incomplete_expired"):
        raise invalid("A canceled subscription can only update its cancellation_details and metadata.")
    current = {i["id"]: i for i in items_of(emu, sub)}
    final: dict[str, str] = {iid: i["price"] for iid, i in current.items()}
    new_prices: list[Obj] = []
    for ch in changes:
        if ch.item is not None and ch.deleted:
            final.pop(ch.item["id"], None)
        elif ch.item is not None and ch.price is not None:
            final[ch.item["id"]] = ch.price["id"]
        elif ch.item is None and ch.price is not None:
            new_prices.append(ch.price)
    prices = [_price(emu, pid) for pid in final.values()] + new_prices
    if not prices:
        raise invalid(
            "A subscription must have at least one active plan. To cancel a subscription, please use the "
            "cancel API endpoint on /v1/subscriptions."
        )
    _check_compatible(prices)
    if prices[0]["currency"] != sub["currency"]:
        raise invalid("The new price's currency must match the subscription's currency.", param="items")
    period = _period(emu, sub)
    if not period[0] <= at <= period[1]:
        raise invalid("proration_date must be within the current billing period.", param="proration_date")
    prorating = behavior != "none" and sub["status"] in PRORATING
    lines: list[Obj] = []
    for ch in changes:
        item = ch.item
        old_price = _price(emu, item["price"]) if item else None
        old_qty = int(item.get("quantity") or 0) if item else 0
        new_price = ch.price or old_price
        assert new_price is not None
        new_qty = 0 if ch.deleted else (ch.quantity if ch.quantity is not None else (old_qty if item else 1))
        if _metered(new_price):
            new_qty = 0
        changed = ch.deleted or item is None or new_price is not old_price or new_qty != old_qty
        if not changed:
            pass
        elif prorating:
            if old_price is not None and item is not None and not _metered(old_price) and old_qty:
                lines.append(_proration_line(emu, sub, item["id"], old_price, old_qty, at, period, True))
            if not ch.deleted and not _metered(new_price) and new_qty:
                target_id = item["id"] if item else "__new__"
                lines.append(_proration_line(emu, sub, target_id, new_price, new_qty, at, period, False))
        # apply
        if item is None:
            item = _insert_item(emu, sub, new_price, new_qty, apply_metadata({}, ch.metadata), period, now)
            for line in lines:
                details = line["parent"]["subscription_item_details"]
                if details["subscription_item"] == "__new__":
                    details["subscription_item"] = item["id"]
        elif ch.deleted:
            store.coll("subscription_items")[item["id"]] = {
                "id": item["id"],
                "object": "subscription_item",
                "deleted": True,
                "subscription": sub["id"],
            }
        else:
            item["price"] = new_price["id"]
            item["quantity"] = None if _metered(new_price) else new_qty
            item["metadata"] = apply_metadata(item["metadata"], ch.metadata)
    for line in lines:
        invoices.make_invoice_item(emu, sub["customer"], sub, line)
    if lines and behavior == "always_invoice":
        inv = invoices.build_invoice(
            emu,
            customer=sub["customer"],
            sub=sub,
            lines=[],
            billing_reason="subscription_update",
            period=(at, at),
        )
        sub["latest_invoice"] = inv["id"]
        invoices.finalize(emu, inv)
        invoices.attempt_payment(emu, inv)


def _changes_from(emu: Emulator, sub: Obj, p: Params) -> list[Change]:
    changes = []
    current = {i["id"]: i for i in items_of(emu, sub)}
    for ip in p.items("items"):
        ip.check(ITEM_PARAMS)
        item_id = ip.str("id")
        item = None
        if item_id is not None:
            item = current.get(item_id)
            if item is None:
                raise no_such("subscription item", item_id, ip.path("id"))
        price = _resolve_price(emu, ip, ip.path("price")) if ip.has("price") else None
        if item is None and price is None:
            raise missing_param(ip.path("price"))
        qty_price = price or (_price(emu, item["price"]) if item else None)
        assert qty_price is not None
        qty = _quantity(ip, qty_price, None)
        changes.append(Change(item, price, qty, bool(ip.bool("deleted")), ip.metadata()))
    return changes


def _cancel_at(p: Params, sub: Obj, period_end: int) -> None:
    if p.has("cancel_at"):
        raw = p.str("cancel_at", nullable=True)
        if raw is None:
            sub["cancel_at"], sub["cancel_at_period_end"] = None, False
        elif raw in ("min_period_end", "max_period_end"):
            sub["cancel_at"], sub["cancel_at_period_end"] = period_end, True
        else:
            ts = p.int("cancel_at")
            assert ts is not None
            sub["cancel_at"], sub["cancel_at_period_end"] = ts, ts == period_end
    if p.has("cancel_at_period_end"):
        flag = p.bool("cancel_at_period_end")
        sub["cancel_at_period_end"] = bool(flag)
        sub["cancel_at"] = period_end if flag else None


def _quantity_limit(req: Request, sub: Obj, changes_quantity: bool) -> list[int] | None:
    """Stripe limits how often a subscription's quantities change (the product brief: 200 per
    subscription per hour; ``subscription_quantity_updates_per_hour`` in the admin settings).
    Counts requests carrying a quantity, in a rolling hour of the emulator clock; beyond the
    limit the answer is Stripe's rate-limit error (429, ``rate_limit``). Returns the list to
    append to once the update has succeeded."""
    if not changes_quantity:
        return None
    now = req.now
    log: list[int] = req.store.extra.setdefault("quantity_updates", {}).setdefault(sub["id"], [])
    log[:] = [t for t in log if t > now - 3600]
    limit = req.emulator.settings.subscription_quantity_updates_per_hour
    if len(log) >= limit:
        raise StripeError(
            429,
            f"Too many quantity updates on subscription {sub['id']}: at most {limit} per hour are allowed. "
            "Learn more about rate limits here https://stripe.com/docs/rate-limits.",
            code="rate_limit",
            headers={"Stripe-Should-Retry": "false"},
        )
    return log


def update(req: Request) -> Obj:
    emu, store, p = req.emulator, req.store, req.params
    sub = store.get("subscriptions", req.id(), "subscription")
    counted = _quantity_limit(req, sub, any(ip.has("quantity") for ip in p.items("items")))
    if sub["schedule"] and (p.has("cancel_at") or p.has("cancel_at_period_end")):
        raise invalid(
            f"The subscription is managed by the subscription schedule `{sub['schedule']}`, and updating any "
            "cancelation behavior directly is not allowed. Please update the schedule instead.",
            param="cancel_at" if p.has("cancel_at") else "cancel_at_period_end",
        )
    if sub["status"] in ("canceled", "incomplete_expired"):
        extra = set(p.data) - {"metadata", "cancellation_details", "expand"}
        if extra:
            raise invalid(
                "A canceled subscription can only update its cancellation_details and metadata.",
                param=sorted(extra)[0],
            )
    _apply(emu, sub, p, lambda: _update(emu, sub, p), pending_updates.SUBSCRIPTION_PARAMS)
    if counted is not None:
        counted.append(req.now)
    return store.render(sub)


def _apply(
    emu: Emulator, sub: Obj, p: Params, change: Callable[[], None], pending_params: frozenset[str]
) -> None:
    """Make ``change`` and record it; with ``payment_behavior=pending_if_incomplete``, an update whose
    invoice is not paid at once becomes the subscription's pending update instead (see
    ``pending_updates``)."""
    before = emu.store.render(sub)
    if p.enum("payment_behavior", PAYMENT_BEHAVIORS) != "pending_if_incomplete":
        change()
        _changed(emu, sub, before)
        return
    pending_updates.check(sub, p, pending_params)
    attempt = pending_updates.begin(emu, sub)
    try:
        change()
    except StripeError:
        pending_updates.settle(sub)
        raise
    unpaid = pending_updates.unpaid_invoice(emu, sub, attempt)
    if unpaid is None:
        pending_updates.settle(sub)
    else:
        items = [render_item(emu, i) for i in items_of(emu, sub)]
        pending_updates.hold(emu, sub, attempt, unpaid, items)
    _changed(emu, sub, before)


def _update(emu: Emulator, sub: Obj, p: Params) -> None:
    """Apply an update's params to ``sub`` (the caller records the event)."""
    behavior = p.enum("proration_behavior", PRORATION_BEHAVIORS) or "create_prorations"
    at = p.int("proration_date")
    changes = _changes_from(emu, sub, p)
    trial_end = _trial_end(p, emu.clock.now(), allow_now=True)
    pause = p.sub("pause_collection") if p.has("pause_collection") else None
    if pause is not None:
        pause.check({"behavior", "resumes_at"})
        pause_value: Obj | None = {
            "behavior": pause.enum(
                "behavior", ["keep_as_draft", "mark_uncollectible", "void"], required=True
            ),
            "resumes_at": pause.int("resumes_at"),
        }
    else:
        pause_value = None
    method = p.enum("collection_method", ["charge_automatically", "send_invoice"])
    # everything validated that can be: apply
    sub["metadata"] = apply_metadata(sub["metadata"], p.metadata())
    for field in ("description", "default_payment_method"):
        if p.has(field):
            sub[field] = p.str(field, nullable=True)
    if method is not None:
        sub["collection_method"] = method
    if p.has("days_until_due"):
        sub["days_until_due"] = p.int("days_until_due", minimum=0)
    if sub["collection_method"] == "send_invoice" and sub["days_until_due"] is None:
        raise missing_param("days_until_due")
    cd = p.sub("cancellation_details")
    if cd is not None:
        cd.check({"comment", "feedback"})
        details = dict(sub["cancellation_details"])
        if cd.has("comment"):
            details["comment"] = cd.str("comment", nullable=True)
        if cd.has("feedback"):
            details["feedback"] = cd.str("feedback", nullable=True)
        sub["cancellation_details"] = details
    if p.has("trial_settings"):
        sub["trial_settings"] = _trial_settings(p, sub["trial_settings"])
    if p.has("pause_collection"):
        sub["pause_collection"] = pause_value
    if changes:
        apply_changes(emu, sub, changes, behavior, at)
    if trial_end is not None:
        _set_trial_end(emu, sub, trial_end)
    _cancel_at(p, sub, _period(emu, sub)[1])


def _trial_will_end(emu: Emulator, sub: Obj) -> None:
    """Stripe's notice three days before a trial ends (at once for a shorter or ended trial), once
    per trial end."""
    sub[_TRIAL_WILL_END] = sub["trial_end"]
    emu.store.record_event("customer.subscription.trial_will_end", sub)


def _set_trial_end(emu: Emulator, sub: Obj, trial_end: int | str) -> None:
    now = emu.clock.now()
    if trial_end == "now":
        if sub["status"] == "trialing":
            sub["trial_end"] = now
            _trial_will_end(emu, sub)
            _end_trial(emu, sub, now)
        return
    assert isinstance(trial_end, int)
    if sub["status"] not in ("trialing", "active"):
        raise invalid("trial_end can only be changed on trialing or active subscriptions.", param="trial_end")
    sub["trial_end"] = trial_end
    sub["trial_start"] = sub["trial_start"] or now
    sub["billing_cycle_anchor"] = trial_end
    sub["status"] = "trialing"
    for item in items_of(emu, sub):
        item["current_period_start"] = min(item["current_period_start"], now)
        item["current_period_end"] = trial_end


# cancel -----------------------------------------------------------------------------------------
def cancel(req: Request) -> Obj:
    emu, store, p = req.emulator, req.store, req.params
    sub = store.get("subscriptions", req.id(), "subscription")
    invoice_now = bool(p.bool("invoice_now"))
    prorate_flag = bool(p.bool("prorate"))
    cd = p.sub("cancellation_details")
    comment = feedback = None
    if cd is not None:
        cd.check({"comment", "feedback"})
        comment = cd.str("comment", nullable=True)
        feedback = cd.enum("feedback", CANCELLATION_FEEDBACK)
    if sub["status"] in ("canceled", "incomplete_expired"):
        raise invalid(
            f"The subscription {sub['id']} has already been canceled and cannot be canceled again.",
            param="id",
        )
    cancel_subscription(emu, sub, invoice_now, prorate_flag, comment, feedback)
    return store.render(sub)


def cancel_subscription(
    emu: Emulator,
    sub: Obj,
    invoice_now: bool,
    prorate_flag: bool,
    comment: str | None = None,
    feedback: str | None = None,
) -> None:
    """Cancel now: with ``prorate_flag`` a credit for the unused time; with ``invoice_now`` a final
    invoice of the pending items and the metered usage so far."""
    now = emu.clock.now()
    period = _period(emu, sub)
    if prorate_flag and sub["status"] in PRORATING and period[0] <= now < period[1]:
        for item in items_of(emu, sub):
            price = _price(emu, item["price"])
            if not _metered(price) and item.get("quantity"):
                line = _proration_line(emu, sub, item["id"], price, int(item["quantity"]), now, period, True)
                invoices.make_invoice_item(emu, sub["customer"], sub, line)
    # invoice_now also bills the metered usage of the period so far (not while trialing).
    metered = (
        []
        if sub["status"] == "trialing"
        else [i for i in items_of(emu, sub) if _metered(_price(emu, i["price"]))]
    )
    cancel_now(emu, sub, reason="cancellation_requested", comment=comment, feedback=feedback)
    if invoice_now and (metered or invoices.pending_items(emu, sub["customer"], sub["id"])):
        usage_lines = [
            _period_line(emu, sub, i, (period[0], now), usage_period=(period[0], now + 1)) for i in metered
        ]
        for line in usage_lines:  # usage up to and including the cancellation second
            line["period"]["end"] = now
        inv = invoices.build_invoice(
            emu,
            customer=sub["customer"],
            sub=sub,
            lines=usage_lines,
            billing_reason="subscription_cycle",
            period=(period[0], now),
        )
        sub["latest_invoice"] = inv["id"]
        invoices.finalize(emu, inv)
        invoices.attempt_payment(emu, inv)


# subscription items endpoints -------------------------------------------------------------------
def _item_sub(req: Request, item: Obj) -> Obj:
    return req.store.coll("subscriptions")[item["subscription"]]


def retrieve_item(req: Request) -> Obj:
    return req.store.render(req.store.get("subscription_items", req.id(), "subscription item"))


def list_items(req: Request) -> Obj:
    sub_id = req.params.str("subscription", required=True)
    assert sub_id is not None
    sub = req.store.get("subscriptions", sub_id, "subscription", "subscription")
    items = list(reversed(items_of(req.emulator, sub)))
    return req.store.paginate(items, req.params, "/v1/subscription_items", "subscription item")


def _mutate_item(req: Request, sub: Obj, change: Change) -> None:
    p = req.params
    behavior = p.enum("proration_behavior", PRORATION_BEHAVIORS) or "create_prorations"
    _apply(
        req.emulator,
        sub,
        p,
        lambda: apply_changes(req.emulator, sub, [change], behavior, p.int("proration_date")),
        pending_updates.ITEM_ENDPOINT_PARAMS,
    )


def create_item(req: Request) -> Obj:
    p = req.params
    sub_id = p.str("subscription", required=True)
    assert sub_id is not None
    sub = req.store.get("subscriptions", sub_id, "subscription", "subscription")
    price = _resolve_price(req.emulator, p, "price")
    qty = _quantity(p, price, 1)
    existing = {i["id"] for i in items_of(req.emulator, sub)}
    _mutate_item(req, sub, Change(None, price, qty, metadata=p.metadata()))
    new = [i for i in items_of(req.emulator, sub) if i["id"] not in existing]
    return req.store.render(new[0])


def update_item(req: Request) -> Obj:
    p = req.params
    item = req.store.get("subscription_items", req.id(), "subscription item")
    sub = _item_sub(req, item)
    price = _resolve_price(req.emulator, p, "price") if p.has("price") else None
    qty = _quantity(p, price or _price(req.emulator, item["price"]), None)
    counted = _quantity_limit(req, sub, qty is not None)
    _mutate_item(req, sub, Change(item, price, qty, metadata=p.metadata()))
    if counted is not None:
        counted.append(req.now)
    return req.store.render(item)


def delete_item(req: Request) -> Obj:
    item = req.store.get("subscription_items", req.id(), "subscription item")
    sub = _item_sub(req, item)
    _mutate_item(req, sub, Change(item, None, None, deleted=True))
    return {"id": item["id"], "object": "subscription_item", "deleted": True}


# preview ----------------------------------------------------------------------------------------
@contextmanager
def _dry_run(emu: Emulator) -> Iterator[None]:
    """Apply changes to a copy of the state, then put the original back."""
    store = emu.store
    saved = {name: {k: clone(v) for k, v in coll.items()} for name, coll in store.collections.items()}
    counters = dict(store.counters)
    try:
        yield
    finally:
        for name, coll in saved.items():
            store.collections[name].clear()
            store.collections[name].update(coll)
        store.counters.clear()
        store.counters.update(counters)


def preview(emu: Emulator, sub: Obj, details: Params | None) -> Obj:
    """The invoice the subscription would produce next (or, with always_invoice changes, now)."""
    with _dry_run(emu):
        behavior = "create_prorations"
        if details is not None:
            details.check(
                {
                    "items",
                    "proration_behavior",
                    "proration_date",
                    "cancel_at_period_end",
                    "cancel_at",
                    "trial_end",
                    "default_payment_method",
                    "billing_cycle_anchor",
                }
            )
            behavior = details.enum("proration_behavior", PRORATION_BEHAVIORS) or behavior
            if behavior == "always_invoice":
                details.data["proration_behavior"] = "create_prorations"
            _update(emu, sub, details)
        return _preview_invoice(emu, sub, immediate=behavior == "always_invoice")


def _preview_invoice(emu: Emulator, sub: Obj, immediate: bool) -> Obj:
    now = emu.clock.now()
    if sub["status"] in ("canceled", "incomplete_expired"):
        raise invoices.no_upcoming(sub["customer"])
    if immediate:
        return invoices.build_invoice(
            emu,
            customer=sub["customer"],
            sub=sub,
            lines=[],
            billing_reason="subscription_update",
            period=(now, now),
            preview=True,
        )
    start, end = _period(emu, sub)
    lines: list[Obj] = []
    ends = sub["cancel_at"] is not None and sub["cancel_at"] <= end
    if not ends and sub["status"] != "paused":
        rec = _price(emu, items_of(emu, sub)[0]["price"])["recurring"]
        nxt = (end, add_interval(end, rec["interval"], rec["interval_count"]))
        usage = None if sub["status"] == "trialing" else (start, end)
        lines = [_period_line(emu, sub, i, nxt, usage_period=usage) for i in items_of(emu, sub)]
    if ends and not invoices.pending_items(emu, sub["customer"], sub["id"]):
        raise invoices.no_upcoming(sub["customer"])
    inv = invoices.build_invoice(
        emu,
        customer=sub["customer"],
        sub=sub,
        lines=lines,
        billing_reason="subscription_cycle",
        period=(start, end),
        preview=True,
    )
    inv["created"] = end
    inv["next_payment_attempt"] = end if sub["collection_method"] == "charge_automatically" else None
    return inv


# the passage of time ----------------------------------------------------------------------------
def _end_trial(emu: Emulator, sub: Obj, at: int) -> None:
    before = emu.store.render(sub)
    if not _has_payment_method(emu, sub) and sub["collection_method"] == "charge_automatically":
        behavior = sub["trial_settings"]["end_behavior"]["missing_payment_method"]
        if behavior == "cancel":
            cancel_now(emu, sub, reason="cancellation_requested", at=at)
            return
        if behavior == "pause":
            sub["status"] = "paused"
            _changed(emu, sub, before)
            return
    sub["status"] = "active"
    _start_period(emu, sub, at, "subscription_cycle", before)


def _start_period(emu: Emulator, sub: Obj, start: int, reason: str, before: Obj) -> None:
    """Begin a billing period at ``start`` and invoice it (with pending items)."""
    items = items_of(emu, sub)
    rec = _price(emu, items[0]["price"])["recurring"]
    prev_start, prev_end = _period(emu, sub)
    end = add_interval(start, rec["interval"], rec["interval_count"])
    if sub["trial_end"] == start:  # a trial ended: the cycle is anchored there
        sub["billing_cycle_anchor"] = start
    for item in items:
        item["current_period_start"], item["current_period_end"] = start, end
    usage = None if sub["trial_end"] == start else (prev_start, prev_end)
    lines = [_period_line(emu, sub, i, (start, end), usage_period=usage) for i in items]
    inv = invoices.build_invoice(
        emu,
        customer=sub["customer"],
        sub=sub,
        lines=lines,
        billing_reason=reason,
        period=(prev_start, prev_end),
    )
    sub["latest_invoice"] = inv["id"]
    _changed(emu, sub, before)
    pause = sub["pause_collection"]
    if pause and pause["behavior"] == "keep_as_draft":
        return
    invoices.finalize(emu, inv)
    if pause and inv["status"] == "open":
        if pause["behavior"] == "void":
            invoices.void(emu, inv)
        else:
            invoices.mark_uncollectible(emu, inv)
        return
    invoices.attempt_payment(emu, inv)


def _next_due(emu: Emulator, sub: Obj) -> tuple[int, str] | None:
    """The earliest thing due for ``sub``: (when, what)."""
    status = sub["status"]
    if status in ("canceled", "incomplete_expired"):
        return None
    candidates: list[tuple[int, str]] = []
    if status == "incomplete":
        candidates.append((sub["created"] + INCOMPLETE_EXPIRY, "expire"))
    if sub["cancel_at"] is not None:
        candidates.append((sub["cancel_at"], "cancel"))
    if status == "trialing" and sub["trial_end"] is not None:
        candidates.append((sub["trial_end"], "trial_end"))
        if sub.get(_TRIAL_WILL_END) != sub["trial_end"]:
            candidates.append((sub["trial_end"] - TRIAL_WILL_END_NOTICE, "trial_will_end"))
    pending_expiry = pending_updates.expires_at(sub)
    if pending_expiry is not None:
        candidates.append((pending_expiry, "pending_expire"))
    if status in ("active", "past_due", "unpaid"):
        candidates.append((_period(emu, sub)[1], "renew"))
    pause = sub["pause_collection"]
    if pause and pause.get("resumes_at"):
        candidates.append((pause["resumes_at"], "resume"))
    return min(candidates) if candidates else None


def _next_retry(emu: Emulator, inv: Obj) -> tuple[int, str] | None:
    if inv["status"] == "open" and inv.get("next_payment_attempt"):
        return int(inv["next_payment_attempt"]), "retry"
    return None


def _retry(emu: Emulator, inv: Obj, when: int, what: str) -> None:
    inv["next_payment_attempt"] = None
    invoices.attempt_payment(emu, inv)


def _apply_due(emu: Emulator, sub: Obj, when: int, what: str) -> None:
    before = emu.store.render(sub)
    if what == "expire":
        sub["status"] = "incomplete_expired"
        sub["ended_at"] = when
        latest = emu.store.coll("invoices").get(sub["latest_invoice"] or "")
        if latest is not None and latest["status"] == "open":
            invoices.void(emu, latest)
        _changed(emu, sub, before)
    elif what == "cancel":
        cancel_now(emu, sub, reason="cancellation_requested", at=when)
    elif what == "trial_end":
        _end_trial(emu, sub, when)
    elif what == "trial_will_end":
        _trial_will_end(emu, sub)
    elif what == "renew":
        _start_period(emu, sub, _period(emu, sub)[1], "subscription_cycle", before)
    elif what == "pending_expire":
        pending_updates.discard(emu, sub)
        _changed(emu, sub, before)
        emu.store.record_event("customer.subscription.pending_update_expired", sub)
    elif what == "resume":
        sub["pause_collection"] = None
        _changed(emu, sub, before)


def summary(sub: Obj) -> dict[str, Any]:
    return {k: sub.get(k) for k in ("id", "status", "customer", "latest_invoice")}
