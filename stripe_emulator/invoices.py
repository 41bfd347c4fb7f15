"""Invoices and pending invoice items.

Invoices are built by the subscription engine (first invoice, prorations, renewals, cancel
with ``invoice_now``) and moved through draft -> open -> paid | void | uncollectible here.
Finalizing applies the customer's balance the way Stripe does: ``amount_due =
max(0, total + starting_balance)``, a negative remainder stays on the customer as credit
(``ending_balance``), and an invoice with nothing to collect is paid at once.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from . import payment_methods
from .common import previous_attributes, public, snapshot
from .errors import StripeError, invalid, missing_param
from .params import apply_metadata
from .store import Kind, Obj

if TYPE_CHECKING:
    from .server import Emulator, Request

DAY = 86400


def register(emu: Emulator) -> None:
    emu.store.register(Kind("invoice", "in", "invoices", render))
    emu.store.register(Kind("invoiceitem", "ii", "invoiceitems", None))
    r = emu.router
    r.add(
        "GET /v1/invoices",
        list_invoices,
        {
            "customer",
            "subscription",
            "status",
            "collection_method",
            "limit",
            "starting_after",
            "ending_before",
            "created",
            "due_date",
        },
    )
    r.add(
        "POST /v1/invoices/create_preview",
        create_preview,
        {"customer", "subscription", "subscription_details", "preview_mode", "currency"},
    )
    r.add("GET /v1/invoices/{id}", retrieve)
    r.add("POST /v1/invoices/{id}", update, {"metadata", "description", "footer", "auto_advance"})
    r.add("GET /v1/invoices/{id}/lines", list_lines, {"limit", "starting_after", "ending_before"})
    r.add("POST /v1/invoices/{id}/finalize", finalize_endpoint, {"auto_advance"})
    r.add(
        "POST /v1/invoices/{id}/pay",
        pay_endpoint,
        {"paid_out_of_band", "payment_method", "forgive", "off_session", "source", "mandate"},
    )
    r.add("POST /v1/invoices/{id}/void", void_endpoint)
    r.add("POST /v1/invoices/{id}/mark_uncollectible", uncollectible_endpoint)
    r.add(
        "GET /v1/invoiceitems",
        list_invoice_items,
        {"customer", "invoice", "pending", "limit", "starting_after", "ending_before", "created"},
    )
    r.add("GET /v1/invoiceitems/{id}", retrieve_invoice_item)


def render(inv: Obj) -> Obj:
    return public(inv)


# building -----------------------------------------------------------------------------------------
def make_line(
    emu: Emulator,
    *,
    amount: int,
    currency: str,
    description: str,
    period: tuple[int, int],
    price: Obj,
    quantity: int | None,
    subscription: str | None,
    subscription_item: str | None,
    proration: bool = False,
    invoice_item: str | None = None,
) -> Obj:
    return {
        "id": emu.store.new_id("il"),
        "object": "line_item",
        "amount": amount,
        "currency": currency,
        "description": description,
        "discount_amounts": [],
        "discountable": not proration,
        "discounts": [],
        "invoice": None,
        "livemode": False,
        "metadata": {},
        "parent": {
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": invoice_item,
                "proration": proration,
                "proration_details": {"credited_items": None},
                "subscription": subscription,
                "subscription_item": subscription_item,
            },
            "type": "subscription_item_details",
        },
        "period": {"start": period[0], "end": period[1]},
        "pretax_credit_amounts": [],
        "pricing": {
            "price_details": {"price": price["id"], "product": price["product"]},
            "type": "price_details",
            "unit_amount_decimal": price["unit_amount_decimal"],
        },
        "quantity": quantity,
        "subscription": subscription,
        "subtotal": amount,
        "taxes": [],
    }


def make_invoice_item(emu: Emulator, customer: str, sub: Obj, line: Obj) -> Obj:
    """A pending invoice item (e.g. a proration), swept onto the subscription's next invoice."""
    store = emu.store
    item: Obj = {
        "id": store.new_id("ii"),
        "object": "invoiceitem",
        "amount": line["amount"],
        "currency": line["currency"],
        "customer": customer,
        "date": emu.clock.now(),
        "description": line["description"],
        "discountable": False,
        "discounts": [],
        "invoice": None,
        "livemode": False,
        "metadata": {},
        "net_amount": line["amount"],
        "parent": {
            "subscription_details": {
                "subscription": sub["id"],
                "subscription_item": line["parent"]["subscription_item_details"]["subscription_item"],
            },
            "type": "subscription_details",
        },
        "period": dict(line["period"]),
        "pricing": snapshot(line["pricing"]),
        "proration": line["parent"]["subscription_item_details"]["proration"],
        "proration_details": {"discount_amounts": []},
        "quantity": line["quantity"],
        "tax_rates": [],
        "test_clock": None,
    }
    store.insert("invoiceitems", item)
    store.record_event("invoiceitem.created", item)
    return item


def pending_items(emu: Emulator, customer: str, subscription: str | None) -> list[Obj]:
    out = []
    for ii in emu.store.coll("invoiceitems").grouped("customer", customer):
        if ii["invoice"] is not None:
            continue
        if subscription is None or subscription_id(ii) in (None, subscription):
            out.append(ii)
    return out


def line_from_item(emu: Emulator, ii: Obj) -> Obj:
    sub_details = ii["parent"]["subscription_details"]
    return {
        "id": emu.store.new_id("il"),
        "object": "line_item",
        "amount": ii["amount"],
        "currency": ii["currency"],
        "description": ii["description"],
        "discount_amounts": [],
        "discountable": ii["discountable"],
        "discounts": [],
        "invoice": ii["invoice"],
        "livemode": False,
        "metadata": dict(ii["metadata"]),
        "parent": {
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": ii["id"],
                "proration": ii["proration"],
                "proration_details": {"credited_items": None},
                "subscription": sub_details["subscription"],
                "subscription_item": sub_details["subscription_item"],
            },
            "type": "subscription_item_details",
        },
        "period": dict(ii["period"]),
        "pretax_credit_amounts": [],
        "pricing": snapshot(ii["pricing"]),
        "quantity": ii["quantity"],
        "subscription": sub_details["subscription"],
        "subtotal": ii["amount"],
        "taxes": [],
    }


def _customer_fields(emu: Emulator, customer_id: str) -> Obj:
    cus = emu.store.coll("customers").get(customer_id) or {}
    return {
        "customer_address": copy.deepcopy(cus.get("address")),
        "customer_email": cus.get("email"),
        "customer_name": cus.get("name"),
        "customer_phone": cus.get("phone"),
        "customer_shipping": copy.deepcopy(cus.get("shipping")),
        "customer_tax_exempt": cus.get("tax_exempt", "none"),
    }


def build_invoice(
    emu: Emulator,
    *,
    customer: str,
    sub: Obj | None,
    lines: list[Obj],
    billing_reason: str,
    period: tuple[int, int],
    sweep_pending: bool = True,
    preview: bool = False,
) -> Obj:
    """A draft invoice with ``lines`` plus (if ``sweep_pending``) the subscription's pending items."""
    store = emu.store
    now = emu.clock.now()
    inv_id = f"upcoming_in_{store.new_id('x')[2:]}" if preview else store.new_id("in")
    items = pending_items(emu, customer, sub["id"] if sub else None) if sweep_pending else []
    all_lines = [line_from_item(emu, ii) for ii in items] + lines
    if not preview:
        for ii in items:
            ii["invoice"] = inv_id
    for line in all_lines:
        line["invoice"] = inv_id
    currency = (sub or {}).get("currency") or (all_lines[0]["currency"] if all_lines else "usd")
    total = sum(line["amount"] for line in all_lines)
    collection = sub["collection_method"] if sub else "charge_automatically"
    inv: Obj = {
        "id": inv_id,
        "object": "invoice",
        "account_country": "US",
        "account_name": "Stripe Emulator",
        "account_tax_ids": None,
        "amount_due": max(0, total),
        "amount_overpaid": 0,
        "amount_paid": 0,
        "amount_remaining": max(0, total),
        "amount_shipping": 0,
        "application": None,
        "attempt_count": 0,
        "attempted": False,
        "auto_advance": collection == "charge_automatically" or billing_reason != "manual",
        "automatic_tax": {
            "disabled_reason": None,
            "enabled": False,
            "liability": None,
            "provider": None,
            "status": None,
        },
        "automatically_finalizes_at": None,
        "billing_reason": billing_reason,
        "collection_method": collection,
        "confirmation_secret": None,
        "created": now,
        "currency": currency,
        "custom_fields": None,
        "customer": customer,
        **_customer_fields(emu, customer),
        "customer_tax_ids": [],
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "due_date": None,
        "effective_at": None,
        "ending_balance": None,
        "footer": None,
        "from_invoice": None,
        "hosted_invoice_url": None,
        "invoice_pdf": None,
        "issuer": {"type": "self"},
        "last_finalization_error": None,
        "latest_revision": None,
        "lines": {
            "object": "list",
            "data": all_lines,
            "has_more": False,
            "total_count": len(all_lines),
            "url": f"/v1/invoices/{inv_id}/lines",
        },
        "livemode": False,
        "metadata": {},
        "next_payment_attempt": None,
        "number": None,
        "on_behalf_of": None,
        "parent": None
        if sub is None
        else {
            "quote_details": None,
            "subscription_details": {
                "metadata": dict(sub["metadata"]),
                "subscription": sub["id"],
                "subscription_proration_date": None,
            },
            "type": "subscription_details",
        },
        "payment_settings": {
            "default_mandate": None,
            "payment_method_options": None,
            "payment_method_types": None,
        },
        "period_end": period[1],
        "period_start": period[0],
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": None,
        "rendering": None,
        "shipping_cost": None,
        "shipping_details": None,
        "starting_balance": (store.coll("customers").get(customer) or {}).get("balance", 0),
        "statement_descriptor": None,
        "status": "draft",
        "status_transitions": {
            "finalized_at": None,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        },
        "subtotal": total,
        "subtotal_excluding_tax": total,
        "test_clock": None,
        "total": total,
        "total_discount_amounts": [],
        "total_excluding_tax": total,
        "total_pretax_credit_amounts": [],
        "total_taxes": [],
        "webhooks_delivered_at": None,
    }
    if preview:
        net = total + inv["starting_balance"]
        inv["amount_due"] = inv["amount_remaining"] = max(0, net)
        return inv
    store.insert("invoices", inv)
    store.record_event("invoice.created", inv)
    return inv


# state transitions ------------------------------------------------------------------------------
def finalize(emu: Emulator, inv: Obj) -> None:
    """Draft -> open; a ``send_invoice`` invoice is due after its subscription's ``days_until_due``
    (30 days without one)."""
    store = emu.store
    now = emu.clock.now()
    cus = store.coll("customers").get(inv["customer"])
    balance = cus.get("balance", 0) if cus else 0
    net = inv["total"] + balance
    inv["starting_balance"] = balance
    inv["amount_due"] = max(0, net)
    inv["amount_remaining"] = inv["amount_due"]
    inv["ending_balance"] = min(0, net)
    if cus is not None and not cus.get("deleted"):
        if cus["balance"] != inv["ending_balance"]:
            before = store.render(cus)
            cus["balance"] = inv["ending_balance"]
            store.record_event("customer.updated", cus, previous_attributes(before, store.render(cus)))
        seq = cus.get("next_invoice_sequence", 1)
        cus["next_invoice_sequence"] = seq + 1
        inv["number"] = f"{cus['invoice_prefix']}-{seq:04d}"
    else:
        inv["number"] = f"EMU-{store.next_counter('invoice_number'):04d}"
    inv["status"] = "open"
    inv["effective_at"] = now
    inv["status_transitions"]["finalized_at"] = now
    inv["hosted_invoice_url"] = f"https://invoice.stripe.com/i/acct_emulator/test_{inv['id']}"
    inv["invoice_pdf"] = f"https://pay.stripe.com/invoice/acct_emulator/test_{inv['id']}/pdf"
    if inv["collection_method"] == "send_invoice":
        days_until_due = (_subscription_of(emu, inv) or {}).get("days_until_due")
        days = 30 if days_until_due is None else days_until_due
        inv["due_date"] = now + days * DAY
    store.record_event("invoice.finalized", inv)
    if inv["amount_due"] == 0:
        payment_succeeded(emu, inv)


def payment_method_for(emu: Emulator, inv: Obj) -> str | None:
    sub = _subscription_of(emu, inv)
    if sub is not None and sub.get("default_payment_method"):
        return str(sub["default_payment_method"])
    return payment_method_for_customer(emu, inv["customer"])


def payment_method_for_customer(emu: Emulator, customer: str) -> str | None:
    cus = emu.store.coll("customers").get(customer) or {}
    pm = (cus.get("invoice_settings") or {}).get("default_payment_method") or cus.get("_payment_method")
    return str(pm) if pm else None


def pays(emu: Emulator, payment_method: str | None) -> bool:
    """Whether an off-session payment with ``payment_method`` goes through (see ``payment_methods``)."""
    return (
        payment_method is not None
        and payment_methods.outcome(emu, payment_method) == payment_methods.SUCCEEDS
    )


def attempt_payment(emu: Emulator, inv: Obj) -> None:
    """Charge automatically: succeeds with a usable payment method; a payment method that needs the
    customer's authentication leaves the invoice open with ``invoice.payment_action_required``; else a
    failed attempt."""
    if inv["status"] != "open" or inv["collection_method"] != "charge_automatically":
        return
    pm = payment_method_for(emu, inv)
    if pays(emu, pm):
        payment_succeeded(emu, inv)
    else:
        action = pm is not None and payment_methods.outcome(emu, pm) == payment_methods.REQUIRES_ACTION
        payment_failed(emu, inv, action_required=action)


def subscription_id(inv: Obj) -> str | None:
    """The id of the subscription ``inv`` belongs to, if any."""
    sub_id = ((inv.get("parent") or {}).get("subscription_details") or {}).get("subscription")
    return str(sub_id) if sub_id else None


def _subscription_of(emu: Emulator, inv: Obj) -> Obj | None:
    sub_id = subscription_id(inv)
    return emu.store.coll("subscriptions").get(sub_id) if sub_id else None


def payment_succeeded(emu: Emulator, inv: Obj) -> None:
    from . import subscriptions

    store = emu.store
    if inv["status"] == "draft":
        finalize(emu, inv)
        if inv["status"] == "paid":
            return
    if inv["status"] not in ("open", "uncollectible"):
        raise invalid(f"Invoice {inv['id']} is {inv['status']} and cannot be paid.")
    now = emu.clock.now()
    inv["amount_paid"] = inv["amount_due"]
    inv["amount_remaining"] = 0
    inv["status"] = "paid"
    inv["status_transitions"]["paid_at"] = now
    inv["next_payment_attempt"] = None
    if inv["amount_due"] > 0:
        inv["attempted"] = True
        inv["attempt_count"] += 1
    store.record_event("invoice.paid", inv)
    store.record_event("invoice.payment_succeeded", inv)
    sub = _subscription_of(emu, inv)
    if sub is not None:
        subscriptions.on_invoice_paid(emu, sub, inv)


def payment_failed(emu: Emulator, inv: Obj, action_required: bool = False) -> None:
    """A failed attempt. With ``action_required`` (the card needs 3D Secure) Stripe also sends
    ``invoice.payment_action_required``; the customer pays on ``hosted_invoice_url``."""
    from . import subscriptions

    if inv["status"] == "draft":
        finalize(emu, inv)
        if inv["status"] == "paid":
            return
    if inv["status"] != "open":
        raise invalid(f"Invoice {inv['id']} is {inv['status']}; only open invoices can fail payment.")
    settings = emu.settings
    inv["attempted"] = True
    inv["attempt_count"] += 1
    exhausted = inv["attempt_count"] >= settings.payment_retry_attempts
    inv["next_payment_attempt"] = (
        None
        if exhausted or inv["collection_method"] != "charge_automatically"
        else emu.clock.now() + settings.payment_retry_interval_days * DAY
    )
    emu.store.record_event("invoice.payment_failed", inv)
    if action_required:
        emu.store.record_event("invoice.payment_action_required", inv)
    sub = _subscription_of(emu, inv)
    if sub is not None:
        subscriptions.on_payment_failed(emu, sub, inv, exhausted)


def void(emu: Emulator, inv: Obj) -> None:
    if inv["status"] not in ("open", "uncollectible"):
        raise invalid("You can only void open or uncollectible invoices.", param="id")
    inv["status"] = "void"
    inv["amount_remaining"] = 0
    inv["next_payment_attempt"] = None
    inv["status_transitions"]["voided_at"] = emu.clock.now()
    emu.store.record_event("invoice.voided", inv)


def mark_uncollectible(emu: Emulator, inv: Obj) -> None:
    if inv["status"] != "open":
        raise invalid("You can only mark open invoices as uncollectible.", param="id")
    inv["status"] = "uncollectible"
    inv["next_payment_attempt"] = None
    inv["status_transitions"]["marked_uncollectible_at"] = emu.clock.now()
    emu.store.record_event("invoice.marked_uncollectible", inv)


# endpoints ----------------------------------------------------------------------------------------
def retrieve(req: Request) -> Obj:
    return req.store.render(req.store.get("invoices", req.id(), "invoice"))


def update(req: Request) -> Obj:
    inv = req.store.get("invoices", req.id(), "invoice")
    before = req.store.render(inv)
    inv["metadata"] = apply_metadata(inv["metadata"], req.params.metadata())
    for field in ("description", "footer"):
        if req.params.has(field):
            inv[field] = req.params.str(field, nullable=True)
    if req.params.has("auto_advance"):
        inv["auto_advance"] = req.params.bool("auto_advance")
    prev = previous_attributes(before, req.store.render(inv))
    if prev:
        req.store.record_event("invoice.updated", inv, prev)
    return req.store.render(inv)


def list_lines(req: Request) -> Obj:
    inv = req.store.get("invoices", req.id(), "invoice")
    lines = list(inv["lines"]["data"])
    page = req.store.paginate(lines, req.params, f"/v1/invoices/{inv['id']}/lines", "line item")
    page["data"] = [snapshot(x) for x in page["data"]]
    return page


def list_invoices(req: Request) -> Obj:
    p = req.params
    customer = p.str("customer")
    sub = p.str("subscription")
    status = p.enum("status", ["draft", "open", "paid", "uncollectible", "void"])
    method = p.enum("collection_method", ["charge_automatically", "send_invoice"])

    def keep(inv: Obj) -> bool:
        return (
            (customer is None or inv["customer"] == customer)
            and (sub is None or subscription_id(inv) == sub)
            and (status is None or inv["status"] == status)
            and (method is None or inv["collection_method"] == method)
        )

    return req.store.paginate(req.store.newest_first("invoices", keep), p, "/v1/invoices", "invoice")


def finalize_endpoint(req: Request) -> Obj:
    inv = req.store.get("invoices", req.id(), "invoice")
    if inv["status"] != "draft":
        raise invalid(
            "This invoice is already finalized, you can't re-finalize a non-draft invoice.", param="id"
        )
    if req.params.has("auto_advance"):
        inv["auto_advance"] = req.params.bool("auto_advance")
    finalize(req.emulator, inv)
    return req.store.render(inv)


def pay_endpoint(req: Request) -> Obj:
    inv = req.store.get("invoices", req.id(), "invoice")
    p = req.params
    if inv["status"] == "paid":
        raise invalid("Invoice is already paid.", param="id")
    if inv["status"] == "void":
        raise invalid("This invoice has been voided and cannot be paid.", param="id")
    if inv["status"] == "draft":
        finalize(req.emulator, inv)
        if inv["status"] == "paid":
            return req.store.render(inv)
    if p.bool("paid_out_of_band"):
        payment_succeeded(req.emulator, inv)
        return req.store.render(inv)
    pm = p.str("payment_method") or payment_method_for(req.emulator, inv)
    if pm is None:
        raise invalid(
            "This customer has no attached payment source or default payment method. Please consider "
            "adding a default payment method.",
        )
    result = payment_methods.outcome(req.emulator, pm)
    if result == payment_methods.DECLINES:
        payment_failed(req.emulator, inv)
        raise StripeError(402, "Your card was declined.", type="card_error", code="card_declined")
    if result == payment_methods.REQUIRES_ACTION:
        payment_failed(req.emulator, inv, action_required=True)
        raise StripeError(
            402,
            "This payment requires additional user action before it can be completed successfully. Payment "
            "can be completed using the PaymentIntent associated with the invoice. For more details see: "
            "https://docs.stripe.com/billing/subscriptions/overview#requires-action",
            type="card_error",
            code="invoice_payment_intent_requires_action",
        )
    payment_succeeded(req.emulator, inv)
    return req.store.render(inv)


def void_endpoint(req: Request) -> Obj:
    inv = req.store.get("invoices", req.id(), "invoice")
    void(req.emulator, inv)
    return req.store.render(inv)


def uncollectible_endpoint(req: Request) -> Obj:
    inv = req.store.get("invoices", req.id(), "invoice")
    mark_uncollectible(req.emulator, inv)
    return req.store.render(inv)


def create_preview(req: Request) -> Obj:
    from . import subscriptions

    p = req.params
    customer = p.str("customer")
    sub_id = p.str("subscription")
    if customer is None and sub_id is None:
        raise missing_param("customer")
    if customer is not None:
        req.store.get("customers", customer, "customer", "customer")
    sub: Obj | None = None
    if sub_id is not None:
        sub = req.store.get("subscriptions", sub_id, "subscription", "subscription")
        if customer is not None and sub["customer"] != customer:
            raise invalid("The subscription does not belong to this customer.", param="subscription")
    else:
        assert customer is not None
        live = [
            s
            for s in req.store.newest_first("subscriptions", lambda s: s["customer"] == customer)
            if s["status"] not in ("canceled", "incomplete_expired")
        ]
        sub = live[0] if live else None
    if sub is None:
        assert customer is not None
        items = pending_items(req.emulator, customer, None)
        if not items:
            raise no_upcoming(customer)
        return build_invoice(
            req.emulator,
            customer=customer,
            sub=None,
            lines=[],
            billing_reason="manual",
            period=(req.now, req.now),
            preview=True,
        )
    details = p.sub("subscription_details")
    return subscriptions.preview(req.emulator, sub, details)


def no_upcoming(customer: str) -> StripeError:
    return StripeError(404, f"No upcoming invoices for customer: {customer}", code="invoice_upcoming_none")


def list_invoice_items(req: Request) -> Obj:
    p = req.params
    customer = p.str("customer")
    invoice = p.str("invoice")
    pending = p.bool("pending")

    def keep(ii: Obj) -> bool:
        return (
            (customer is None or ii["customer"] == customer)
            and (invoice is None or ii["invoice"] == invoice)
            and (pending is None or (ii["invoice"] is None) == pending)
        )

    return req.store.paginate(
        req.store.newest_first("invoiceitems", keep), p, "/v1/invoiceitems", "invoice item"
    )


def retrieve_invoice_item(req: Request) -> Obj:
    return req.store.render(req.store.get("invoiceitems", req.id(), "invoiceitem"))


def summary(inv: Obj) -> dict[str, Any]:
    return {k: inv.get(k) for k in ("id", "status", "total", "amount_due", "amount_paid", "billing_reason")}
