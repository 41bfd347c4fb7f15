"""Checkout Sessions in setup mode: collect a payment method for later, off-session payments.

As Stripe documents them (api/checkout/sessions, payments/save-and-reuse with Checkout):

* ``POST /v1/checkout/sessions`` with ``mode=setup``; ``currency`` is required unless
  ``allowed_payment_method_types`` is given; ``line_items`` are refused in setup mode; ``customer``
  and ``customer_email`` exclude each other; ``ui_mode`` is ``hosted_page`` (default; the session
  has a ``url``), ``embedded_page``, ``elements`` or ``form`` (a ``client_secret`` instead; no
  ``success_url``/``cancel_url``; ``embedded_page`` needs ``return_url`` unless
  ``redirect_on_completion=never``); ``expires_at`` 30 minutes to 24 hours ahead (default 24 hours).
  The session's SetupIntent is made at once (``setup_intent.created``), with
  ``setup_intent_data[description|metadata]``. Payment and subscription modes are not emulated (400).
* ``GET /v1/checkout/sessions/{id}``, ``GET /v1/checkout/sessions`` (``customer``, ``status``,
  ``setup_intent``, ``created``), ``POST /v1/checkout/sessions/{id}/expire`` (open sessions only;
  also on the clock at ``expires_at``): ``status=expired``, the SetupIntent canceled,
  ``checkout.session.expired``.
* What the customer does on the page is played by ``POST /_emulator/checkout/sessions/{id}/complete``
  ``{"payment_method": "pm_card_visa"}`` (the default): the SetupIntent is confirmed with that card
  (see ``setup_intents``); a declining card leaves the session open and answers 402 with Stripe's
  card error; otherwise the new PaymentMethod is attached to the session's customer (made first with
  ``customer_creation=always`` when the session has none), then ``setup_intent.succeeded`` and
  ``checkout.session.completed``: ``status=complete``, ``payment_status=no_payment_required``,
  ``url`` null. Making it the customer's default payment method is left to the integration, as in
  Stripe.
"""

from __future__ import annotations

import re
import secrets
from typing import TYPE_CHECKING, Any

from . import customers, payment_methods, setup_intents
from .admin import AdminResult, route
from .common import created_filter, public
from .errors import StripeError, invalid, missing_param, no_such
from .params import Params, apply_metadata
from .store import Kind, Obj

if TYPE_CHECKING:
    from .server import Emulator, Request

MIN_LIFETIME, MAX_LIFETIME = 30 * 60, 24 * 3600
UI_MODES = ["elements", "embedded_page", "form", "hosted_page"]
CREATE_PARAMS = {
    "mode",
    "currency",
    "customer",
    "customer_email",
    "customer_creation",
    "client_reference_id",
    "success_url",
    "cancel_url",
    "return_url",
    "redirect_on_completion",
    "ui_mode",
    "metadata",
    "setup_intent_data",
    "expires_at",
    "locale",
    "allowed_payment_method_types",
    "excluded_payment_method_types",
    "billing_address_collection",
    "line_items",
}


def register(emu: Emulator) -> None:
    emu.store.register(Kind("checkout.session", "cs_test", "checkout_sessions", render))
    emu.due.add_source("cs_test", "checkout_sessions", _next_due, _expire_due, rank=1)
    r = emu.router
    r.add("POST /v1/checkout/sessions", create, CREATE_PARAMS)
    r.add(
        "GET /v1/checkout/sessions",
        list_sessions,
        {
            "customer",
            "status",
            "setup_intent",
            "payment_intent",
            "subscription",
            "payment_link",
            "created",
            "limit",
            "starting_after",
            "ending_before",
        },
    )
    r.add("GET /v1/checkout/sessions/{id}", retrieve)
    r.add("POST /v1/checkout/sessions/{id}/expire", expire_endpoint)


def render(session: Obj) -> Obj:
    return public(session)


def _url_param(p: Params, name: str) -> str | None:
    value = p.str(name)
    if value is not None and not re.match(r"^https?://", value):
        raise invalid(f"Not a valid URL: {name} must be an http(s) URL.", param=name)
    return value


def create(req: Request) -> Obj:
    emu, p, now = req.emulator, req.params, req.now
    mode = p.enum("mode", ["payment", "setup", "subscription"], required=True)
    if mode != "setup":
        raise invalid("The emulator supports Checkout Sessions in setup mode only.", param="mode")
    if p.has("line_items"):
        raise invalid("You can not pass `line_items` in `setup` mode.", param="line_items")
    allowed_types = p.str_list("allowed_payment_method_types")
    excluded_types = p.str_list("excluded_payment_method_types")
    currency = p.str("currency")
    if currency is None and not allowed_types:
        raise missing_param("currency")
    if currency is not None and not re.fullmatch(r"[a-z]{3}", currency):
        raise invalid(f"Invalid currency: {currency}.", param="currency")
    customer_id = p.str("customer")
    email = p.str("customer_email")
    if customer_id is not None and email is not None:
        raise invalid(
            "You may only specify one of these parameters: customer, customer_email.", param="customer"
        )
    if customer_id is not None:
        req.store.get("customers", customer_id, "customer", "customer")
    creation = p.enum("customer_creation", ["always", "if_required"])
    ui_mode = p.enum("ui_mode", UI_MODES) or "hosted_page"
    success_url, cancel_url, return_url = (
        _url_param(p, n) for n in ("success_url", "cancel_url", "return_url")
    )
    redirect = p.enum("redirect_on_completion", ["always", "if_required", "never"])
    if ui_mode == "hosted_page":
        for name, value in (("return_url", return_url), ("redirect_on_completion", redirect)):
            if value is not None:
                raise invalid(
                    f"`{name}` can only be passed when `ui_mode` is `embedded_page` or `elements`.",
                    param=name,
                )
    else:
        for name, value in (("success_url", success_url), ("cancel_url", cancel_url)):
            if value is not None:
                raise invalid(f"`{name}` is not allowed when `ui_mode` is `{ui_mode}`.", param=name)
        if ui_mode == "embedded_page" and return_url is None and redirect != "never":
            raise missing_param("return_url")
    expires_at = p.int("expires_at")
    if expires_at is not None and not now + MIN_LIFETIME <= expires_at <= now + MAX_LIFETIME:
        raise invalid(
            "The `expires_at` timestamp must be between 30 minutes and 24 hours from Checkout Session creation.",
            param="expires_at",
        )
    client_reference_id = p.str("client_reference_id")
    if client_reference_id is not None and len(client_reference_id) > 200:
        raise invalid("client_reference_id can be at most 200 characters.", param="client_reference_id")
    seti_data = p.sub("setup_intent_data")
    seti_description: str | None = None
    seti_metadata: dict[str, str] = {}
    if seti_data is not None:
        seti_data.check({"description", "metadata", "on_behalf_of"})
        seti_description = seti_data.str("description")
        seti_metadata = apply_metadata({}, seti_data.metadata())
    p.str("locale")
    p.enum("billing_address_collection", ["auto", "required"])
    metadata = apply_metadata({}, p.metadata())

    seti = setup_intents.create(
        emu, customer=customer_id, description=seti_description, metadata=seti_metadata
    )
    session_id = req.store.new_id("cs_test")
    embedded = ui_mode != "hosted_page"
    session: Obj = {
        "id": session_id,
        "object": "checkout.session",
        "adaptive_pricing": None,
        "after_expiration": None,
        "allow_promotion_codes": None,
        "allowed_payment_method_types": allowed_types,
        "amount_subtotal": None,
        "amount_total": None,
        "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
        "billing_address_collection": p.str("billing_address_collection"),
        "cancel_url": cancel_url,
        "client_reference_id": client_reference_id,
        "client_secret": f"{session_id}_secret_{secrets.token_hex(12)}" if embedded else None,
        "collected_information": None,
        "consent": None,
        "consent_collection": None,
        "created": now,
        "currency": currency,
        "currency_conversion": None,
        "custom_fields": [],
        "custom_text": {
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        "customer": customer_id,
        "customer_account": None,
        "customer_creation": creation,
        "customer_details": None,
        "customer_email": email,
        "discounts": [],
        "excluded_payment_method_types": excluded_types,
        "expires_at": expires_at or now + MAX_LIFETIME,
        "invoice": None,
        "invoice_creation": None,
        "livemode": False,
        "locale": p.str("locale"),
        "metadata": metadata,
        "mode": "setup",
        "optional_items": None,
        "payment_intent": None,
        "payment_link": None,
        "payment_method_collection": "always",
        "payment_method_configuration_details": None,
        "payment_method_options": {},
        "payment_method_types": list(allowed_types or ["card"]),
        "payment_status": "no_payment_required",
        "phone_number_collection": {"enabled": False},
        "recovered_from": None,
        "redirect_on_completion": redirect or ("always" if ui_mode == "embedded_page" else None),
        "return_url": return_url,
        "saved_payment_method_options": None,
        "setup_intent": seti["id"],
        "shipping_address_collection": None,
        "shipping_cost": None,
        "shipping_options": [],
        "status": "open",
        "submit_type": None,
        "subscription": None,
        "success_url": success_url,
        "tax_id_collection": {"enabled": False, "required": "never"},
        "total_details": None,
        "ui_mode": ui_mode,
        "url": None if embedded else f"https://checkout.stripe.com/c/pay/{session_id}",
        "wallet_options": None,
    }
    req.store.insert("checkout_sessions", session)
    return req.store.render(session)


def retrieve(req: Request) -> Obj:
    return req.store.render(req.store.get("checkout_sessions", req.id(), "checkout.session", "session"))


def list_sessions(req: Request) -> Obj:
    p = req.params
    customer, setup_intent = p.str("customer"), p.str("setup_intent")
    status = p.enum("status", ["complete", "expired", "open"])
    # setup-mode sessions have no payment intent, subscription or payment link: such a filter matches none
    other = [p.str(name) for name in ("payment_intent", "subscription", "payment_link")]
    created = created_filter(p, "created")

    def keep(s: Obj) -> bool:
        return (
            (customer is None or s["customer"] == customer)
            and (setup_intent is None or s["setup_intent"] == setup_intent)
            and (status is None or s["status"] == status)
            and not any(other)
            and created(s["created"])
        )

    return req.store.paginate(
        req.store.newest_first("checkout_sessions", keep), p, "/v1/checkout/sessions", "checkout.session"
    )


def expire(emu: Emulator, session: Obj) -> None:
    session["status"] = "expired"
    session["url"] = None
    session["client_secret"] = None
    seti = emu.store.coll("setup_intents").get(session["setup_intent"] or "")
    if seti is not None:
        setup_intents.cancel(emu, seti, "abandoned")
    emu.store.record_event("checkout.session.expired", session)


def expire_endpoint(req: Request) -> Obj:
    session = req.store.get("checkout_sessions", req.id(), "checkout.session", "session")
    if session["status"] != "open":
        raise invalid(
            f"Only Checkout Sessions with a status of `open` can be expired. This session has a status of "
            f"`{session['status']}`.",
            param="session",
        )
    expire(req.emulator, session)
    return req.store.render(session)


def _next_due(emu: Emulator, session: Obj) -> tuple[int, str] | None:
    return (int(session["expires_at"]), "expire") if session["status"] == "open" else None


def _expire_due(emu: Emulator, session: Obj, when: int, what: str) -> None:
    expire(emu, session)


def complete(emu: Emulator, session: Obj, payment_method: str) -> Obj:
    """The customer gives ``payment_method`` on the page; raises Stripe's card error on a decline."""
    if session["status"] != "open":
        raise invalid(f"This Checkout Session is {session['status']} and can no longer be completed.")
    seti = emu.store.coll("setup_intents")[session["setup_intent"]]
    pm = setup_intents.confirm(emu, seti, payment_method)
    if pm is None:
        raise StripeError(
            402, "Your card was declined.", type="card_error", code="card_declined", param="payment_method"
        )
    customer_id = session["customer"]
    if customer_id is None and session["customer_creation"] == "always":
        customer_id = customers.make(emu, email=session["customer_email"])["id"]
        seti["customer"] = customer_id
        payment_methods.attach(emu, pm, customer_id)
    cus = emu.store.coll("customers").get(customer_id or "") or {}
    session.update(
        {
            "status": "complete",
            "customer": customer_id,
            "customer_details": {
                "address": None,
                "business_name": None,
                "email": cus.get("email") or session["customer_email"],
                "individual_name": None,
                "name": cus.get("name"),
                "phone": None,
                "tax_exempt": cus.get("tax_exempt", "none"),
                "tax_ids": [],
            },
            "url": None,
            "client_secret": None,
        }
    )
    emu.store.record_event("checkout.session.completed", session)
    return session


@route("POST /_emulator/checkout/sessions/{id}/complete")
def complete_hook(emu: Emulator, p: dict[str, str], body: dict[str, Any], q: dict[str, str]) -> AdminResult:
    payment_method = payment_methods.entered(body)
    with emu.store.lock:
        emu.due.run()
        session = emu.store.coll("checkout_sessions").get(p["id"])
        if session is None:
            raise no_such("checkout.session", p["id"])
        return 200, emu.store.render(complete(emu, session, payment_method))
