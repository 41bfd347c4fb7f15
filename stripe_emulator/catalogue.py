"""Products and prices. Lookup keys are unique per account (``transfer_lookup_key`` moves one)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .common import previous_attributes, snapshot
from .errors import StripeError, invalid, missing_param
from .params import Params, apply_metadata
from .store import Kind, Obj

if TYPE_CHECKING:
    from .server import Emulator, Request

PRODUCT_CREATE = {
    "id",
    "name",
    "active",
    "description",
    "metadata",
    "images",
    "statement_descriptor",
    "unit_label",
    "url",
    "tax_code",
    "shippable",
}
PRODUCT_UPDATE = (PRODUCT_CREATE - {"id"}) | {"default_price"}
PRICE_CREATE = {
    "product",
    "product_data",
    "unit_amount",
    "unit_amount_decimal",
    "currency",
    "recurring",
    "lookup_key",
    "transfer_lookup_key",
    "nickname",
    "metadata",
    "active",
    "billing_scheme",
    "tax_behavior",
}
PRICE_UPDATE = {"active", "lookup_key", "transfer_lookup_key", "nickname", "metadata", "tax_behavior"}
MAX_INTERVAL = {"day": 365, "week": 52, "month": 12, "year": 1}


def register(emu: Emulator) -> None:
    emu.store.register(Kind("product", "prod", "products", None))
    emu.store.register(Kind("price", "price", "prices", None))
    r = emu.router
    r.add("POST /v1/products", create_product, PRODUCT_CREATE)
    r.add(
        "GET /v1/products",
        list_products,
        {"active", "ids", "limit", "starting_after", "ending_before", "created", "shippable", "type", "url"},
    )
    r.add("GET /v1/products/{id}", retrieve_product)
    r.add("POST /v1/products/{id}", update_product, PRODUCT_UPDATE)
    r.add("POST /v1/prices", create_price, PRICE_CREATE)
    r.add(
        "GET /v1/prices",
        list_prices,
        {
            "active",
            "currency",
            "product",
            "type",
            "lookup_keys",
            "recurring",
            "limit",
            "starting_after",
            "ending_before",
            "created",
        },
    )
    r.add("GET /v1/prices/{id}", retrieve_price)
    r.add("POST /v1/prices/{id}", update_price, PRICE_UPDATE)


# products -------------------------------------------------------------------
def _apply_product(prod: Obj, p: Params, now: int) -> None:
    for field in ("description", "statement_descriptor", "unit_label", "url", "tax_code"):
        if p.has(field):
            prod[field] = p.str(field, nullable=True)
    if p.has("name"):
        prod["name"] = p.str("name", required=True)
    if p.has("active"):
        prod["active"] = p.bool("active")
    if p.has("shippable"):
        prod["shippable"] = p.bool("shippable")
    if p.has("images"):
        prod["images"] = p.str_list("images") or []
    prod["metadata"] = apply_metadata(prod["metadata"], p.metadata())
    prod["updated"] = now


def new_product(req: Request, p: Params, product_id: str | None = None) -> Obj:
    now = req.now
    prod: Obj = {
        "id": product_id or req.store.new_id("prod"),
        "object": "product",
        "active": True,
        "created": now,
        "default_price": None,
        "description": None,
        "images": [],
        "livemode": False,
        "marketing_features": [],
        "metadata": {},
        "name": p.str("name", required=True),
        "package_dimensions": None,
        "shippable": None,
        "statement_descriptor": None,
        "tax_code": None,
        "type": "service",
        "unit_label": None,
        "updated": now,
        "url": None,
    }
    _apply_product(prod, p, now)
    req.store.insert("products", prod)
    req.store.record_event("product.created", prod)
    return prod


def create_product(req: Request) -> Obj:
    custom_id = req.params.str("id")
    if custom_id is not None and custom_id in req.store.coll("products"):
        raise StripeError(400, "Product already exists.", code="resource_already_exists", param="id")
    return req.store.render(new_product(req, req.params, custom_id))


def retrieve_product(req: Request) -> Obj:
    return req.store.render(req.store.get("products", req.id(), "product"))


def update_product(req: Request) -> Obj:
    prod = req.store.get("products", req.id(), "product")
    before = snapshot(prod)
    draft = snapshot(prod)
    _apply_product(draft, req.params, req.now)
    if req.params.has("default_price"):
        price_id = req.params.str("default_price", nullable=True)
        if price_id is not None:
            price = req.store.get("prices", price_id, "price", "default_price")
            if price["product"] != prod["id"]:
                raise invalid("The default price must belong to this product.", param="default_price")
        draft["default_price"] = price_id
    prod.update(draft)
    prev = previous_attributes(before, prod)
    prev.pop("updated", None)
    if prev:
        req.store.record_event("product.updated", prod, prev)
    return req.store.render(prod)


def list_products(req: Request) -> Obj:
    p = req.params
    active = p.bool("active")
    ids = set(p.str_list("ids") or [])

    def keep(o: Obj) -> bool:
        return (active is None or o["active"] == active) and (not ids or o["id"] in ids)

    return req.store.paginate(req.store.newest_first("products", keep), p, "/v1/products", "product")


# prices ---------------------------------------------------------------------
def _currency(p: Params) -> str:
    cur = p.str("currency", required=True)
    assert cur is not None
    if not re.fullmatch(r"[a-zA-Z]{3}", cur):
        raise invalid(f"Invalid currency: {cur.lower()}.", param="currency")
    return cur.lower()


def _recurring(p: Params) -> Obj | None:
    rec = p.sub("recurring")
    if rec is None:
        return None
    rec.check({"interval", "interval_count", "usage_type", "meter", "trial_period_days"})
    interval = rec.enum("interval", ["day", "week", "month", "year"], required=True)
    assert interval is not None
    count = rec.int("interval_count", minimum=1) or 1
    if count > MAX_INTERVAL[interval]:
        raise invalid(
            "The maximum billing interval is one year (1 year, 12 months, 52 weeks or 365 days).",
            param="recurring[interval_count]",
        )
    usage = rec.enum("usage_type", ["licensed", "metered"]) or "licensed"
    meter = rec.str("meter")
    if usage == "metered" and meter is None:
        raise invalid(
            "Metered prices must be backed by a meter: pass recurring[meter].", param="recurring[meter]"
        )
    if usage == "licensed" and meter is not None:
        raise invalid(
            "recurring[meter] can only be set when recurring[usage_type] is metered.",
            param="recurring[meter]",
        )
    return {
        "interval": interval,
        "interval_count": count,
        "meter": meter,
        "trial_period_days": rec.int("trial_period_days", minimum=0),
        "usage_type": usage,
    }


def _claim_lookup_key(req: Request, price_id: str, key: str | None, transfer: bool) -> Obj | None:
    """Return the price that currently holds ``key`` (to release it), or raise if not transferable."""
    if key is None:
        return None
    for other in req.store.coll("prices").values():
        if other["id"] != price_id and other.get("lookup_key") == key:
            if not transfer:
                raise invalid(
                    f"A price (`{other['id']}`) already uses that lookup key.",
                    param="lookup_key",
                )
            return other
    return None


def _release(req: Request, holder: Obj | None) -> None:
    if holder is not None:
        before = snapshot(holder)
        holder["lookup_key"] = None
        req.store.record_event("price.updated", holder, previous_attributes(before, holder))


def create_price(req: Request) -> Obj:
    p = req.params
    store = req.store
    currency = _currency(p)
    if p.has("product") and p.has("product_data"):
        raise invalid("You may only specify one of these parameters: product, product_data.", param="product")
    product_id = p.str("product")
    pdata = p.sub("product_data")
    if product_id is None and pdata is None:
        raise missing_param("product")
    if product_id is not None:
        store.get("products", product_id, "product", "product")
    if pdata is not None:
        pdata.check({"name", "active", "metadata", "statement_descriptor", "unit_label", "tax_code", "id"})
    scheme = p.enum("billing_scheme", ["per_unit"]) or "per_unit"
    if p.has("unit_amount") and p.has("unit_amount_decimal"):
        raise invalid(
            "You may only specify one of these parameters: unit_amount, unit_amount_decimal.",
            param="unit_amount",
        )
    unit_amount = p.int("unit_amount", minimum=0)
    if unit_amount is None and p.has("unit_amount_decimal"):
        dec = p.str("unit_amount_decimal", required=True)
        assert dec is not None
        try:
            unit_amount = int(float(dec))
        except ValueError:
            raise invalid(f"Invalid decimal: {dec}", param="unit_amount_decimal") from None
        if float(dec) != unit_amount:
            raise invalid(
                "The emulator only supports whole-cent unit_amount_decimal values.",
                param="unit_amount_decimal",
            )
    if unit_amount is None:
        raise missing_param("unit_amount")
    recurring = _recurring(p)
    lookup_key = p.str("lookup_key", nullable=True)
    if lookup_key is not None and len(lookup_key) > 200:
        raise invalid("lookup_key must be at most 200 characters.", param="lookup_key")
    price_id = store.new_id("price")
    holder = _claim_lookup_key(req, price_id, lookup_key, bool(p.bool("transfer_lookup_key")))
    metadata = apply_metadata({}, p.metadata())
    if pdata is not None:
        product_id = new_product(req, pdata)["id"]
    _release(req, holder)
    price: Obj = {
        "id": price_id,
        "object": "price",
        "active": True if p.bool("active") is None else p.bool("active"),
        "billing_scheme": scheme,
        "created": req.now,
        "currency": currency,
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": lookup_key,
        "metadata": metadata,
        "nickname": p.str("nickname", nullable=True),
        "product": product_id,
        "recurring": recurring,
        "tax_behavior": p.enum("tax_behavior", ["inclusive", "exclusive", "unspecified"]) or "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "recurring" if recurring else "one_time",
        "unit_amount": unit_amount,
        "unit_amount_decimal": str(unit_amount),
    }
    store.insert("prices", price)
    store.record_event("price.created", price)
    return store.render(price)


def retrieve_price(req: Request) -> Obj:
    return req.store.render(req.store.get("prices", req.id(), "price"))


def update_price(req: Request) -> Obj:
    p = req.params
    price = req.store.get("prices", req.id(), "price")
    before = snapshot(price)
    draft = snapshot(price)
    if p.has("active"):
        draft["active"] = p.bool("active")
    if p.has("nickname"):
        draft["nickname"] = p.str("nickname", nullable=True)
    if p.has("tax_behavior"):
        draft["tax_behavior"] = p.enum("tax_behavior", ["inclusive", "exclusive", "unspecified"])
    draft["metadata"] = apply_metadata(draft["metadata"], p.metadata())
    holder = None
    if p.has("lookup_key"):
        draft["lookup_key"] = p.str("lookup_key", nullable=True)
        holder = _claim_lookup_key(req, price["id"], draft["lookup_key"], bool(p.bool("transfer_lookup_key")))
    _release(req, holder)
    price.update(draft)
    prev = previous_attributes(before, price)
    if prev:
        req.store.record_event("price.updated", price, prev)
    return req.store.render(price)


def list_prices(req: Request) -> Obj:
    p = req.params
    active = p.bool("active")
    currency = p.str("currency")
    product = p.str("product")
    type_ = p.enum("type", ["one_time", "recurring"])
    lookup_keys = p.str_list("lookup_keys")
    if lookup_keys is not None and len(lookup_keys) > 10:
        raise invalid("You can pass up to 10 lookup_keys.", param="lookup_keys")
    rec = p.sub("recurring")
    rec_filter: dict[str, str | None] = {}
    if rec is not None:
        rec.check({"interval", "usage_type", "meter"})
        rec_filter = {k: rec.str(k) for k in ("interval", "usage_type", "meter") if rec.has(k)}

    def keep(o: Obj) -> bool:
        if active is not None and o["active"] != active:
            return False
        if currency is not None and o["currency"] != currency.lower():
            return False
        if product is not None and o["product"] != product:
            return False
        if type_ is not None and o["type"] != type_:
            return False
        if lookup_keys is not None and o["lookup_key"] not in lookup_keys:
            return False
        return not rec_filter or (
            o["recurring"] is not None and all(o["recurring"].get(k) == v for k, v in rec_filter.items())
        )

    return req.store.paginate(req.store.newest_first("prices", keep), p, "/v1/prices", "price")
