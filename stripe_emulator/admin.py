"""The admin API under ``/_emulator/`` (JSON in and out, no auth).

=======================================  ==================================================
``GET  /_emulator/health``               ``{"ok": true}``
``POST /_emulator/reset``                clear state, log, counts, faults, latency, keys;
                                         real clock
``GET/POST /_emulator/clock``            ``{"advance_seconds": n}`` | ``{"now": t}`` |
                                         ``{"frozen": false}``; answers ``{"now", "frozen"}``
``POST/GET/DELETE /_emulator/faults``    queue faults / ``{"random": {...}}`` / list / clear;
                                         a 429 fault has no ``Stripe-Should-Retry`` unless
                                         ``should_retry`` is given; random kinds ``429``,
                                         ``lock_timeout`` (429 with ``Should-Retry: true``),
                                         ``500``, ``503``, ``timeout``, ``drop``, ``drop_after``.
                                         The listing shows the rate limit and latency too
``POST /_emulator/rate_limit``           ``{"per_second": N}`` (null or 0 turns it off); its
                                         429 has no ``Stripe-Should-Retry`` (not SDK-retried)
``POST /_emulator/latency``              ``{"ms": N}`` (null or 0 turns it off): every API
                                         request the rate limiter accepts waits N ms first
``GET  /_emulator/requests``             request log (``?route=POST /v1/customers``)
``DELETE /_emulator/requests``           clear the request log and counts only
``GET  /_emulator/counts``               ``{"POST /v1/customers": 2}``; ``?detail=true`` adds
                                         ``executed`` and ``including_faults`` tables
``GET  /_emulator/state``                customers, products, prices, subscriptions (and
                                         schedules), invoices, payment methods, setup intents,
                                         checkout and portal objects, billing meters, meter
                                         events, sessions, error reports
``GET  /_emulator/events``               recorded events, oldest first
``GET/POST /_emulator/settings``         payment retry/failure settings
``GET  /_emulator/idempotency``          saved idempotency keys
``POST /_emulator/invoices/{id}/pay``    the invoice's payment succeeds
``POST /_emulator/invoices/{id}/fail``   the invoice's payment attempt fails
=======================================  ==================================================
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from . import invoices, meters
from .errors import StripeError, invalid
from .faults import parse_fault

if TYPE_CHECKING:
    from .server import Emulator

AdminResult = tuple[int, Any]
AdminHandler = Callable[["Emulator", dict[str, str], dict[str, Any], dict[str, str]], AdminResult]

_ROUTES: list[tuple[str, re.Pattern[str], AdminHandler]] = []


def route(spec: str) -> Callable[[AdminHandler], AdminHandler]:
    method, template = spec.split(" ", 1)
    pattern = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "$")

    def deco(fn: AdminHandler) -> AdminHandler:
        _ROUTES.append((method, pattern, fn))
        return fn

    return deco


def dispatch(emu: Emulator, method: str, path: str, query: str, body: bytes) -> AdminResult:
    try:
        payload = json.loads(body) if body.strip() else {}
        if not isinstance(payload, dict):
            raise invalid("admin requests take a JSON object")
    except json.JSONDecodeError as exc:
        return 400, {"error": {"type": "invalid_request_error", "message": f"invalid JSON: {exc}"}}
    q = {k: v[-1] for k, v in parse_qs(query).items()}
    for m, pattern, fn in _ROUTES:
        match = pattern.match(path)
        if m == method and match:
            try:
                return fn(emu, match.groupdict(), payload, q)
            except StripeError as err:
                return err.status, err.body()
    return 404, {"error": {"type": "invalid_request_error", "message": f"no admin route {method} {path}"}}


@route("GET /_emulator/health")
def health(emu: Emulator, p: dict[str, str], body: dict[str, Any], q: dict[str, str]) -> AdminResult:
    return 200, {"ok": True}


@route("POST /_emulator/reset")
def reset(emu: Emulator, p: dict[str, str], body: dict[str, Any], q: dict[str, str]) -> AdminResult:
    emu.reset()
    return 200, {"reset": True}


def _clock_json(emu: Emulator) -> dict[str, Any]:
    return {"now": emu.clock.now(), "frozen": emu.clock.frozen}


@route("GET /_emulator/clock")
def get_clock(emu: Emulator, p: dict[str, str], body: dict[str, Any], q: dict[str, str]) -> AdminResult:
    return 200, _clock_json(emu)


@route("POST /_emulator/clock")
def set_clock(emu: Emulator, p: dict[str, str], body: dict[str, Any], q: dict[str, str]) -> AdminResult:
    with emu.store.lock:
        if "now" in body:
            now = body["now"]
            if not isinstance(now, (int, float)):
                raise invalid("now must be a unix timestamp", param="now")
            empty = not any(emu.store.collections.values())
            if now < emu.clock.now_float() and not empty and not body.get("allow_backwards", False):
                raise invalid(
                    "the clock only goes backwards while the state is empty (or pass allow_backwards: true)",
                    param="now",
                )
            emu.clock.set(now)
        if "advance_seconds" in body:
            seconds = body["advance_seconds"]
            if not isinstance(seconds, (int, float)) or seconds < 0:
                raise invalid("advance_seconds must be a non-negative number", param="advance_seconds")
            emu.clock.advance(seconds)
        if body.get("frozen") is False:
            emu.clock.unfreeze()
        emu.due.rebuild()
        emu.tick()
    return 200, _clock_json(emu)


@route("POST /_emulator/faults")
def add_faults(emu: Emulator, p: dict[str, str], body: dict[str, Any], q: dict[str, str]) -> AdminResult:
    if "random" in body:
        spec = body["random"]
        if spec is None:
            emu.faults.random = None
        elif isinstance(spec, dict):
            emu.faults.set_random(spec)
        else:
            raise invalid("random must be an object or null", param="random")
    specs = body.get("faults")
    if specs is None and "random" not in body:
        specs = [body]
    for spec in specs or []:
        emu.faults.add(parse_fault(spec))
    return 200, emu.faults.snapshot()


@route("GET /_emulator/faults")
def list_faults(emu: Emulator, p: dict[str, str], body: dict[str, Any], q: dict[str, str]) -> AdminResult:
    return 200, emu.faults.snapshot()


@route("DELETE /_emulator/faults")
def clear_faults(emu: Emulator, p: dict[str, str], body: dict[str, Any], q: dict[str, str]) -> AdminResult:
    emu.faults.clear()
    return 200, emu.faults.snapshot()


@route("POST /_emulator/rate_limit")
def rate_limit(emu: Emulator, p: dict[str, str], body: dict[str, Any], q: dict[str, str]) -> AdminResult:
    per_second = body.get("per_second")
    if per_second is not None and (not isinstance(per_second, (int, float)) or per_second < 0):
        raise invalid("per_second must be a non-negative number or null", param="per_second")
    emu.faults.set_rate_limit(per_second)
    return 200, {"per_second": per_second or None}


@route("POST /_emulator/latency")
def latency(emu: Emulator, p: dict[str, str], body: dict[str, Any], q: dict[str, str]) -> AdminResult:
    ms = body.get("ms")
    emu.faults.set_latency(ms)
    return 200, {"ms": ms or None}


@route("GET /_emulator/requests")
def requests_log(emu: Emulator, p: dict[str, str], body: dict[str, Any], q: dict[str, str]) -> AdminResult:
    with emu.log_lock:
        log = [dict(e) for e in emu.request_log]
    if "route" in q:
        log = [e for e in log if e["route"] == q["route"]]
    return 200, {"object": "list", "data": log}


@route("DELETE /_emulator/requests")
def clear_requests(emu: Emulator, p: dict[str, str], body: dict[str, Any], q: dict[str, str]) -> AdminResult:
    """Forget the request log and counts only (e.g. after seeding a catalogue)."""
    with emu.log_lock:
        emu.request_log.clear()
        emu.counts.clear()
        emu.executed.clear()
        emu.totals.clear()
    return 200, {"cleared": True}


@route("GET /_emulator/counts")
def counts(emu: Emulator, p: dict[str, str], body: dict[str, Any], q: dict[str, str]) -> AdminResult:
    with emu.log_lock:
        if q.get("detail") in ("true", "1"):
            return 200, {
                "counts": dict(emu.counts),
                "executed": dict(emu.executed),
                "including_faults": dict(emu.totals),
            }
        return 200, dict(emu.counts)


@route("GET /_emulator/state")
def state(emu: Emulator, p: dict[str, str], body: dict[str, Any], q: dict[str, str]) -> AdminResult:
    store = emu.store
    with store.lock:
        out: dict[str, Any] = {"now": emu.clock.now()}
        for name in (
            "customers",
            "products",
            "prices",
            "subscriptions",
            "subscription_schedules",
            "invoices",
            "invoiceitems",
            "payment_methods",
            "setup_intents",
            "checkout_sessions",
            "billing_portal_configurations",
            "billing_portal_sessions",
        ):
            out[name] = [store.render(o) for o in store.coll(name).values()]
        out.update(meters.state(emu))
    return 200, out


@route("GET /_emulator/events")
def all_events(emu: Emulator, p: dict[str, str], body: dict[str, Any], q: dict[str, str]) -> AdminResult:
    with emu.store.lock:
        data = list(emu.store.coll("events").values())
        if "type" in q:
            data = [e for e in data if e["type"] == q["type"]]
        return 200, {"object": "list", "data": data}


@route("GET /_emulator/idempotency")
def idempotency(emu: Emulator, p: dict[str, str], body: dict[str, Any], q: dict[str, str]) -> AdminResult:
    return 200, {"data": emu.idempotency.snapshot()}


@route("GET /_emulator/settings")
def get_settings(emu: Emulator, p: dict[str, str], body: dict[str, Any], q: dict[str, str]) -> AdminResult:
    return 200, emu.settings.to_json()


@route("POST /_emulator/settings")
def set_settings(emu: Emulator, p: dict[str, str], body: dict[str, Any], q: dict[str, str]) -> AdminResult:
    current = emu.settings.to_json()
    for key, value in body.items():
        if key not in current:
            raise invalid(f"unknown setting {key}", param=key)
        if key == "payment_failure_outcome" and value not in ("unpaid", "canceled", "past_due"):
            raise invalid("payment_failure_outcome must be unpaid, canceled or past_due", param=key)
        if key != "payment_failure_outcome" and (not isinstance(value, int) or value < 1):
            raise invalid(f"{key} must be a positive integer", param=key)
        setattr(emu.settings, key, value)
    return 200, emu.settings.to_json()


@route("POST /_emulator/invoices/{id}/pay")
def pay_invoice(emu: Emulator, p: dict[str, str], body: dict[str, Any], q: dict[str, str]) -> AdminResult:
    with emu.store.lock:
        inv = emu.store.get("invoices", p["id"], "invoice")
        invoices.payment_succeeded(emu, inv)
        return 200, emu.store.render(inv)


@route("POST /_emulator/invoices/{id}/fail")
def fail_invoice(emu: Emulator, p: dict[str, str], body: dict[str, Any], q: dict[str, str]) -> AdminResult:
    with emu.store.lock:
        inv = emu.store.get("invoices", p["id"], "invoice")
        invoices.payment_failed(emu, inv)
        return 200, emu.store.render(inv)
