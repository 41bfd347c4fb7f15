"""Signed webhook deliveries of the events the emulator recorded, signed as Stripe signs them.

=========================================================  ==========================================
``POST /_emulator/webhook_endpoints``                      ``{"url"?, "secret"?, "enabled_events"?}``
                                                           registers an endpoint (a ``whsec_`` secret
                                                           is made when none is given)
``GET  /_emulator/webhook_endpoints``                      the registered endpoints, with secrets
``POST /_emulator/events/{id}/signed``                     ``{"secret"?, "timestamp"?}``: the exact
                                                           payload and headers Stripe would send (a
                                                           v2 event: its thin payload)
``POST /_emulator/webhook_endpoints/{id}/deliver``         ``{"event_ids"?, "types"?, "since"?}``:
                                                           POSTs the events (oldest first, or in the
                                                           order given) to the endpoint's URL
=========================================================  ==========================================

The signature is Stripe's: ``Stripe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<payload>"
under the secret>``. The timestamp defaults to the wall clock, not the emulator's clock: a receiver
compares it with its own clock (Stripe's tolerance is 300 s), and the emulator's clock may be moved
days ahead to make subscriptions renew. Pass ``timestamp`` to sign a replay or a stale delivery.
Endpoints live in ``store.extra`` and are forgotten on reset. Each v1 event recorded while endpoints
with a ``url`` are registered counts those it is for in ``pending_webhooks``; a delivery an endpoint
answers with a 2xx takes it off (``GET /v1/events?delivery_success=...``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import urllib.error
import urllib.request
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .admin import AdminResult, route
from .errors import invalid, no_such
from .thin_events import thin, v2_events

if TYPE_CHECKING:
    from .server import Emulator

_ENDPOINTS = "webhook_endpoints"
_PENDING = "event_deliveries"  # event id -> the endpoints yet to answer its delivery with a 2xx
DELIVERY_TIMEOUT_SECONDS = 10


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def signed_delivery(event: dict[str, Any], secret: str, timestamp: int | None = None) -> dict[str, Any]:
    """The raw body and the headers of a delivery of `event`."""
    payload = json.dumps(event, indent=2).encode()
    stamp = int(time.time()) if timestamp is None else timestamp
    return {
        "payload": payload.decode(),
        "headers": {
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": sign(payload, secret, stamp),
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        },
    }


def register(emu: Emulator) -> None:
    """Nothing under /v1 (the admin routes below register on import): count, on each event, the
    endpoints it is for (``pending_webhooks``, until each has answered a delivery with a 2xx)."""
    emu.store.event_hooks.append(lambda event: _expect_deliveries(emu, event))


def _expect_deliveries(emu: Emulator, event: dict[str, Any]) -> None:
    targets = {
        endpoint["id"]
        for endpoint in _endpoints(emu).values()
        if endpoint["url"]
        and endpoint.get("event_payload", "snapshot") == "snapshot"
        and ("*" in endpoint["enabled_events"] or event["type"] in endpoint["enabled_events"])
    }
    if targets:
        emu.store.extra.setdefault(_PENDING, {})[event["id"]] = targets
        event["pending_webhooks"] = len(targets)


def _delivered(emu: Emulator, endpoint_id: str, results: list[dict[str, Any]]) -> None:
    pending: dict[str, set[str]] = emu.store.extra.get(_PENDING, {})
    for result in results:
        targets = pending.get(result["event_id"])
        event = emu.store.coll("events").get(result["event_id"])
        if targets is None or event is None or not 200 <= result["status"] < 300:
            continue
        targets.discard(endpoint_id)
        event["pending_webhooks"] = len(targets)


def _endpoints(emu: Emulator) -> dict[str, dict[str, Any]]:
    endpoints: dict[str, dict[str, Any]] = emu.store.extra.setdefault(_ENDPOINTS, {})
    return endpoints


def _event(emu: Emulator, event_id: str) -> dict[str, Any]:
    """A v1 (snapshot) event, or a v2 event as its thin payload."""
    event = emu.store.coll("events").get(event_id)
    if event is None:
        v2 = v2_events(emu).get(event_id)
        if v2 is None:
            raise no_such("event", event_id)
        return thin(v2)
    return event


@route("POST /_emulator/webhook_endpoints")
def create_endpoint(emu: Emulator, p: dict[str, str], body: dict[str, Any], q: dict[str, str]) -> AdminResult:
    secret = body.get("secret") or "whsec_" + secrets.token_hex(24)
    if not isinstance(secret, str) or not secret.startswith("whsec_"):
        raise invalid("secret must start with whsec_", param="secret")
    url = body.get("url")
    if url is not None and (not isinstance(url, str) or not url.startswith(("http://", "https://"))):
        raise invalid("url must be an http(s) URL", param="url")
    enabled = body.get("enabled_events") or ["*"]
    style = body.get("event_payload") or "snapshot"
    if style not in ("snapshot", "thin"):
        raise invalid("event_payload must be snapshot or thin", param="event_payload")
    with emu.store.lock:
        endpoint_id = emu.store.new_id("we")
        endpoint: dict[str, Any] = {
            "id": endpoint_id,
            "object": "webhook_endpoint",
            "url": url,
            "secret": secret,
            "enabled_events": list(enabled),
            "event_payload": style,
        }
        _endpoints(emu)[endpoint_id] = endpoint
    return 200, endpoint


@route("GET /_emulator/webhook_endpoints")
def list_endpoints(emu: Emulator, p: dict[str, str], body: dict[str, Any], q: dict[str, str]) -> AdminResult:
    with emu.store.lock:
        return 200, {"object": "list", "data": list(_endpoints(emu).values())}


@route("POST /_emulator/events/{id}/signed")
def signed_event(emu: Emulator, p: dict[str, str], body: dict[str, Any], q: dict[str, str]) -> AdminResult:
    with emu.store.lock:
        event = json.loads(json.dumps(_event(emu, p["id"])))
        secret = body.get("secret")
        if secret is None:
            registered = list(_endpoints(emu).values())
            if not registered:
                raise invalid("pass a secret or register a webhook endpoint first", param="secret")
            secret = registered[0]["secret"]
    timestamp = body.get("timestamp")
    if timestamp is not None and not isinstance(timestamp, int):
        raise invalid("timestamp must be unix seconds", param="timestamp")
    return 200, signed_delivery(event, str(secret), timestamp)


@route("POST /_emulator/webhook_endpoints/{id}/deliver")
def deliver(emu: Emulator, p: dict[str, str], body: dict[str, Any], q: dict[str, str]) -> AdminResult:
    with emu.store.lock:
        endpoint = _endpoints(emu).get(p["id"])
        if endpoint is None:
            raise no_such("webhook_endpoint", p["id"])
        if not endpoint["url"]:
            raise invalid("the endpoint has no url", param="url")
        ids = body.get("event_ids")
        if ids is not None:
            events = [json.loads(json.dumps(_event(emu, str(event_id)))) for event_id in ids]
        else:
            types = set(body.get("types") or [])
            since = int(body.get("since") or 0)
            enabled = set(endpoint["enabled_events"])
            recorded = (
                [thin(event) | {"_at": _seconds(event["created"])} for event in v2_events(emu).values()]
                if endpoint.get("event_payload") == "thin"
                else [dict(event, _at=event["created"]) for event in emu.store.coll("events").values()]
            )
            events = [
                json.loads(json.dumps({k: v for k, v in event.items() if k != "_at"}))
                for event in sorted(recorded, key=lambda e: (e["_at"], e["id"]))
                if event["_at"] >= since
                and (not types or event["type"] in types)
                and ("*" in enabled or event["type"] in enabled)
            ]
    results = [_post(endpoint, event) for event in events]  # outside the lock: the receiver may call back
    with emu.store.lock:
        _delivered(emu, endpoint["id"], results)
    return 200, {"object": "list", "data": results}


def _post(endpoint: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    delivery = signed_delivery(event, endpoint["secret"])
    request = urllib.request.Request(
        endpoint["url"], data=delivery["payload"].encode(), headers=delivery["headers"], method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=DELIVERY_TIMEOUT_SECONDS) as response:
            status, answer = response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        status, answer = error.code, error.read().decode(errors="replace")
    except OSError as error:
        status, answer = 0, str(error)
    return {"event_id": event["id"], "type": event["type"], "status": status, "body": answer[:2000]}


def _seconds(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()
