"""Customers: create, retrieve, update, delete, list, search."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from . import payment_methods
from . import search as search_mod
from .common import previous_attributes, public, snapshot
from .errors import invalid
from .params import Params, apply_metadata
from .store import Kind, Obj

if TYPE_CHECKING:
    from .server import Emulator, Request

EDITABLE = {
    "name",
    "email",
    "address",
    "phone",
    "description",
    "metadata",
    "preferred_locales",
    "invoice_settings",
    "shipping",
    "balance",
    "tax_exempt",
    "invoice_prefix",
    "next_invoice_sequence",
}
CREATE_PARAMS = EDITABLE | {"payment_method", "test_clock"}
UPDATE_PARAMS = EDITABLE
ADDRESS_FIELDS = {"city", "country", "line1", "line2", "postal_code", "state"}
SEARCH_FIELDS = {"email", "name", "phone", "created", "description"}


def register(emu: Emulator) -> None:
    emu.store.register(Kind("customer", "cus", "customers", render))
    r = emu.router
    r.add("POST /v1/customers", create, CREATE_PARAMS)
    r.add(
        "GET /v1/customers", list_customers, {"email", "limit", "starting_after", "ending_before", "created"}
    )
    r.add("GET /v1/customers/search", search, {"query", "limit", "page"})
    r.add("GET /v1/customers/{id}", retrieve)
    r.add("POST /v1/customers/{id}", update, UPDATE_PARAMS)
    r.add("DELETE /v1/customers/{id}", delete)


def _address(p: Params, name: str) -> dict[str, Any] | None:
    sub = p.sub(name)
    if sub is None:
        return None
    sub.check(ADDRESS_FIELDS)
    return {f: sub.str(f, nullable=True) for f in sorted(ADDRESS_FIELDS)}


def _apply(req: Request, cus: Obj, p: Params) -> None:
    for field in ("name", "email", "phone", "description"):
        if p.has(field):
            cus[field] = p.str(field, nullable=True)
    if p.has("address"):
        cus["address"] = _address(p, "address")
    if p.has("shipping"):
        ship = p.sub("shipping")
        if ship is None:
            cus["shipping"] = None
        else:
            ship.check({"address", "name", "phone"})
            cus["shipping"] = {
                "address": _address(ship, "address"),
                "name": ship.str("name", required=True),
                "phone": ship.str("phone", nullable=True),
            }
    if p.has("preferred_locales"):
        cus["preferred_locales"] = p.str_list("preferred_locales") or []
    if p.has("balance"):
        cus["balance"] = p.int("balance")
    if p.has("tax_exempt"):
        cus["tax_exempt"] = p.enum("tax_exempt", ["none", "exempt", "reverse"])
    if p.has("invoice_prefix"):
        prefix = p.str("invoice_prefix", required=True)
        assert prefix is not None
        if not (3 <= len(prefix) <= 12 and prefix.isalnum() and prefix.upper() == prefix):
            raise invalid("Invoice prefix must be 3-12 uppercase letters or numbers.", param="invoice_prefix")
        cus["invoice_prefix"] = prefix
    if p.has("next_invoice_sequence"):
        cus["next_invoice_sequence"] = p.int("next_invoice_sequence", minimum=1)
    inv = p.sub("invoice_settings")
    if inv is not None:
        inv.check({"default_payment_method", "custom_fields", "footer", "rendering_options"})
        settings = dict(cus["invoice_settings"])
        if inv.has("default_payment_method"):
            settings["default_payment_method"] = inv.str("default_payment_method", nullable=True)
            payment_methods.check_default(
                req.emulator,
                cus["id"],
                settings["default_payment_method"],
                "invoice_settings[default_payment_method]",
            )
        if inv.has("footer"):
            settings["footer"] = inv.str("footer", nullable=True)
        cus["invoice_settings"] = settings
    if p.has("payment_method"):
        # Attaching a PaymentMethod is outside the emulated subset; remember it as usable.
        cus["invoice_settings"] = {**cus["invoice_settings"]}
        cus["_payment_method"] = p.str("payment_method")
    cus["metadata"] = apply_metadata(cus["metadata"], p.metadata())


def render(cus: Obj) -> Obj:
    return public(cus)


def _blank(emu: Emulator) -> Obj:
    now = emu.clock.now()
    cus: Obj = {
        "id": emu.store.new_id("cus"),
        "object": "customer",
        "address": None,
        "balance": 0,
        "created": now,
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": None,
        "discount": None,
        "email": None,
        "invoice_prefix": secrets.token_hex(4).upper(),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": {},
        "name": None,
        "next_invoice_sequence": 1,
        "phone": None,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }
    return cus


def make(emu: Emulator, *, email: str | None) -> Obj:
    """A customer made by Stripe itself (e.g. by a Checkout Session with ``customer_creation=always``)."""
    cus = _blank(emu)
    cus["email"] = email
    emu.store.insert("customers", cus)
    emu.store.record_event("customer.created", cus)
    return cus


def create(req: Request) -> Obj:
    cus = _blank(req.emulator)
    _apply(req, cus, req.params)
    req.store.insert("customers", cus)
    req.store.record_event("customer.created", cus)
    return req.store.render(cus)


def retrieve(req: Request) -> Obj:
    cus = req.store.coll("customers").get(req.id())
    if cus is None:
        return req.store.render(req.store.get("customers", req.id(), "customer"))
    return req.store.render(cus)  # a deleted customer retrieves as its stub


def update(req: Request) -> Obj:
    cus = req.store.get("customers", req.id(), "customer")
    before = req.store.render(cus)
    draft = snapshot(cus)
    _apply(req, draft, req.params)  # validate everything before mutating
    cus.clear()
    cus.update(draft)
    after = req.store.render(cus)
    prev = previous_attributes(before, after)
    if prev:
        req.store.record_event("customer.updated", cus, prev)
    return after


def delete(req: Request) -> Obj:
    from . import subscriptions

    store = req.store
    cus = store.get("customers", req.id(), "customer")
    snap = snapshot(cus)
    for sub in store.newest_first("subscriptions", lambda s: s["customer"] == cus["id"]):
        if sub["status"] not in ("canceled", "incomplete_expired"):
            subscriptions.cancel_now(req.emulator, sub, reason="cancellation_requested")
    stub = {"id": cus["id"], "object": "customer", "deleted": True}
    store.coll("customers")[cus["id"]] = stub
    store.record_event("customer.deleted", snap)
    return dict(stub)


def list_customers(req: Request) -> Obj:
    email = req.params.str("email")
    objs = req.store.newest_first("customers", lambda c: email is None or c.get("email") == email)
    return req.store.paginate(objs, req.params, "/v1/customers", "customer")


def search(req: Request) -> Obj:
    objs = req.store.newest_first("customers")
    return search_mod.search(req.store, objs, req.params, "/v1/customers/search", SEARCH_FIELDS)
