"""Payment methods (cards) and how a payment with one turns out.

Stripe's test PaymentMethods (``pm_card_visa``, ``pm_card_chargeDeclined``...) are fixtures: using
one to attach, or completing a Checkout Session with one, makes a new ``pm_...`` PaymentMethod of
that card. The emulator keeps which test card each one came from, so a payment's outcome follows
Stripe's test cards (docs.stripe.com/testing):

* ``pm_card_chargeDeclined*`` (ids containing "declined" or "chargeFail"): declined;
* ``pm_card_authenticationRequired`` (4000 0027 6000 3184) and ``pm_card_threeDSecure2Required``:
  every payment needs the customer's authentication (3D Secure), off-session ones included;
* ``pm_card_authenticationRequiredOnSetup`` (4000 0025 0000 3155): needs authentication unless it
  was set up for off-session use (a SetupIntent, e.g. Checkout in setup mode) first;
* ``pm_card_authenticationRequiredSetupForOffSession`` and every other card: succeeds.

Leniency kept from before this module: a bare test id (``pm_card_visa``) given directly as a
default payment method counts as usable (Stripe would require attaching it first); a
PaymentMethod the emulator made must belong to the customer it is made the default of.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from .common import previous_attributes, public
from .errors import invalid, no_such
from .store import Kind, Obj

if TYPE_CHECKING:
    from .server import Emulator, Request

SUCCEEDS, DECLINES, REQUIRES_ACTION = "succeeds", "declines", "requires_action"
# Test PaymentMethod -> (brand, last4, funding); others read as a Visa ending 4242.
TEST_CARDS: dict[str, tuple[str, str, str]] = {
    "pm_card_visa": ("visa", "4242", "credit"),
    "pm_card_visa_debit": ("visa", "5556", "debit"),
    "pm_card_mastercard": ("mastercard", "4444", "credit"),
    "pm_card_amex": ("amex", "8431", "credit"),
    "pm_card_chargeDeclined": ("visa", "0002", "credit"),
    "pm_card_chargeDeclinedInsufficientFunds": ("visa", "9995", "credit"),
    "pm_card_authenticationRequired": ("visa", "3184", "credit"),
    "pm_card_authenticationRequiredOnSetup": ("visa", "3155", "credit"),
    "pm_card_authenticationRequiredSetupForOffSession": ("visa", "0446", "credit"),
    "pm_card_threeDSecure2Required": ("visa", "3220", "credit"),
}


def register(emu: Emulator) -> None:
    emu.store.register(Kind("payment_method", "pm", "payment_methods", render))
    r = emu.router
    lists = {"limit", "starting_after", "ending_before", "type", "allow_redisplay"}
    r.add("GET /v1/payment_methods", list_payment_methods, lists | {"customer"})
    r.add("GET /v1/payment_methods/{id}", retrieve)
    r.add("POST /v1/payment_methods/{id}/attach", attach_endpoint, {"customer"})
    r.add("POST /v1/payment_methods/{id}/detach", detach_endpoint)
    r.add("GET /v1/customers/{id}/payment_methods", list_for_customer, lists)


def render(pm: Obj) -> Obj:
    return public(pm)


def is_test_token(pm_id: str) -> bool:
    return pm_id.startswith("pm_card_")


def entered(body: dict[str, Any]) -> str:
    """The PaymentMethod a customer enters on a hosted page: an admin hook's ``payment_method``
    (``pm_card_visa`` when absent)."""
    payment_method = body.get("payment_method", "pm_card_visa")
    if not isinstance(payment_method, str) or not payment_method.startswith("pm_"):
        raise invalid(
            "payment_method must be a PaymentMethod id such as pm_card_visa", param="payment_method"
        )
    return payment_method


def from_token(emu: Emulator, token: str, *, set_up: bool = False) -> Obj:
    """A new card PaymentMethod made from a test PaymentMethod id (``pm_card_visa``...)."""
    brand, last4, funding = TEST_CARDS.get(token, ("visa", "4242", "credit"))
    now = emu.clock.now()
    pm: Obj = {
        "id": emu.store.new_id("pm"),
        "object": "payment_method",
        "allow_redisplay": "unspecified",
        "billing_details": {
            "address": {
                "city": None,
                "country": None,
                "line1": None,
                "line2": None,
                "postal_code": None,
                "state": None,
            },
            "email": None,
            "name": None,
            "phone": None,
            "tax_id": None,
        },
        "card": {
            "brand": brand,
            "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass"},
            "country": "US",
            "display_brand": brand,
            "exp_month": 12,
            "exp_year": 2034,
            "fingerprint": hashlib.sha256(token.encode()).hexdigest()[:16],
            "funding": funding,
            "generated_from": None,
            "last4": last4,
            "networks": {"available": [brand], "preferred": None},
            "regulated_status": "unregulated",
            "three_d_secure_usage": {"supported": True},
            "wallet": None,
        },
        "created": now,
        "customer": None,
        "customer_account": None,
        "livemode": False,
        "metadata": {},
        "type": "card",
        "_test_card": token,
        "_set_up": set_up,
    }
    return emu.store.insert("payment_methods", pm)


def resolve(emu: Emulator, pm_id: str, param: str) -> Obj:
    """A stored PaymentMethod, or a new one made from a test id."""
    if is_test_token(pm_id):
        return from_token(emu, pm_id)
    pm = emu.store.coll("payment_methods").get(pm_id)
    if pm is None:
        raise no_such("PaymentMethod", pm_id, param)
    return pm


def outcome(emu: Emulator, pm_id: str) -> str:
    """How an off-session payment with ``pm_id`` turns out: succeeds, declines or requires_action."""
    pm = emu.store.coll("payment_methods").get(pm_id)
    card = str(pm["_test_card"]) if pm is not None else pm_id
    lower = card.lower()
    if "declined" in lower or "chargefail" in lower:
        return DECLINES
    if "setupforoffsession" in lower:
        return SUCCEEDS
    if "authenticationrequiredonsetup" in lower:
        return SUCCEEDS if pm is not None and pm["_set_up"] else REQUIRES_ACTION
    if "authenticationrequired" in lower or "threedsecure2required" in lower:
        return REQUIRES_ACTION
    return SUCCEEDS


def attach(emu: Emulator, pm: Obj, customer_id: str) -> None:
    if pm["customer"] == customer_id:
        return
    if pm["customer"] is not None:
        raise invalid(
            "The payment method you provided has already been attached to a customer.", param="payment_method"
        )
    pm["customer"] = customer_id
    emu.store.record_event("payment_method.attached", pm)


def check_default(emu: Emulator, customer_id: str, pm_id: str | None, param: str) -> None:
    """Stripe refuses, as a customer's default, a PaymentMethod attached to someone else."""
    if pm_id is None:
        return
    pm = emu.store.coll("payment_methods").get(pm_id)
    if pm is not None and pm["customer"] != customer_id:
        raise invalid(
            f"The customer does not have a payment method with the ID {pm_id}. The payment method must be "
            "attached to the customer.",
            param=param,
        )


def set_default(emu: Emulator, customer_id: str, pm_id: str) -> None:
    """Make ``pm_id`` the customer's default for invoices (``customer.updated``)."""
    cus = emu.store.coll("customers")[customer_id]
    before = emu.store.render(cus)
    cus["invoice_settings"] = {**cus["invoice_settings"], "default_payment_method": pm_id}
    prev = previous_attributes(before, emu.store.render(cus))
    if prev:
        emu.store.record_event("customer.updated", cus, prev)


# endpoints --------------------------------------------------------------------------------------
def retrieve(req: Request) -> Obj:
    return req.store.render(req.store.get("payment_methods", req.id(), "PaymentMethod"))


def attach_endpoint(req: Request) -> Obj:
    customer_id = req.params.str("customer", required=True)
    assert customer_id is not None
    req.store.get("customers", customer_id, "customer", "customer")
    pm = resolve(req.emulator, req.id(), "payment_method")
    attach(req.emulator, pm, customer_id)
    return req.store.render(pm)


def detach_endpoint(req: Request) -> Obj:
    pm = req.store.get("payment_methods", req.id(), "PaymentMethod")
    customer_id = pm["customer"]
    if customer_id is None:
        raise invalid(
            "The payment method you provided is not attached to a customer so detachment is impossible."
        )
    pm["customer"] = None
    cus = req.store.coll("customers").get(customer_id)
    if cus is not None and (cus.get("invoice_settings") or {}).get("default_payment_method") == pm["id"]:
        before = req.store.render(cus)
        cus["invoice_settings"] = {**cus["invoice_settings"], "default_payment_method": None}
        req.store.record_event("customer.updated", cus, previous_attributes(before, req.store.render(cus)))
    req.store.record_event("payment_method.detached", pm, {"customer": customer_id})
    return req.store.render(pm)


def _list(req: Request, customer: str | None, url: str) -> Obj:
    kind = req.params.str("type")
    req.params.enum("allow_redisplay", ["always", "limited", "unspecified"])

    def keep(pm: Obj) -> bool:
        return (customer is None or pm["customer"] == customer) and (kind is None or pm["type"] == kind)

    return req.store.paginate(
        req.store.newest_first("payment_methods", keep), req.params, url, "PaymentMethod"
    )


def list_payment_methods(req: Request) -> Obj:
    return _list(req, req.params.str("customer"), "/v1/payment_methods")


def list_for_customer(req: Request) -> Obj:
    req.store.get("customers", req.id(), "customer")
    return _list(req, req.id(), f"/v1/customers/{req.id()}/payment_methods")
