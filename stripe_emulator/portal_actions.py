"""What a customer does in a portal session, played through the admin API (the emulator has no
hosted pages). Each action is checked against the session's configuration and flow the way the
portal offers it, and changes the same objects, with the same events, as Stripe's portal would:

=============================================================  =========================================
``POST /_emulator/billing_portal/sessions/{id}/subscription_update``  ``{"subscription", "price",
                                                               "quantity"?, "item"?}``: a plan change
``POST /_emulator/billing_portal/sessions/{id}/subscription_update_confirm``  ``{}``: confirms the
                                                               session's ``subscription_update_confirm``
                                                               flow (its items)
``POST /_emulator/billing_portal/sessions/{id}/subscription_cancel``  ``{"subscription",
                                                               "feedback"?, "comment"?}``
``POST /_emulator/billing_portal/sessions/{id}/payment_method_update``  ``{"payment_method":
                                                               "pm_card_visa"}``
=============================================================  =========================================

* A session with a flow allows only that flow's action (on the flow's subscription); without one,
  any enabled feature. The subscription must be the session customer's and not canceled.
* Plan change: the price must be one of the configuration's ``subscription_update.products`` prices
  and ``default_allowed_updates`` must include ``price`` (``quantity`` for a quantity change, within
  ``adjustable_quantity``). The item changed is ``item``, or the subscription's one item whose
  product the configuration lists. If a ``schedule_at_period_end`` condition holds
  (``decreasing_item_amount``: price x quantity goes down; ``shortening_interval``: a shorter
  billing interval), the change is scheduled for the current period's end with a subscription
  schedule (the current phase until then, the changed items after, ``end_behavior=release``):
  ``subscription_schedule.created`` (if the subscription had none), ``customer.subscription.updated``
  (``schedule``), ``subscription_schedule.updated``. Otherwise it applies now with the
  configuration's ``proration_behavior`` (a pending schedule is released first, so a later change
  replaces a scheduled one), ending a trial when ``trial_update_behavior=end_trial``:
  ``customer.subscription.updated`` and the proration's invoice items / invoice.
* Cancel: ``subscription_cancel.mode=immediately`` cancels now (``create_prorations``: a credit for
  the unused time) -> ``customer.subscription.deleted``; ``at_period_end`` sets
  ``cancel_at_period_end`` (after releasing a schedule) -> ``customer.subscription.updated``.
  ``cancellation_details`` carry the feedback (one of ``cancellation_reason.options`` when enabled)
  and comment.
* Payment method: a SetupIntent confirmed with the card (``setup_intent.created``,
  ``payment_method.attached``, ``setup_intent.succeeded``), then the customer's
  ``invoice_settings.default_payment_method`` (``customer.updated``), as the portal documents. A
  declining card answers 402 and changes nothing else.

Which of a schedule's choices the portal makes (its phases' shape, releasing a pending schedule
before an immediate change) is not documented by Stripe: these are the emulator's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import payment_methods, schedules, setup_intents, subscriptions
from .admin import AdminResult, route
from .billing_portal import ENDED
from .errors import StripeError, invalid, no_such
from .store import Obj

if TYPE_CHECKING:
    from .server import Emulator

INTERVAL_DAYS = {"day": 1, "week": 7, "month": 30, "year": 365}


def register(emu: Emulator) -> None:
    """Nothing under /v1: the admin routes below register on import."""


def _session(emu: Emulator, session_id: str) -> tuple[Obj, Obj]:
    session = emu.store.coll("billing_portal_sessions").get(session_id)
    if session is None:
        raise no_such("billing_portal.session", session_id)
    return session, emu.store.coll("billing_portal_configurations")[session["configuration"]]


def _allowed(session: Obj, config: Obj, action: str, feature: str, subscription: str | None) -> None:
    flow = session["flow"]
    if flow is not None:
        if flow["type"] != action:
            raise invalid(f"This portal session is a `{flow['type']}` flow: `{action}` is not offered in it.")
        target = (flow.get(action) or {}).get("subscription")
        if subscription is not None and target is not None and target != subscription:
            raise invalid(
                f"This portal session's flow is for the subscription {target}.", param="subscription"
            )
    if not config["features"][feature]["enabled"]:
        raise invalid(f"The `{feature}` feature is not enabled in the portal configuration {config['id']}.")


def _subscription(emu: Emulator, session: Obj, sub_id: Any) -> Obj:
    if not isinstance(sub_id, str):
        raise invalid("subscription is required", param="subscription")
    sub = emu.store.coll("subscriptions").get(sub_id)
    if sub is None or sub["customer"] != session["customer"]:
        raise no_such("subscription", sub_id, "subscription")
    if sub["status"] in ENDED:
        raise invalid(f"The subscription {sub_id} is canceled.", param="subscription")
    return sub


def _interval_days(price: Obj) -> int:
    rec = price["recurring"]
    return INTERVAL_DAYS[rec["interval"]] * int(rec["interval_count"])


def _amount(price: Obj, quantity: int | None) -> int:
    return int(price["unit_amount"] or 0) * int(quantity or 0)


def _at_period_end(config: Obj, changes: list[tuple[Obj, Obj, int | None]], emu: Emulator) -> bool:
    """Whether a ``schedule_at_period_end`` condition holds for (item, new price, new quantity)."""
    conditions = {
        c["type"] for c in config["features"]["subscription_update"]["schedule_at_period_end"]["conditions"]
    }
    for item, price, quantity in changes:
        old = subscriptions.price_of(emu, item["price"])
        new_quantity = item.get("quantity") if quantity is None else quantity
        decreasing = _amount(price, new_quantity) < _amount(old, item.get("quantity"))
        if "decreasing_item_amount" in conditions and decreasing:
            return True
        if "shortening_interval" in conditions and _interval_days(price) < _interval_days(old):
            return True
    return False


def _change_items(emu: Emulator, config: Obj, sub: Obj, changes: list[tuple[Obj, Obj, int | None]]) -> Obj:
    update = config["features"]["subscription_update"]
    if _at_period_end(config, changes, emu):
        schedule = schedules.schedule_at_period_end(
            emu, sub, {item["id"]: (price, qty) for item, price, qty in changes}
        )
        return {"subscription": emu.store.render(sub), "subscription_schedule": emu.store.render(schedule)}
    live = emu.store.coll("subscription_schedules").get(sub["schedule"] or "")
    if live is not None and live["status"] in schedules.LIVE:
        schedules.release(emu, live)
    before = emu.store.render(sub)
    subscriptions.apply_changes(
        emu,
        sub,
        [subscriptions.Change(item, price, qty) for item, price, qty in changes],
        update["proration_behavior"],
        None,
    )
    subscriptions.record_change(emu, sub, before)
    if sub["status"] == "trialing" and update["trial_update_behavior"] == "end_trial":
        subscriptions.set_trial_end(emu, sub, "now")
    return {"subscription": emu.store.render(sub), "subscription_schedule": None}


def _offered(config: Obj, price_id: str) -> bool:
    products = config["features"]["subscription_update"]["products"] or []
    return any(price_id in p["prices"] for p in products)


def _item_for(emu: Emulator, config: Obj, sub: Obj, item_id: Any) -> Obj:
    items = subscriptions.items_of(emu, sub)
    if item_id is not None:
        for item in items:
            if item["id"] == item_id:
                return item
        raise no_such("subscription item", str(item_id), "item")
    listed = {p["product"] for p in config["features"]["subscription_update"]["products"] or []}
    candidates = [i for i in items if subscriptions.price_of(emu, i["price"])["product"] in listed]
    if len(candidates) != 1:
        raise invalid(
            "Name the subscription item to change (`item`): the portal updates the item whose product the "
            "configuration lists, and the subscription has "
            f"{len(candidates)} of them.",
            param="item",
        )
    return candidates[0]


def _check_update(config: Obj, item: Obj, price: Obj, quantity: int | None) -> None:
    update = config["features"]["subscription_update"]
    allowed = set(update["default_allowed_updates"])
    if price["id"] != item["price"]:
        if "price" not in allowed:
            raise invalid("This portal configuration does not allow price changes.", param="price")
        if not _offered(config, price["id"]):
            raise invalid(
                f"The price {price['id']} is not offered in this portal configuration.", param="price"
            )
    if quantity is not None and quantity != item.get("quantity"):
        if "quantity" not in allowed:
            raise invalid("This portal configuration does not allow quantity changes.", param="quantity")
        for product in update["products"] or []:
            if product["product"] == price["product"]:
                bounds = product["adjustable_quantity"]
                if not bounds["enabled"]:
                    raise invalid(
                        "This product's quantity cannot be adjusted in the portal.", param="quantity"
                    )
                if quantity < bounds["minimum"] or (
                    bounds["maximum"] is not None and quantity > bounds["maximum"]
                ):
                    raise invalid(
                        "The quantity is outside what this portal configuration allows.", param="quantity"
                    )


def _price(emu: Emulator, price_id: Any, param: str = "price") -> Obj:
    price = emu.store.coll("prices").get(str(price_id))
    if price is None:
        raise no_such("price", str(price_id), param)
    return price


def _quantity(body: dict[str, Any]) -> int | None:
    quantity = body.get("quantity")
    if quantity is not None and (not isinstance(quantity, int) or quantity < 0):
        raise invalid("quantity must be a non-negative integer", param="quantity")
    return quantity


@route("POST /_emulator/billing_portal/sessions/{id}/subscription_update")
def subscription_update(
    emu: Emulator, p: dict[str, str], body: dict[str, Any], q: dict[str, str]
) -> AdminResult:
    with emu.store.lock:
        emu.due.run()
        session, config = _session(emu, p["id"])
        _allowed(session, config, "subscription_update", "subscription_update", body.get("subscription"))
        sub = _subscription(emu, session, body.get("subscription"))
        item = _item_for(emu, config, sub, body.get("item"))
        price = _price(emu, body.get("price", item["price"]))
        quantity = _quantity(body)
        _check_update(config, item, price, quantity)
        return 200, _change_items(emu, config, sub, [(item, price, quantity)])


@route("POST /_emulator/billing_portal/sessions/{id}/subscription_update_confirm")
def subscription_update_confirm(
    emu: Emulator, p: dict[str, str], body: dict[str, Any], q: dict[str, str]
) -> AdminResult:
    with emu.store.lock:
        emu.due.run()
        session, config = _session(emu, p["id"])
        flow = session["flow"]
        if flow is None or flow["type"] != "subscription_update_confirm":
            raise invalid("This portal session is not a `subscription_update_confirm` flow.")
        confirm = flow["subscription_update_confirm"]
        sub = _subscription(emu, session, confirm["subscription"])
        items = {i["id"]: i for i in subscriptions.items_of(emu, sub)}
        changes = []
        for entry in confirm["items"]:
            item = items.get(entry["id"])
            if item is None:
                raise no_such("subscription item", entry["id"], "items")
            changes.append((item, _price(emu, entry["price"] or item["price"]), entry["quantity"]))
        return 200, _change_items(emu, config, sub, changes)


@route("POST /_emulator/billing_portal/sessions/{id}/subscription_cancel")
def subscription_cancel(
    emu: Emulator, p: dict[str, str], body: dict[str, Any], q: dict[str, str]
) -> AdminResult:
    with emu.store.lock:
        emu.due.run()
        session, config = _session(emu, p["id"])
        _allowed(session, config, "subscription_cancel", "subscription_cancel", body.get("subscription"))
        sub = _subscription(emu, session, body.get("subscription"))
        cancel = config["features"]["subscription_cancel"]
        feedback, comment = body.get("feedback"), body.get("comment")
        reasons = cancel["cancellation_reason"]
        if feedback is not None and (
            feedback not in subscriptions.CANCELLATION_FEEDBACK
            or (reasons["enabled"] and feedback not in reasons["options"])
        ):
            raise invalid(
                "feedback must be one of the configuration's cancellation reasons", param="feedback"
            )
        if comment is not None and not isinstance(comment, str):
            raise invalid("comment must be a string", param="comment")
        if cancel["mode"] == "immediately":
            subscriptions.cancel_subscription(
                emu, sub, False, cancel["proration_behavior"] == "create_prorations", comment, feedback
            )
            return 200, {"subscription": emu.store.render(sub)}
        if sub["cancel_at_period_end"]:
            raise invalid(f"The subscription {sub['id']} is already set to cancel.", param="subscription")
        live = emu.store.coll("subscription_schedules").get(sub["schedule"] or "")
        if live is not None and live["status"] in schedules.LIVE:
            schedules.release(emu, live)
        before = emu.store.render(sub)
        sub["cancel_at_period_end"] = True
        sub["cancel_at"] = subscriptions.period_of(emu, sub)[1]
        sub["canceled_at"] = emu.clock.now()
        sub["cancellation_details"] = {
            "comment": comment,
            "feedback": feedback,
            "reason": "cancellation_requested",
        }
        subscriptions.record_change(emu, sub, before)
        return 200, {"subscription": emu.store.render(sub)}


@route("POST /_emulator/billing_portal/sessions/{id}/payment_method_update")
def payment_method_update(
    emu: Emulator, p: dict[str, str], body: dict[str, Any], q: dict[str, str]
) -> AdminResult:
    payment_method = payment_methods.entered(body)
    with emu.store.lock:
        emu.due.run()
        session, config = _session(emu, p["id"])
        _allowed(session, config, "payment_method_update", "payment_method_update", None)
        seti = setup_intents.create(emu, customer=session["customer"], description=None, metadata={})
        pm = setup_intents.confirm(emu, seti, payment_method)
        if pm is None:
            raise StripeError(
                402,
                "Your card was declined.",
                type="card_error",
                code="card_declined",
                param="payment_method",
            )
        payment_methods.set_default(emu, session["customer"], pm["id"])
        customer = emu.store.coll("customers")[session["customer"]]
        return 200, {"customer": emu.store.render(customer), "payment_method": emu.store.render(pm)}
