"""SetupIntents: retrieve and list. They are made by Checkout Sessions in setup mode (``checkout``),
which confirm them when the customer completes the session.

A confirmation with a test card that declines leaves the SetupIntent ``requires_payment_method``
with ``last_setup_error`` (``card_declined``) and records ``setup_intent.setup_failed``; one that
succeeds attaches the new PaymentMethod to the customer (``payment_method.attached``) and records
``setup_intent.succeeded``. A card that needs 3D Secure is taken as authenticated by the customer on
the hosted page (the emulator has no browser): its setup succeeds.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from . import payment_methods
from .common import created_filter, public
from .store import Kind, Obj

if TYPE_CHECKING:
    from .server import Emulator, Request


def register(emu: Emulator) -> None:
    emu.store.register(Kind("setup_intent", "seti", "setup_intents", render))
    r = emu.router
    r.add(
        "GET /v1/setup_intents",
        list_setup_intents,
        {
            "customer",
            "payment_method",
            "created",
            "attach_to_self",
            "limit",
            "starting_after",
            "ending_before",
        },
    )
    r.add("GET /v1/setup_intents/{id}", retrieve, {"client_secret"})


def render(seti: Obj) -> Obj:
    return public(seti)


def create(emu: Emulator, *, customer: str | None, description: str | None, metadata: dict[str, str]) -> Obj:
    seti_id = emu.store.new_id("seti")
    seti: Obj = {
        "id": seti_id,
        "object": "setup_intent",
        "application": None,
        "automatic_payment_methods": None,
        "cancellation_reason": None,
        "client_secret": f"{seti_id}_secret_{secrets.token_hex(12)}",
        "created": emu.clock.now(),
        "customer": customer,
        "customer_account": None,
        "description": description,
        "excluded_payment_method_types": None,
        "flow_directions": None,
        "last_setup_error": None,
        "latest_attempt": None,
        "livemode": False,
        "mandate": None,
        "metadata": metadata,
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": None,
        "payment_method_configuration_details": None,
        "payment_method_options": {
            "card": {"mandate_options": None, "network": None, "request_three_d_secure": "automatic"}
        },
        "payment_method_types": ["card"],
        "single_use_mandate": None,
        "status": "requires_payment_method",
        "usage": "off_session",
    }
    emu.store.insert("setup_intents", seti)
    emu.store.record_event("setup_intent.created", seti)
    return seti


def confirm(emu: Emulator, seti: Obj, payment_method: str) -> Obj | None:
    """The customer gives ``payment_method``: the new PaymentMethod, or None if the card declined."""
    if payment_methods.outcome(emu, payment_method) == payment_methods.DECLINES:
        seti["last_setup_error"] = {
            "code": "card_declined",
            "decline_code": "generic_decline",
            "doc_url": "https://docs.stripe.com/error-codes/card-declined",
            "message": "Your card was declined.",
            "type": "card_error",
        }
        seti["status"] = "requires_payment_method"
        emu.store.record_event("setup_intent.setup_failed", seti)
        return None
    if payment_methods.is_test_token(payment_method):
        pm = payment_methods.from_token(emu, payment_method, set_up=True)
    else:
        pm = payment_methods.resolve(emu, payment_method, "payment_method")
        pm["_set_up"] = True
    if seti["customer"] is not None:
        payment_methods.attach(emu, pm, seti["customer"])
    seti["payment_method"] = pm["id"]
    seti["last_setup_error"] = None
    seti["status"] = "succeeded"
    emu.store.record_event("setup_intent.succeeded", seti)
    return pm


def cancel(emu: Emulator, seti: Obj, reason: str) -> None:
    if seti["status"] in ("succeeded", "canceled"):
        return
    seti["status"] = "canceled"
    seti["cancellation_reason"] = reason
    emu.store.record_event("setup_intent.canceled", seti)


# endpoints --------------------------------------------------------------------------------------
def retrieve(req: Request) -> Obj:
    return req.store.render(req.store.get("setup_intents", req.id(), "setup_intent", "intent"))


def list_setup_intents(req: Request) -> Obj:
    p = req.params
    customer = p.str("customer")
    payment_method = p.str("payment_method")
    p.bool("attach_to_self")
    created = created_filter(p, "created")

    def keep(seti: Obj) -> bool:
        return (
            (customer is None or seti["customer"] == customer)
            and (payment_method is None or seti["payment_method"] == payment_method)
            and created(seti["created"])
        )

    return req.store.paginate(
        req.store.newest_first("setup_intents", keep), p, "/v1/setup_intents", "setup_intent"
    )
