"""The customer portal: configurations and sessions (``/v1/billing_portal/...``).

As Stripe documents them (api/customer_portal, customer-management/portal-deep-links):

* Configurations: ``POST /v1/billing_portal/configurations`` (``features`` required;
  ``business_profile``, ``default_return_url``, ``login_page``, ``metadata``, ``name``), ``POST
  .../{id}`` (the same, merged, and ``active``), ``GET .../{id}``, ``GET`` list (``is_default``,
  ``active``). Features: ``customer_update`` {enabled, allowed_updates}, ``invoice_history``
  {enabled}, ``payment_method_update`` {enabled}, ``subscription_cancel`` {enabled, mode
  ``at_period_end`` (default) | ``immediately``, proration_behavior ``none`` (default) |
  ``create_prorations`` (immediately only; ``always_invoice`` refused), cancellation_reason
  {enabled, options}}, ``subscription_pause`` {enabled, duration} (kept, not played),
  ``subscription_update`` {enabled, default_allowed_updates ``price``|``quantity``|``promotion_code``,
  products (up to 10) [{product, prices, adjustable_quantity}], proration_behavior (default
  ``none``), schedule_at_period_end {conditions [{type ``decreasing_item_amount`` |
  ``shortening_interval``}]}, trial_update_behavior ``end_trial`` (default) | ``continue_trial``,
  billing_cycle_anchor}. With ``subscription_update`` enabled, ``products`` are required, each price
  recurring, active and of its product. Events ``billing_portal.configuration.created|updated``.
* A configuration made through the API is never the default (``is_default`` is the one saved in the
  Dashboard). The emulator's stand-in for the Dashboard is ``POST
  /_emulator/billing_portal/default_configuration`` with ``{"configuration": "bpc_..."}`` (that one
  becomes the default) or a configuration's params as JSON (a new default). A session without
  ``configuration`` uses the default; without one it is Stripe's 400 ("You can't create a portal
  session in test mode until you save your customer portal settings...").
* Sessions: ``POST /v1/billing_portal/sessions`` (``customer`` required, ``configuration`` (active),
  ``return_url`` (else the configuration's ``default_return_url``), ``locale``, ``on_behalf_of``,
  ``flow_data``) -> a session with a ``url`` (``billing.stripe.com``), ``billing_portal.session.created``.
  ``flow_data[type]``: ``payment_method_update``, ``subscription_cancel`` {subscription},
  ``subscription_update`` {subscription}, ``subscription_update_confirm`` {subscription, items
  [{id, price, quantity}]}, ``customer_update``; each needs its feature enabled in the
  configuration (``subscription_update_confirm``: ``subscription_update``) and the subscription to be
  the customer's and not canceled. ``after_completion`` {type ``portal_homepage`` (default) |
  ``hosted_confirmation`` | ``redirect`` {return_url}}. Sessions cannot be retrieved (no such
  endpoint in Stripe).

What the customer then does in the portal is played by ``portal_actions`` (``/_emulator``).
"""

from __future__ import annotations

import re
import secrets
from typing import TYPE_CHECKING, Any

from .admin import AdminResult, route
from .common import previous_attributes, public, snapshot
from .errors import invalid, missing_param, no_such
from .params import Params, apply_metadata
from .store import Kind, Obj
from .subscriptions import CANCELLATION_FEEDBACK

if TYPE_CHECKING:
    from .server import Emulator, Request

CUSTOMER_UPDATES = ["address", "email", "name", "phone", "shipping", "tax_id"]
SUBSCRIPTION_UPDATES = ["price", "promotion_code", "quantity"]
CONDITIONS = ["decreasing_item_amount", "shortening_interval"]
PRORATIONS = ["always_invoice", "create_prorations", "none"]
MAX_PRODUCTS = 10
CONFIG_PARAMS = {"business_profile", "default_return_url", "features", "login_page", "metadata", "name"}
FLOW_TYPES = [
    "customer_update",
    "payment_method_update",
    "subscription_cancel",
    "subscription_pause",
    "subscription_update",
    "subscription_update_confirm",
]
# the feature a deep link needs enabled
FLOW_FEATURE = {
    "customer_update": "customer_update",
    "payment_method_update": "payment_method_update",
    "subscription_cancel": "subscription_cancel",
    "subscription_update": "subscription_update",
    "subscription_update_confirm": "subscription_update",
}
ENDED = ("canceled", "incomplete_expired")


def register(emu: Emulator) -> None:
    emu.store.register(Kind("billing_portal.configuration", "bpc", "billing_portal_configurations", render))
    emu.store.register(Kind("billing_portal.session", "bps", "billing_portal_sessions", render))
    r = emu.router
    r.add("POST /v1/billing_portal/configurations", create_configuration, CONFIG_PARAMS)
    r.add(
        "GET /v1/billing_portal/configurations",
        list_configurations,
        {"is_default", "active", "limit", "starting_after", "ending_before"},
    )
    r.add("GET /v1/billing_portal/configurations/{id}", retrieve_configuration)
    r.add("POST /v1/billing_portal/configurations/{id}", update_configuration, CONFIG_PARAMS | {"active"})
    r.add(
        "POST /v1/billing_portal/sessions",
        create_session,
        {"customer", "configuration", "return_url", "locale", "on_behalf_of", "flow_data"},
    )


def render(obj: Obj) -> Obj:
    return public(obj)


def _url(p: Params, name: str, nullable: bool = False) -> str | None:
    value = p.str(name, nullable=nullable)
    if value is not None and not re.match(r"^https?://\S+$", value):
        raise invalid(f"Not a valid URL: {p.path(name)}", param=p.path(name))
    return value


# configurations ---------------------------------------------------------------------------------
def _blank_features() -> Obj:
    return {
        "customer_update": {"allowed_updates": [], "enabled": False},
        "invoice_history": {"enabled": False},
        "payment_method_update": {"enabled": False, "payment_method_configuration": None},
        "subscription_cancel": {
            "cancellation_reason": {"enabled": False, "feedback_options": None, "options": []},
            "enabled": False,
            "mode": "at_period_end",
            "proration_behavior": "none",
        },
        "subscription_pause": {
            "duration": {
                "interval_options": [{"interval": "month", "interval_count": 1}],
                "type": "interval_options",
            },
            "enabled": False,
        },
        "subscription_update": {
            "billing_cycle_anchor": None,
            "default_allowed_updates": [],
            "enabled": False,
            "products": None,
            "proration_behavior": "none",
            "schedule_at_period_end": {"conditions": []},
            "trial_update_behavior": "end_trial",
        },
    }


def _enum_list(p: Params, name: str, choices: list[str]) -> list[str]:
    values = p.str_list(name) or []
    for value in values:
        if value not in choices:
            raise invalid(f"Invalid {p.path(name)}: must be one of {', '.join(choices)}", param=p.path(name))
    return values


def _enabled(fp: Params, required: bool) -> bool | None:
    return fp.bool("enabled", required=required)


def _products(emu: Emulator, fp: Params) -> list[Obj]:
    entries = fp.items("products")
    if len(entries) > MAX_PRODUCTS:
        raise invalid(f"You can specify at most {MAX_PRODUCTS} products.", param=fp.path("products"))
    products = []
    for pp in entries:
        pp.check({"product", "prices", "adjustable_quantity"})
        product_id = pp.str("product", required=True)
        assert product_id is not None
        if product_id not in emu.store.coll("products"):
            raise no_such("product", product_id, pp.path("product"))
        prices = pp.str_list("prices")
        if not prices:
            raise missing_param(pp.path("prices"))
        for price_id in prices:
            price = emu.store.coll("prices").get(price_id)
            if price is None:
                raise no_such("price", price_id, pp.path("prices"))
            if price["product"] != product_id:
                raise invalid(
                    f"The price {price_id} does not belong to the product {product_id}.",
                    param=pp.path("prices"),
                )
            if price["type"] != "recurring" or not price["active"]:
                raise invalid(
                    f"The price {price_id} must be an active recurring price.", param=pp.path("prices")
                )
        adjustable = {"enabled": False, "maximum": None, "minimum": 1}
        aq = pp.sub("adjustable_quantity")
        if aq is not None:
            aq.check({"enabled", "maximum", "minimum"})
            adjustable = {
                "enabled": bool(aq.bool("enabled", required=True)),
                "maximum": aq.int("maximum", minimum=1),
                "minimum": aq.int("minimum", minimum=0) if aq.has("minimum") else 1,
            }
        products.append({"adjustable_quantity": adjustable, "prices": list(prices), "product": product_id})
    return products


def _apply_features(emu: Emulator, features: Obj, p: Params, creating: bool) -> None:
    p.check(set(features))
    cu = p.sub("customer_update")
    if cu is not None:
        cu.check({"allowed_updates", "enabled"})
        target = features["customer_update"]
        if cu.has("enabled") or creating:
            target["enabled"] = bool(_enabled(cu, required=True))
        if cu.has("allowed_updates"):
            target["allowed_updates"] = _enum_list(cu, "allowed_updates", CUSTOMER_UPDATES)
    ih = p.sub("invoice_history")
    if ih is not None:
        ih.check({"enabled"})
        features["invoice_history"]["enabled"] = bool(_enabled(ih, required=True))
    pm = p.sub("payment_method_update")
    if pm is not None:
        pm.check({"enabled", "payment_method_configuration"})
        features["payment_method_update"] = {
            "enabled": bool(_enabled(pm, required=True)),
            "payment_method_configuration": pm.str("payment_method_configuration", nullable=True),
        }
    sc = p.sub("subscription_cancel")
    if sc is not None:
        sc.check({"cancellation_reason", "enabled", "mode", "proration_behavior"})
        target = features["subscription_cancel"]
        if sc.has("enabled") or creating:
            target["enabled"] = bool(_enabled(sc, required=True))
        if sc.has("mode"):
            target["mode"] = sc.enum("mode", ["at_period_end", "immediately"])
        if sc.has("proration_behavior"):
            target["proration_behavior"] = sc.enum("proration_behavior", PRORATIONS)
        if target["proration_behavior"] == "always_invoice":
            raise invalid(
                "`always_invoice` is not a valid proration_behavior for subscription cancellations.",
                param=sc.path("proration_behavior"),
            )
        if target["proration_behavior"] == "create_prorations" and target["mode"] != "immediately":
            raise invalid(
                "proration_behavior `create_prorations` is only compatible with mode `immediately`.",
                param=sc.path("proration_behavior"),
            )
        cr = sc.sub("cancellation_reason")
        if cr is not None:
            cr.check({"enabled", "options", "feedback_options"})
            target["cancellation_reason"] = {
                "enabled": bool(cr.bool("enabled", required=True)),
                "feedback_options": None,
                "options": _enum_list(cr, "options", CANCELLATION_FEEDBACK),
            }
    sp = p.sub("subscription_pause")
    if sp is not None:
        sp.check({"enabled", "duration"})
        if sp.has("enabled"):
            features["subscription_pause"]["enabled"] = bool(sp.bool("enabled"))
    su = p.sub("subscription_update")
    if su is not None:
        su.check(
            {
                "billing_cycle_anchor",
                "default_allowed_updates",
                "enabled",
                "products",
                "proration_behavior",
                "schedule_at_period_end",
                "trial_update_behavior",
            }
        )
        target = features["subscription_update"]
        if su.has("enabled") or creating:
            target["enabled"] = bool(_enabled(su, required=True))
        if su.has("default_allowed_updates"):
            target["default_allowed_updates"] = _enum_list(
                su, "default_allowed_updates", SUBSCRIPTION_UPDATES
            )
        if su.has("products"):
            target["products"] = _products(emu, su) or None
        if su.has("proration_behavior"):
            target["proration_behavior"] = su.enum("proration_behavior", PRORATIONS)
        if su.has("billing_cycle_anchor"):
            target["billing_cycle_anchor"] = su.enum("billing_cycle_anchor", ["now", "unchanged"])
        if su.has("trial_update_behavior"):
            target["trial_update_behavior"] = su.enum(
                "trial_update_behavior", ["continue_trial", "end_trial"]
            )
        sape = su.sub("schedule_at_period_end") if su.has("schedule_at_period_end") else None
        if sape is not None:
            sape.check({"conditions"})
            conditions = []
            for cp in sape.items("conditions"):
                cp.check({"type"})
                conditions.append({"type": cp.enum("type", CONDITIONS, required=True)})
            target["schedule_at_period_end"] = {"conditions": conditions}
        if target["enabled"] and not target["products"]:
            raise missing_param(su.path("products"))


def _apply_configuration(emu: Emulator, config: Obj, p: Params, creating: bool) -> None:
    bp = p.sub("business_profile")
    if bp is not None:
        bp.check({"headline", "privacy_policy_url", "terms_of_service_url"})
        profile = dict(config["business_profile"])
        if bp.has("headline"):
            profile["headline"] = bp.str("headline", nullable=True)
        for name in ("privacy_policy_url", "terms_of_service_url"):
            if bp.has(name):
                profile[name] = _url(bp, name, nullable=True)
        config["business_profile"] = profile
    if p.has("default_return_url"):
        config["default_return_url"] = _url(p, "default_return_url", nullable=True)
    features = p.sub("features", required=creating)
    if features is not None:
        _apply_features(emu, config["features"], features, creating)
    lp = p.sub("login_page")
    if lp is not None:
        lp.check({"enabled"})
        enabled = bool(lp.bool("enabled", required=True))
        url = (
            config["login_page"]["url"] or f"https://billing.stripe.com/p/login/test_{secrets.token_hex(10)}"
        )
        config["login_page"] = {"enabled": enabled, "url": url if enabled else None}
    if p.has("name"):
        config["name"] = p.str("name", nullable=True)
    if p.has("active"):
        config["active"] = bool(p.bool("active", required=True))
    config["metadata"] = apply_metadata(config["metadata"], p.metadata())


def new_configuration(emu: Emulator, p: Params, is_default: bool = False) -> Obj:
    now = emu.clock.now()
    config: Obj = {
        "id": emu.store.new_id("bpc"),
        "object": "billing_portal.configuration",
        "active": True,
        "application": None,
        "business_profile": {"headline": None, "privacy_policy_url": None, "terms_of_service_url": None},
        "created": now,
        "default_return_url": None,
        "features": _blank_features(),
        "is_default": is_default,
        "livemode": False,
        "login_page": {"enabled": False, "url": None},
        "metadata": {},
        "name": None,
        "updated": now,
    }
    _apply_configuration(emu, config, p, creating=True)
    emu.store.insert("billing_portal_configurations", config)
    emu.store.record_event("billing_portal.configuration.created", config)
    return config


def create_configuration(req: Request) -> Obj:
    return req.store.render(new_configuration(req.emulator, req.params))


def retrieve_configuration(req: Request) -> Obj:
    return req.store.render(
        req.store.get("billing_portal_configurations", req.id(), "configuration", "configuration")
    )


def _updated(emu: Emulator, config: Obj, before: Obj) -> None:
    prev = previous_attributes(before, emu.store.render(config))
    if prev:
        config["updated"] = emu.clock.now()
        emu.store.record_event("billing_portal.configuration.updated", config, prev)


def update_configuration(req: Request) -> Obj:
    config = req.store.get("billing_portal_configurations", req.id(), "configuration", "configuration")
    before = req.store.render(config)
    draft = snapshot(config)
    _apply_configuration(req.emulator, draft, req.params, creating=False)  # all checked before it changes
    config.clear()
    config.update(draft)
    _updated(req.emulator, config, before)
    return req.store.render(config)


def list_configurations(req: Request) -> Obj:
    p = req.params
    is_default, active = p.bool("is_default"), p.bool("active")

    def keep(c: Obj) -> bool:
        return (is_default is None or c["is_default"] == is_default) and (
            active is None or c["active"] == active
        )

    return req.store.paginate(
        req.store.newest_first("billing_portal_configurations", keep),
        p,
        "/v1/billing_portal/configurations",
        "configuration",
    )


def default_configuration(emu: Emulator) -> Obj | None:
    for config in emu.store.coll("billing_portal_configurations").values():
        if config["is_default"]:
            return config
    return None


def _form(value: Any) -> Any:
    """A JSON value as the form encoding would carry it (every scalar a string)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return {k: _form(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_form(v) for v in value]
    return "" if value is None else str(value)


@route("POST /_emulator/billing_portal/default_configuration")
def set_default(emu: Emulator, p: dict[str, str], body: dict[str, Any], q: dict[str, str]) -> AdminResult:
    """What saving the portal settings in the Dashboard does: a default configuration."""
    with emu.store.lock:
        emu.due.run()
        if "configuration" in body:
            config = emu.store.coll("billing_portal_configurations").get(str(body["configuration"]))
            if config is None:
                raise no_such("configuration", str(body["configuration"]), "configuration")
        else:
            params = Params(_form(body))
            params.check(CONFIG_PARAMS)
            config = new_configuration(emu, params)
        for other in emu.store.coll("billing_portal_configurations").values():
            if other["is_default"] and other is not config:
                before = emu.store.render(other)
                other["is_default"] = False
                _updated(emu, other, before)
        before = emu.store.render(config)
        config["is_default"] = True
        _updated(emu, config, before)
        return 200, emu.store.render(config)


# sessions ---------------------------------------------------------------------------------------
def _flow_subscription(emu: Emulator, fp: Params, customer: str) -> str:
    sub_id = fp.str("subscription", required=True)
    assert sub_id is not None
    sub = emu.store.coll("subscriptions").get(sub_id)
    if sub is None:
        raise no_such("subscription", sub_id, fp.path("subscription"))
    if sub["customer"] != customer:
        raise invalid(
            f"The subscription {sub_id} does not belong to the customer {customer}.",
            param=fp.path("subscription"),
        )
    if sub["status"] in ENDED:
        raise invalid(f"The subscription {sub_id} is canceled.", param=fp.path("subscription"))
    return sub_id


def _flow(emu: Emulator, p: Params, config: Obj, customer: str) -> Obj | None:
    fd = p.sub("flow_data")
    if fd is None:
        return None
    fd.check({"type", "after_completion", *FLOW_TYPES})
    kind = fd.enum("type", FLOW_TYPES, required=True)
    assert kind is not None
    if kind == "subscription_pause":
        raise invalid("The emulator does not play the subscription_pause flow.", param="flow_data[type]")
    feature = FLOW_FEATURE[kind]
    if not config["features"][feature]["enabled"]:
        raise invalid(
            f"The `{kind}` flow requires the `{feature}` feature to be enabled in the portal configuration "
            f"{config['id']}.",
            param="flow_data[type]",
        )
    after: Obj = {"hosted_confirmation": None, "redirect": None, "type": "portal_homepage"}
    ac = fd.sub("after_completion")
    if ac is not None:
        ac.check({"type", "hosted_confirmation", "redirect"})
        after["type"] = ac.enum("type", ["hosted_confirmation", "portal_homepage", "redirect"], required=True)
        if after["type"] == "redirect":
            rp = ac.sub("redirect", required=True)
            assert rp is not None
            rp.check({"return_url"})
            after["redirect"] = {"return_url": _url(rp, "return_url")}
            if after["redirect"]["return_url"] is None:
                raise missing_param(rp.path("return_url"))
        if after["type"] == "hosted_confirmation":
            hc = ac.sub("hosted_confirmation")
            message = None
            if hc is not None:
                hc.check({"custom_message"})
                message = hc.str("custom_message")
            after["hosted_confirmation"] = {"custom_message": message}
    flow: Obj = {
        "after_completion": after,
        "customer_update": {} if kind == "customer_update" else None,
        "subscription_cancel": None,
        "subscription_pause": None,
        "subscription_update": None,
        "subscription_update_confirm": None,
        "type": kind,
    }
    others = [name for name in FLOW_TYPES if name != kind and fd.has(name)]
    if others:
        raise invalid(
            f"`flow_data[{others[0]}]` can only be passed with flow_data[type]={others[0]}.",
            param=f"flow_data[{others[0]}]",
        )
    if kind == "subscription_cancel":
        sc = fd.sub(kind, required=True)
        assert sc is not None
        sc.check({"subscription", "retention"})
        sub_id = _flow_subscription(emu, sc, customer)
        if emu.store.coll("subscriptions")[sub_id]["cancel_at_period_end"]:
            raise invalid(
                f"The subscription {sub_id} is already set to cancel.", param=sc.path("subscription")
            )
        if sc.has("retention"):
            raise invalid(
                "The emulator does not emulate coupons (retention offers).", param=sc.path("retention")
            )
        flow[kind] = {"retention": None, "subscription": sub_id}
    elif kind == "subscription_update":
        su = fd.sub(kind, required=True)
        assert su is not None
        su.check({"subscription"})
        flow[kind] = {"subscription": _flow_subscription(emu, su, customer)}
    elif kind == "subscription_update_confirm":
        uc = fd.sub(kind, required=True)
        assert uc is not None
        uc.check({"subscription", "items", "discounts"})
        sub_id = _flow_subscription(emu, uc, customer)
        own = {i["id"] for i in emu.store.coll("subscription_items").grouped("subscription", sub_id)}
        entries = uc.items("items")
        if not entries:
            raise missing_param(uc.path("items"))
        items = []
        for ip in entries:
            ip.check({"id", "price", "quantity"})
            item_id = ip.str("id", required=True)
            if item_id not in own:
                raise invalid(
                    f"The subscription item {item_id} is not on the subscription {sub_id}.",
                    param=ip.path("id"),
                )
            price = ip.str("price")
            if price is not None and price not in emu.store.coll("prices"):
                raise no_such("price", price, ip.path("price"))
            items.append({"id": item_id, "price": price, "quantity": ip.int("quantity", minimum=0)})
        if uc.has("discounts"):
            raise invalid(
                "The emulator does not emulate coupons or promotion codes.", param=uc.path("discounts")
            )
        flow[kind] = {"discounts": None, "items": items, "subscription": sub_id}
    return flow


def create_session(req: Request) -> Obj:
    emu, p = req.emulator, req.params
    customer = p.str("customer")
    if customer is None:
        raise missing_param("customer")
    req.store.get("customers", customer, "customer", "customer")
    config_id = p.str("configuration")
    if config_id is not None:
        config = req.store.get("billing_portal_configurations", config_id, "configuration", "configuration")
        if not config["active"]:
            raise invalid(f"The configuration {config_id} is not active.", param="configuration")
    else:
        found = default_configuration(emu)
        if found is None:
            raise invalid(
                "You can\u2019t create a portal session in test mode until you save your customer portal "
                "settings in test mode at https://dashboard.stripe.com/test/settings/billing/portal."
            )
        config = found
    return_url = _url(p, "return_url") or config["default_return_url"]
    flow = _flow(emu, p, config, customer)
    session: Obj = {
        "id": req.store.new_id("bps"),
        "object": "billing_portal.session",
        "configuration": config["id"],
        "created": req.now,
        "customer": customer,
        "customer_account": None,
        "flow": flow,
        "livemode": False,
        "locale": p.str("locale"),
        "on_behalf_of": p.str("on_behalf_of"),
        "return_url": return_url,
        "url": f"https://billing.stripe.com/p/session/test_{secrets.token_urlsafe(32)}",
    }
    req.store.insert("billing_portal_sessions", session)
    req.store.record_event("billing_portal.session.created", session)
    return req.store.render(session)
