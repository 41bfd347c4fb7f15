"""Pending updates: ``payment_behavior=pending_if_incomplete`` on subscription updates.

As Stripe documents them (billing/subscriptions/pending-updates and its reference page, and the
Subscription object's ``pending_update``):

* Only some parameters may come with ``pending_if_incomplete``: on ``POST /v1/subscriptions/{id}``
  ``expand``, ``payment_behavior``, ``proration_behavior``, ``proration_date``,
  ``billing_cycle_anchor``, ``items`` (``price``, ``quantity``), ``trial_end``, ``trial_from_plan``,
  ``add_invoice_items``, and since the API versions the emulator speaks ``metadata`` (2026-05-27.dahlia)
  and ``cancel_at_period_end`` (2026-09-30.endive); on the subscription item endpoints
  ``expand``, ``payment_behavior``, ``proration_behavior``, ``proration_date``, ``price``,
  ``quantity``. Any other is a 400 (the emulator names the first one in ``param``).
  ``items[][id]`` is accepted too: it is how an update names the item it changes.
* Pending updates are not supported when the subscription's ``collection_method`` is
  ``send_invoice`` (Stripe's caution on the pending-updates page): a 400 here.
* An update that makes no invoice to pay now applies at once, as without the flag. One that does
  (e.g. ``proration_behavior=always_invoice`` on an upgrade) is applied only if its payment
  succeeds. If payment fails the subscription keeps its items and prices, ``latest_invoice`` is the
  new open invoice, and ``pending_update`` holds the changes (``subscription_items``, ``trial_end``,
  ``billing_cycle_anchor``, ``trial_from_plan``, ``metadata``, ``cancel_at_period_end``) and
  ``expires_at``: the trial end or the current period end, whichever comes first, and at most
  23 hours after the update. The subscription's status does not change (it "continues to cycle as if
  no update request was made").
* Paying that invoice later applies the changes and clears ``pending_update``; a payment that fails
  again leaves it, with its expiry. Once ``expires_at`` has passed on the emulator clock the invoice
  is voided and the update discarded.

Events (emulator's reading; the docs name the types but not their order):
``customer.subscription.updated`` with ``previous_attributes`` whenever ``pending_update`` appears,
is applied or is discarded, followed by ``customer.subscription.pending_update_applied`` or
``customer.subscription.pending_update_expired``; the invoice's own events as usual
(``invoice.created``, ``invoice.finalized``, ``invoice.payment_failed``, ``invoice.paid``,
``invoice.voided``). A second pending update replaces the first, whose invoice is voided (Stripe's
docs do not say; this is the emulator's choice).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import invoices
from .errors import invalid
from .params import Params
from .store import Obj

if TYPE_CHECKING:
    from .server import Emulator

MAX_LIFETIME = 23 * 3600
SUBSCRIPTION_PARAMS = frozenset(
    {
        "expand",
        "payment_behavior",
        "proration_behavior",
        "proration_date",
        "billing_cycle_anchor",
        "items",
        "trial_end",
        "trial_from_plan",
        "add_invoice_items",
        "metadata",
        "cancel_at_period_end",
    }
)
ITEM_PARAMS = frozenset({"id", "price", "quantity"})
ITEM_ENDPOINT_PARAMS = frozenset(
    {
        "expand",
        "payment_behavior",
        "proration_behavior",
        "proration_date",
        "price",
        "quantity",
        "subscription",
    }
)
_PRIVATE = "_pending"  # what applying needs: the invoice, the changed fields, the items as updated
_ATTEMPT = "_pending_attempt"  # set while an update's payment is tried: a failure moves no status


def check(sub: Obj, p: Params, allowed: frozenset[str]) -> None:
    """Refuse what Stripe refuses with ``pending_if_incomplete``."""
    if sub["collection_method"] == "send_invoice":
        raise invalid(
            "Pending updates are not supported when the subscription's collection_method is send_invoice.",
            param="payment_behavior",
        )
    for name in sorted(p.data):
        if name not in allowed:
            raise _unsupported(p.path(name))
    for ip in p.items("items"):
        for name in sorted(ip.data):
            if name not in ITEM_PARAMS:
                raise _unsupported(ip.path(name))


def _unsupported(param: str) -> Exception:
    return invalid(
        f"The parameter {param} cannot be used with payment_behavior=pending_if_incomplete: pending "
        "updates support only the parameters listed at "
        "https://docs.stripe.com/billing/subscriptions/pending-updates-reference#supported-attributes.",
        param=param,
    )


@dataclass
class Attempt:
    """The subscription before an update that may become pending."""

    sub: Obj
    items: dict[str, Obj]
    invoices: frozenset[str]
    events: frozenset[str]


def begin(emu: Emulator, sub: Obj) -> Attempt:
    coll = emu.store.coll("subscription_items")
    attempt = Attempt(
        sub=copy.deepcopy(sub),
        items={k: copy.deepcopy(v) for k, v in coll.items() if v["subscription"] == sub["id"]},
        invoices=frozenset(emu.store.coll("invoices")),
        events=frozenset(emu.store.coll("events")),
    )
    sub[_ATTEMPT] = True
    return attempt


def unpaid_invoice(emu: Emulator, sub: Obj, attempt: Attempt) -> Obj | None:
    """The invoice the update created that is still to be paid, if any."""
    for inv_id, inv in emu.store.coll("invoices").items():
        if (
            inv_id not in attempt.invoices
            and invoices.subscription_id(inv) == sub["id"]
            and inv["status"] == "open"
            and inv["amount_due"] > 0
        ):
            return inv
    return None


def hold(emu: Emulator, sub: Obj, attempt: Attempt, invoice: Obj, items: list[Obj]) -> None:
    """Put the subscription back as it was and keep the update (``items``: the items as updated,
    rendered) as pending until ``invoice`` is paid."""
    store = emu.store
    sub.pop(_ATTEMPT, None)
    coll = store.coll("subscription_items")
    updated = {k: v for k, v in coll.items() if v["subscription"] == sub["id"]}
    fields = {
        k: copy.deepcopy(v)
        for k, v in sub.items()
        if k not in ("latest_invoice", "pending_update") and attempt.sub.get(k) != v
    }
    for item_id in updated:
        if item_id not in attempt.items:
            del coll[item_id]
    coll.update(attempt.items)
    # what ending a trial inside the update recorded about the subscription did not happen
    for evt_id in [e for e in store.coll("events") if e not in attempt.events]:
        evt = store.coll("events")[evt_id]
        if evt["type"].startswith("customer.subscription.") and evt["data"]["object"]["id"] == sub["id"]:
            del store.coll("events")[evt_id]
    replaced = sub.get(_PRIVATE)
    sub.clear()
    sub.update(copy.deepcopy(attempt.sub))
    sub.pop(_ATTEMPT, None)
    if replaced is not None:
        _void(emu, replaced["invoice"])
    sub["latest_invoice"] = invoice["id"]
    sub[_PRIVATE] = {"invoice": invoice["id"], "fields": fields, "items": updated}
    sub["pending_update"] = {
        "billing_cycle_anchor": fields.get("billing_cycle_anchor"),
        "cancel_at_period_end": fields.get("cancel_at_period_end"),
        "discount": None,
        "discounts": None,
        "expires_at": _expiry(emu, attempt),
        "metadata": fields.get("metadata"),
        "subscription_items": items,
        "trial_end": fields.get("trial_end"),
        "trial_from_plan": None,
    }


def settle(sub: Obj) -> None:
    """The update went through (no invoice, or paid at once)."""
    sub.pop(_ATTEMPT, None)


def _expiry(emu: Emulator, attempt: Attempt) -> int:
    """The trial end or the current period end, whichever comes first, at most 23 hours away."""
    ends = [emu.clock.now() + MAX_LIFETIME]
    ends += [int(i["current_period_end"]) for i in attempt.items.values() if not i.get("deleted")]
    if attempt.sub["status"] == "trialing" and attempt.sub["trial_end"]:
        ends.append(int(attempt.sub["trial_end"]))
    return min(ends)


def failure_moves_status(sub: Obj, inv: Obj) -> bool:
    """Whether a failed payment of ``inv`` may move the subscription's status: not while an update
    is being tried, nor for the invoice of a pending update."""
    if sub.get(_ATTEMPT):
        return False
    pending = sub.get(_PRIVATE)
    return pending is None or pending["invoice"] != inv["id"]


def is_pending_invoice(sub: Obj, inv: Obj) -> bool:
    pending = sub.get(_PRIVATE)
    return pending is not None and pending["invoice"] == inv["id"]


def apply(emu: Emulator, sub: Obj) -> None:
    """The pending update's invoice was paid: make its changes."""
    pending = sub.pop(_PRIVATE)
    emu.store.coll("subscription_items").update(pending["items"])
    sub.update(copy.deepcopy(pending["fields"]))
    sub["pending_update"] = None


def expires_at(sub: Obj) -> int | None:
    update = sub.get("pending_update")
    return int(update["expires_at"]) if update else None


def discard(emu: Emulator, sub: Obj) -> None:
    """The pending update expired: void its invoice, forget its changes."""
    pending = sub.pop(_PRIVATE, None)
    sub["pending_update"] = None
    if pending is not None:
        _void(emu, pending["invoice"])


def _void(emu: Emulator, invoice_id: str) -> None:
    inv = emu.store.coll("invoices").get(invoice_id)
    if inv is not None and inv["status"] in ("open", "uncollectible"):
        invoices.void(emu, inv)
