"""Subscription schedules: phases of a subscription's prices that change on the emulator clock.

As Stripe documents them (api/subscription_schedules, billing/subscriptions/subscription-schedules):

* ``POST /v1/subscription_schedules`` either ``from_subscription`` (no other parameter: one phase
  copying the subscription's items over its current period, ``end_behavior=release``; refused for a
  canceled subscription or one that already has a schedule) or ``customer`` + ``phases`` (+
  ``start_date``: ``now`` by default, or a future time: ``not_started`` until then, when the
  subscription is created). A phase has ``items[][price|quantity|metadata]``, ``end_date`` or
  ``duration[interval|interval_count]`` (``iterations`` was removed in 2025-09-30.clover; without
  either a phase lasts one interval of its prices), ``proration_behavior`` (default
  ``create_prorations``), ``metadata``, ``collection_method``, ``default_payment_method``,
  ``description``, ``trial_end`` (first phase only in the emulator).
* ``POST /v1/subscription_schedules/{id}``: ``phases`` replace the current and future phases (the
  first one is the current phase: its ``start_date`` cannot change); if the current phase's items
  change, the subscription changes now with ``proration_behavior`` (default ``create_prorations``);
  ``end_behavior`` ``release`` or ``cancel``; ``metadata``; ``default_settings``. Only a
  ``not_started`` or ``active`` schedule can be updated, released or canceled.
* ``POST .../release`` (``preserve_cancel_date``): ``status=released``, ``released_at``,
  ``released_subscription``; the subscription keeps its items and loses ``schedule``.
* ``POST .../cancel`` (``invoice_now``, ``prorate``, both default true): the subscription is canceled
  now, ``status=canceled``.
* On the clock, at a phase's ``end_date`` the next phase's items replace the subscription's (matched
  by price, then paired in order so a price swap keeps the item id), with that phase's
  ``proration_behavior`` (no prorations when the change falls on the period's end, so the renewal
  bills the new prices), phase ``metadata`` merged into the subscription's: events
  ``customer.subscription.updated`` and ``subscription_schedule.updated``. After the last phase:
  ``end_behavior=release`` -> ``status=released`` and ``subscription_schedule.released``;
  ``cancel`` -> the subscription canceled and ``status=completed``, ``subscription_schedule.completed``
  (the emulator's reading of which status each end behavior leaves). A schedule whose end behavior is
  ``cancel`` sets the subscription's ``cancel_at`` to its end (which ``release`` clears unless
  ``preserve_cancel_date``).
* A subscription canceled otherwise cancels its schedule (``subscription_schedule.canceled``, or
  ``.aborted`` when payment failures canceled it). The subscription's ``schedule`` names its schedule;
  updating its ``cancel_at``/``cancel_at_period_end`` directly is refused while it has one.

Not emulated: backdated ``start_date``, ``pause_schedules``, ``add_invoice_items``, discounts, taxes,
phases whose prices bill at another interval than the subscription's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import subscriptions
from .common import created_filter, previous_attributes, public
from .errors import StripeError, invalid, missing_param
from .params import Params, apply_metadata
from .store import Kind, Obj

if TYPE_CHECKING:
    from .server import Emulator, Request

LIVE = ("not_started", "active")
PHASE_PARAMS = {
    "items",
    "end_date",
    "duration",
    "proration_behavior",
    "metadata",
    "collection_method",
    "default_payment_method",
    "description",
    "currency",
    "trial_end",
    "trial",
    "billing_cycle_anchor",
}
ITEM_PARAMS = {"price", "plan", "quantity", "metadata"}
DEFAULT_SETTINGS_PARAMS = {
    "collection_method",
    "default_payment_method",
    "description",
    "invoice_settings",
    "billing_cycle_anchor",
}


def register(emu: Emulator) -> None:
    emu.store.register(Kind("subscription_schedule", "sub_sched", "subscription_schedules", render))
    emu.due.add_source("sub_sched", "subscription_schedules", _next_due, _apply_due, rank=0)
    emu.store.event_hooks.append(lambda event: _on_event(emu, event))
    r = emu.router
    r.add(
        "POST /v1/subscription_schedules",
        create,
        {
            "from_subscription",
            "customer",
            "phases",
            "start_date",
            "end_behavior",
            "metadata",
            "default_settings",
        },
    )
    r.add(
        "GET /v1/subscription_schedules",
        list_schedules,
        {
            "customer",
            "scheduled",
            "created",
            "canceled_at",
            "completed_at",
            "released_at",
            "limit",
            "starting_after",
            "ending_before",
        },
    )
    r.add("GET /v1/subscription_schedules/{id}", retrieve)
    r.add(
        "POST /v1/subscription_schedules/{id}",
        update,
        {"phases", "end_behavior", "metadata", "default_settings", "proration_behavior"},
    )
    r.add("POST /v1/subscription_schedules/{id}/release", release_endpoint, {"preserve_cancel_date"})
    r.add("POST /v1/subscription_schedules/{id}/cancel", cancel_endpoint, {"invoice_now", "prorate"})


def render(schedule: Obj) -> Obj:
    return public(schedule)


# phases -----------------------------------------------------------------------------------------
@dataclass
class PhaseItem:
    price: Obj
    quantity: int | None
    metadata: dict[str, str]


def _item_json(item: PhaseItem) -> Obj:
    return {
        "billing_thresholds": None,
        "discounts": [],
        "metadata": dict(item.metadata),
        "plan": item.price["id"],
        "price": item.price["id"],
        "quantity": item.quantity,
        "tax_rates": [],
    }


def _phase_json(
    start: int, end: int, items: list[PhaseItem], currency: str, proration_behavior: str, extra: Obj
) -> Obj:
    return {
        "add_invoice_items": [],
        "application_fee_percent": None,
        "automatic_tax": None,
        "billing_cycle_anchor": None,
        "billing_thresholds": None,
        "collection_method": extra.get("collection_method"),
        "currency": currency,
        "default_payment_method": extra.get("default_payment_method"),
        "default_tax_rates": [],
        "description": extra.get("description"),
        "discounts": [],
        "end_date": end,
        "invoice_settings": None,
        "items": [_item_json(i) for i in items],
        "metadata": dict(extra.get("metadata") or {}),
        "on_behalf_of": None,
        "proration_behavior": proration_behavior,
        "start_date": start,
        "transfer_data": None,
        "trial": None,
        "trial_end": extra.get("trial_end"),
    }


def _phase_items(emu: Emulator, pp: Params) -> list[PhaseItem]:
    entries = pp.items("items")
    if not entries:
        raise missing_param(pp.path("items"))
    items = []
    for ip in entries:
        ip.check(ITEM_PARAMS)
        if ip.has("plan") and not ip.has("price"):
            ip.data["price"] = ip.data["plan"]
        price = subscriptions.resolve_price(emu, ip, ip.path("price"))
        quantity = ip.int("quantity", minimum=0)
        metered = (price["recurring"] or {}).get("usage_type") == "metered"
        items.append(
            PhaseItem(
                price,
                None if metered else (1 if quantity is None else quantity),
                apply_metadata({}, ip.metadata()),
            )
        )
    subscriptions.check_compatible([i.price for i in items])
    return items


def _parse_phases(emu: Emulator, p: Params, first_start: int, updating: bool) -> list[Obj]:
    """The phases of ``p`` laid end to end from ``first_start``."""
    entries = p.items("phases")
    if not entries:
        raise missing_param("phases")
    phases: list[Obj] = []
    start = first_start
    for index, pp in enumerate(entries):
        pp.check(PHASE_PARAMS | ({"start_date"} if updating else set()) | {"iterations"})
        if pp.has("iterations"):
            raise invalid(
                "The `iterations` parameter was removed in API version 2025-09-30.clover: use `duration`.",
                param=pp.path("iterations"),
            )
        if updating and pp.has("start_date"):
            raw = pp.str("start_date", required=True)
            given = emu.clock.now() if raw == "now" else pp.int("start_date")
            if index == 0 and given != start:
                raise invalid(
                    "You can not modify the start date of the current phase.", param=pp.path("start_date")
                )
            if index > 0 and given != start:
                raise invalid(
                    "The start_date of a phase must be the end_date of the phase before it.",
                    param=pp.path("start_date"),
                )
        items = _phase_items(emu, pp)
        currency = items[0].price["currency"]
        if pp.has("currency") and pp.str("currency") != currency:
            raise invalid("The phase's currency must match its prices' currency.", param=pp.path("currency"))
        rec = items[0].price["recurring"]
        if pp.has("end_date") and pp.has("duration"):
            raise invalid(
                "You may only specify one of these parameters: end_date, duration.", param=pp.path("end_date")
            )
        if pp.has("end_date"):
            raw_end = pp.str("end_date", required=True)
            end = emu.clock.now() if raw_end == "now" and updating else pp.int("end_date")
            assert end is not None
        elif pp.has("duration"):
            duration = pp.sub("duration", required=True)
            assert duration is not None
            duration.check({"interval", "interval_count"})
            unit = duration.enum("interval", ["day", "week", "month", "year"], required=True)
            assert unit is not None
            end = subscriptions.add_interval(start, unit, duration.int("interval_count", minimum=1) or 1)
        else:
            end = subscriptions.add_interval(start, rec["interval"], rec["interval_count"])
        if end <= start:
            raise invalid("The phase's end_date must be after its start_date.", param=pp.path("end_date"))
        behavior = pp.enum("proration_behavior", subscriptions.PRORATION_BEHAVIORS) or "create_prorations"
        trial_end = None
        if pp.has("trial_end"):
            if index > 0:
                raise invalid(
                    "The emulator supports trial_end on the first phase only.", param=pp.path("trial_end")
                )
            trial_end = pp.int("trial_end")
            assert trial_end is not None
            if not start < trial_end <= end:
                raise invalid("The phase's trial_end must be within the phase.", param=pp.path("trial_end"))
        pp.bool("trial")
        pp.enum("billing_cycle_anchor", ["automatic", "phase_start"])
        extra: Obj = {
            "collection_method": pp.enum("collection_method", ["charge_automatically", "send_invoice"]),
            "default_payment_method": pp.str("default_payment_method"),
            "description": pp.str("description", nullable=True),
            "metadata": apply_metadata({}, pp.metadata()),
            "trial_end": trial_end,
        }
        phases.append(_phase_json(start, end, items, currency, behavior, extra))
        start = end
    currencies = {ph["currency"] for ph in phases}
    if len(currencies) > 1:
        raise invalid("All phases of a subscription schedule must have the same currency.", param="phases")
    return phases


def _default_settings(p: Params, current: Obj | None) -> Obj:
    settings: Obj = current or {
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": "automatic",
        "billing_thresholds": None,
        "collection_method": None,
        "default_payment_method": None,
        "description": None,
        "invoice_settings": {"account_tax_ids": None, "days_until_due": None, "issuer": {"type": "self"}},
        "on_behalf_of": None,
        "transfer_data": None,
    }
    ds = p.sub("default_settings")
    if ds is None:
        return settings
    ds.check(DEFAULT_SETTINGS_PARAMS)
    settings = {**settings}
    if ds.has("collection_method"):
        settings["collection_method"] = ds.enum("collection_method", ["charge_automatically", "send_invoice"])
    if ds.has("default_payment_method"):
        settings["default_payment_method"] = ds.str("default_payment_method", nullable=True)
    if ds.has("description"):
        settings["description"] = ds.str("description", nullable=True)
    if ds.has("billing_cycle_anchor"):
        settings["billing_cycle_anchor"] = ds.enum("billing_cycle_anchor", ["automatic", "phase_start"])
    inv = ds.sub("invoice_settings")
    if inv is not None:
        inv.check({"days_until_due"})
        settings["invoice_settings"] = {
            **settings["invoice_settings"],
            "days_until_due": inv.int("days_until_due", minimum=0),
        }
    return settings


def _end_behavior(p: Params) -> str | None:
    value = p.str("end_behavior")
    if value is not None and value not in ("release", "cancel"):
        raise invalid("Invalid end_behavior: must be one of release, cancel.", param="end_behavior")
    return value


# the schedule and its subscription ------------------------------------------------------------
def _subscription(emu: Emulator, schedule: Obj) -> Obj | None:
    sub_id = schedule.get("subscription")
    return emu.store.coll("subscriptions").get(sub_id) if sub_id else None


def _updated(emu: Emulator, schedule: Obj, before: Obj) -> None:
    prev = previous_attributes(before, emu.store.render(schedule))
    if prev:
        emu.store.record_event("subscription_schedule.updated", schedule, prev)


def _setting(schedule: Obj, phase: Obj, name: str) -> Any:
    value = phase.get(name)
    return value if value is not None else schedule["default_settings"].get(name)


def _subscription_params(schedule: Obj, phase: Obj) -> Params:
    """The create-subscription params of a schedule's first phase."""
    data: dict[str, Any] = {
        "customer": schedule["customer"],
        "items": [
            {
                "price": i["price"],
                **({"quantity": str(i["quantity"])} if i["quantity"] is not None else {}),
                "metadata": dict(i["metadata"]),
            }
            for i in phase["items"]
        ],
        "metadata": dict(phase["metadata"]),
    }
    method = _setting(schedule, phase, "collection_method")
    if method is not None:
        data["collection_method"] = method
    if method == "send_invoice":
        days = schedule["default_settings"]["invoice_settings"].get("days_until_due")
        data["days_until_due"] = str(30 if days is None else days)
    for name in ("default_payment_method", "description"):
        value = _setting(schedule, phase, name)
        if value is not None:
            data[name] = value
    if phase["trial_end"] is not None:
        data["trial_end"] = str(phase["trial_end"])
    return Params(data)


def _sync_cancel_at(emu: Emulator, schedule: Obj, sub: Obj) -> None:
    """A schedule that ends by canceling sets the subscription's ``cancel_at`` to its end."""
    if schedule["end_behavior"] == "cancel" and schedule["phases"]:
        sub["cancel_at"] = schedule["phases"][-1]["end_date"]
        sub["cancel_at_period_end"] = sub["cancel_at"] == subscriptions.period_of(emu, sub)[1]
    elif schedule.get("_set_cancel_at"):
        sub["cancel_at"], sub["cancel_at_period_end"] = None, False
    schedule["_set_cancel_at"] = schedule["end_behavior"] == "cancel"


def _start(emu: Emulator, schedule: Obj) -> None:
    """A not_started schedule reaches its start: its subscription is created."""
    phase = schedule["phases"][0]
    before = emu.store.render(schedule)
    sub = subscriptions.start_subscription(
        emu, _subscription_params(schedule, phase), schedule=schedule["id"]
    )
    schedule["subscription"] = sub["id"]
    schedule["status"] = "active"
    schedule["current_phase"] = {"start_date": phase["start_date"], "end_date": phase["end_date"]}
    sub_before = emu.store.render(sub)
    _sync_cancel_at(emu, schedule, sub)
    subscriptions.record_change(emu, sub, sub_before)
    _updated(emu, schedule, before)


def _apply_items(emu: Emulator, sub: Obj, phase: Obj, behavior: str, at: int) -> None:
    """Make the subscription's items those of ``phase`` (prorated per ``behavior``)."""
    current = subscriptions.items_of(emu, sub)
    wanted = [(emu.store.coll("prices")[i["price"]], i["quantity"], i["metadata"]) for i in phase["items"]]
    matched = {i["price"]: i for i in current}
    changes: list[subscriptions.Change] = []
    unmatched_new = [w for w in wanted if w[0]["id"] not in matched]
    kept = {w[0]["id"] for w in wanted}
    unmatched_old = [i for i in current if i["price"] not in kept]
    for price, qty, metadata in wanted:
        item = matched.get(price["id"])
        if item is not None:
            changes.append(subscriptions.Change(item, None, qty, metadata=metadata or None))
    for (price, qty, metadata), item in zip(unmatched_new, unmatched_old, strict=False):
        changes.append(subscriptions.Change(item, price, qty, metadata=metadata or None))
    for price, qty, metadata in unmatched_new[len(unmatched_old) :]:
        changes.append(subscriptions.Change(None, price, qty, metadata=metadata or None))
    for item in unmatched_old[len(unmatched_new) :]:
        changes.append(subscriptions.Change(item, None, None, deleted=True))
    if at >= subscriptions.period_of(emu, sub)[1]:
        behavior = "none"  # nothing of the period is left to prorate: the renewal bills the new prices
    subscriptions.apply_changes(emu, sub, changes, behavior, at)


def _enter_phase(emu: Emulator, schedule: Obj, sub: Obj, phase: Obj, at: int) -> None:
    before = emu.store.render(sub)
    _apply_items(emu, sub, phase, phase["proration_behavior"], at)
    sub["metadata"] = apply_metadata(sub["metadata"], phase["metadata"] or None)
    for name in ("collection_method", "default_payment_method", "description"):
        if phase.get(name) is not None:
            sub[name] = phase[name]
    if sub["collection_method"] == "send_invoice" and sub["days_until_due"] is None:
        days = schedule["default_settings"]["invoice_settings"].get("days_until_due")
        sub["days_until_due"] = 30 if days is None else days
    subscriptions.record_change(emu, sub, before)


def _release(emu: Emulator, schedule: Obj, preserve_cancel_date: bool, at: int) -> None:
    before = emu.store.render(schedule)
    sub = _subscription(emu, schedule)
    schedule.update(
        {
            "status": "released",
            "released_at": at,
            "released_subscription": schedule["subscription"],
            "subscription": None,
            "current_phase": None,
        }
    )
    if sub is not None and sub["status"] not in ("canceled", "incomplete_expired"):
        sub_before = emu.store.render(sub)
        sub["schedule"] = None
        if schedule.get("_set_cancel_at") and not preserve_cancel_date:
            sub["cancel_at"], sub["cancel_at_period_end"] = None, False
        subscriptions.record_change(emu, sub, sub_before)
    emu.store.record_event(
        "subscription_schedule.released", schedule, previous_attributes(before, render(schedule))
    )


def _next_due(emu: Emulator, schedule: Obj) -> tuple[int, str] | None:
    if schedule["status"] == "not_started":
        return int(schedule["phases"][0]["start_date"]), "start"
    if schedule["status"] == "active" and schedule["current_phase"]:
        return int(schedule["current_phase"]["end_date"]), "phase_end"
    return None


def _abandon(emu: Emulator, schedule: Obj) -> None:
    """The schedule cannot go on (its subscription ended, or cannot be created): canceled."""
    before = emu.store.render(schedule)
    schedule.update({"status": "canceled", "canceled_at": emu.clock.now(), "current_phase": None})
    emu.store.record_event(
        "subscription_schedule.canceled", schedule, previous_attributes(before, render(schedule))
    )


def _apply_due(emu: Emulator, schedule: Obj, when: int, what: str) -> None:
    if what == "start":
        try:
            _start(emu, schedule)
        except StripeError:
            _abandon(emu, schedule)  # e.g. its customer was deleted before the start date
        return
    sub = _subscription(emu, schedule)
    ended = schedule["current_phase"]["end_date"]
    following = [ph for ph in schedule["phases"] if ph["start_date"] >= ended]
    if sub is None or sub["status"] in ("canceled", "incomplete_expired"):
        _abandon(emu, schedule)
        return
    if following:
        before = emu.store.render(schedule)
        phase = following[0]
        _enter_phase(emu, schedule, sub, phase, when)
        schedule["current_phase"] = {"start_date": phase["start_date"], "end_date": phase["end_date"]}
        _updated(emu, schedule, before)
    elif schedule["end_behavior"] == "cancel":
        before = emu.store.render(schedule)
        schedule.update({"status": "completed", "completed_at": when, "current_phase": None})
        subscriptions.cancel_now(emu, sub, reason="cancellation_requested", at=when)
        emu.store.record_event(
            "subscription_schedule.completed", schedule, previous_attributes(before, render(schedule))
        )
    else:
        _release(emu, schedule, preserve_cancel_date=True, at=when)


def _on_event(emu: Emulator, event: Obj) -> None:
    """A subscription canceled other than by its schedule cancels the schedule."""
    if event["type"] != "customer.subscription.deleted":
        return
    sub = event["data"]["object"]
    schedule = emu.store.coll("subscription_schedules").get(sub.get("schedule") or "")
    if schedule is None or schedule["status"] not in LIVE or schedule["subscription"] != sub["id"]:
        return
    before = emu.store.render(schedule)
    schedule.update({"status": "canceled", "canceled_at": emu.clock.now(), "current_phase": None})
    delinquent = (sub.get("cancellation_details") or {}).get("reason") == "payment_failed"
    emu.store.record_event(
        "subscription_schedule.aborted" if delinquent else "subscription_schedule.canceled",
        schedule,
        previous_attributes(before, render(schedule)),
    )


# endpoints --------------------------------------------------------------------------------------
def _blank(emu: Emulator, customer: str, end_behavior: str, settings: Obj, metadata: dict[str, str]) -> Obj:
    now = emu.clock.now()
    return {
        "id": emu.store.new_id("sub_sched"),
        "object": "subscription_schedule",
        "application": None,
        "billing_mode": {
            "flexible": {"proration_discounts": "included"},
            "type": "flexible",
            "updated_at": now,
        },
        "canceled_at": None,
        "completed_at": None,
        "created": now,
        "current_phase": None,
        "customer": customer,
        "customer_account": None,
        "default_settings": settings,
        "end_behavior": end_behavior,
        "livemode": False,
        "metadata": metadata,
        "pause_schedules": [],
        "phases": [],
        "released_at": None,
        "released_subscription": None,
        "status": "not_started",
        "subscription": None,
        "test_clock": None,
    }


def _from_subscription(req: Request, sub_id: str) -> Obj:
    p = req.params
    for name in sorted(p.data):
        if name not in ("from_subscription", "expand"):
            raise invalid(f"You cannot set `{name}` if `from_subscription` is set.", param=name)
    sub = req.store.get("subscriptions", sub_id, "subscription", "from_subscription")
    if sub["status"] in ("canceled", "incomplete_expired"):
        raise invalid(
            f"You cannot migrate a canceled subscription ({sub_id}) to a schedule.", param="from_subscription"
        )
    if sub["schedule"]:
        raise invalid(
            f"You cannot migrate a subscription that is already attached to a schedule: `{sub['schedule']}`.",
            param="from_subscription",
        )
    return attach(req.emulator, sub)


def _current_items(emu: Emulator, sub: Obj) -> list[PhaseItem]:
    return [
        PhaseItem(subscriptions.price_of(emu, i["price"]), i.get("quantity"), dict(i["metadata"]))
        for i in subscriptions.items_of(emu, sub)
    ]


def attach(emu: Emulator, sub: Obj) -> Obj:
    """A schedule made from the subscription: one phase, its items over its current period."""
    settings = _default_settings(Params({}), None)
    settings["collection_method"] = sub["collection_method"]
    settings["default_payment_method"] = sub["default_payment_method"]
    settings["description"] = sub["description"]
    settings["invoice_settings"] = {**settings["invoice_settings"], "days_until_due": sub["days_until_due"]}
    schedule = _blank(emu, sub["customer"], "release", settings, {})
    start, end = subscriptions.period_of(emu, sub)
    extra = {"trial_end": sub["trial_end"] if sub["status"] == "trialing" else None}
    schedule["phases"] = [
        _phase_json(start, end, _current_items(emu, sub), sub["currency"], "create_prorations", extra)
    ]
    schedule.update(
        {
            "status": "active",
            "subscription": sub["id"],
            "current_phase": {"start_date": start, "end_date": end},
        }
    )
    emu.store.insert("subscription_schedules", schedule)
    emu.store.record_event("subscription_schedule.created", schedule)
    before = emu.store.render(sub)
    sub["schedule"] = schedule["id"]
    subscriptions.record_change(emu, sub, before)
    return schedule


def schedule_at_period_end(emu: Emulator, sub: Obj, changes: dict[str, tuple[Obj, int | None]]) -> Obj:
    """Change some of the subscription's items (item id -> new price, quantity) when its current
    period ends, with its schedule (made if it has none): the current phase until then, the changed
    items for a period after, then released."""
    schedule = emu.store.coll("subscription_schedules").get(sub["schedule"] or "")
    if schedule is None or schedule["status"] not in LIVE:
        schedule = attach(emu, sub)
    before = emu.store.render(schedule)
    start = schedule["current_phase"]["start_date"]
    end = subscriptions.period_of(emu, sub)[1]
    following = []
    for item in subscriptions.items_of(emu, sub):
        price, quantity = changes.get(item["id"], (None, None))
        following.append(
            PhaseItem(
                price or subscriptions.price_of(emu, item["price"]),
                item.get("quantity") if quantity is None else quantity,
                dict(item["metadata"]),
            )
        )
    rec = following[0].price["recurring"]
    after = subscriptions.add_interval(end, rec["interval"], rec["interval_count"])
    schedule["phases"] = [
        _phase_json(start, end, _current_items(emu, sub), sub["currency"], "create_prorations", {}),
        _phase_json(end, after, following, sub["currency"], "create_prorations", {}),
    ]
    schedule["current_phase"] = {"start_date": start, "end_date": end}
    schedule["end_behavior"] = "release"
    sub_before = emu.store.render(sub)
    _sync_cancel_at(emu, schedule, sub)
    subscriptions.record_change(emu, sub, sub_before)
    _updated(emu, schedule, before)
    return schedule


def create(req: Request) -> Obj:
    emu, p, now = req.emulator, req.params, req.now
    sub_id = p.str("from_subscription")
    if sub_id is not None:
        return req.store.render(_from_subscription(req, sub_id))
    customer = p.str("customer", required=True)
    assert customer is not None
    req.store.get("customers", customer, "customer", "customer")
    start = now
    if p.has("start_date"):
        raw = p.str("start_date", required=True)
        if raw != "now":
            given = p.int("start_date")
            assert given is not None
            if given < now:
                raise invalid(
                    "The emulator does not backdate subscription schedules: start_date must be now or later.",
                    param="start_date",
                )
            start = given
    phases = _parse_phases(emu, p, start, updating=False)
    schedule = _blank(
        emu,
        customer,
        _end_behavior(p) or "release",
        _default_settings(p, None),
        apply_metadata({}, p.metadata()),
    )
    schedule["phases"] = phases
    req.store.insert("subscription_schedules", schedule)
    req.store.record_event("subscription_schedule.created", schedule)
    if start <= now:
        _start(emu, schedule)
    return req.store.render(schedule)


def retrieve(req: Request) -> Obj:
    return req.store.render(
        req.store.get("subscription_schedules", req.id(), "subscription schedule", "schedule")
    )


def _live(schedule: Obj, verb: str) -> None:
    if schedule["status"] not in LIVE:
        raise invalid(
            f"You cannot {verb} a subscription schedule that is currently in the `{schedule['status']}` status. "
            "It must be in `not_started` or `active` status to be updated.",
            param="schedule",
        )


def update(req: Request) -> Obj:
    emu, p = req.emulator, req.params
    schedule = req.store.get("subscription_schedules", req.id(), "subscription schedule", "schedule")
    _live(schedule, "update")
    before = req.store.render(schedule)
    behavior = p.enum("proration_behavior", subscriptions.PRORATION_BEHAVIORS) or "create_prorations"
    end_behavior = _end_behavior(p)
    settings = _default_settings(p, schedule["default_settings"])
    phases = None
    if p.has("phases"):
        current = schedule["current_phase"]
        first_start = current["start_date"] if current else schedule["phases"][0]["start_date"]
        if not current and p.items("phases") and p.items("phases")[0].has("start_date"):
            raw = p.items("phases")[0].str("start_date", required=True)
            first_start = req.now if raw == "now" else int(p.items("phases")[0].int("start_date") or 0)
            if first_start < req.now:
                raise invalid(
                    "The emulator does not backdate subscription schedules.", param="phases[0][start_date]"
                )
        phases = _parse_phases(emu, p, first_start, updating=True)
        if current is not None and phases[0]["end_date"] < req.now:
            raise invalid("The current phase's end_date must be in the future.", param="phases[0][end_date]")
    schedule["default_settings"] = settings
    schedule["metadata"] = apply_metadata(schedule["metadata"], p.metadata())
    if end_behavior is not None:
        schedule["end_behavior"] = end_behavior
    sub = _subscription(emu, schedule)
    if phases is not None:
        schedule["phases"] = phases
        if schedule["current_phase"] is not None:
            schedule["current_phase"] = {
                "start_date": phases[0]["start_date"],
                "end_date": phases[0]["end_date"],
            }
        if sub is not None:
            sub_before = emu.store.render(sub)
            _apply_items(emu, sub, phases[0], behavior, req.now)
            subscriptions.record_change(emu, sub, sub_before)
    if sub is not None and (phases is not None or end_behavior is not None):
        sub_before = emu.store.render(sub)
        _sync_cancel_at(emu, schedule, sub)
        subscriptions.record_change(emu, sub, sub_before)
    _updated(emu, schedule, before)
    return req.store.render(schedule)


def list_schedules(req: Request) -> Obj:
    p = req.params
    customer = p.str("customer")
    scheduled = p.bool("scheduled")
    filters = {
        name: created_filter(p, name) for name in ("created", "canceled_at", "completed_at", "released_at")
    }

    def keep(s: Obj) -> bool:
        if customer is not None and s["customer"] != customer:
            return False
        if scheduled is not None and (s["status"] == "not_started") != scheduled:
            return False
        for name, test in filters.items():
            if p.has(name) and (s[name] is None or not test(int(s[name]))):
                return False
        return True

    return req.store.paginate(
        req.store.newest_first("subscription_schedules", keep),
        p,
        "/v1/subscription_schedules",
        "subscription schedule",
    )


def release(emu: Emulator, schedule: Obj, preserve_cancel_date: bool = False) -> None:
    _live(schedule, "release")
    _release(emu, schedule, preserve_cancel_date, emu.clock.now())


def release_endpoint(req: Request) -> Obj:
    schedule = req.store.get("subscription_schedules", req.id(), "subscription schedule", "schedule")
    release(req.emulator, schedule, bool(req.params.bool("preserve_cancel_date")))
    return req.store.render(schedule)


def cancel_endpoint(req: Request) -> Obj:
    emu, p = req.emulator, req.params
    schedule = req.store.get("subscription_schedules", req.id(), "subscription schedule", "schedule")
    _live(schedule, "cancel")
    invoice_now = p.bool("invoice_now")
    prorate = p.bool("prorate")
    before = req.store.render(schedule)
    sub = _subscription(emu, schedule)
    schedule.update({"status": "canceled", "canceled_at": req.now, "current_phase": None})
    if sub is not None and sub["status"] not in ("canceled", "incomplete_expired"):
        subscriptions.cancel_subscription(
            emu, sub, True if invoice_now is None else invoice_now, True if prorate is None else prorate
        )
    req.store.record_event(
        "subscription_schedule.canceled", schedule, previous_attributes(before, render(schedule))
    )
    return req.store.render(schedule)
