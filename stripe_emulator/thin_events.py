"""API v2 events ("thin" events): the meter error reports, ``GET /v2/core/events[/{id}]``, and the
payload an event destination delivers.

As Stripe documents them (docs.stripe.com/event-destinations, API reference "Types of events" v2, SDK
``v2/core/_event.py`` and ``events/_v1_billing_meter_error_report_triggered_event.py``):

* A v2 event is ``{"id", "object": "v2.core.event", "type", "created" (RFC 3339), "livemode",
  "context", "reason": {"type": "request", "request": {"id", "idempotency_key"}},
  "related_object": {"id", "type", "url"}, "data"}``. An event destination with the thin payload
  style delivers it without ``data``; the receiver fetches the event (``GET /v2/core/events/{id}``)
  for it. Deliveries are signed like webhooks (``Stripe-Signature: t=...,v1=...``) with the
  destination's secret: ``webhooks.py`` delivers them to endpoints registered with
  ``"event_payload": "thin"``.
* ``v1.billing.meter.error_report_triggered`` (a meter has invalid asynchronous usage events;
  related object: the meter) and ``v1.billing.meter.no_meter_found`` (no meter for the events'
  name; no related object) carry ``data = {"developer_message_summary", "validation_start",
  "validation_end", "reason": {"error_count", "error_types": [{"code", "error_count",
  "sample_errors": [{"error_message", "request": {"identifier"}}]}]}}``; ``identifier`` is the
  meter event's identifier.

Emulator choices (Stripe does not document them): one report per meter per stream request whose
events failed (the request is the validation window), and at most
``Settings.meter_error_samples`` sample errors per code (10 by default), so that receivers meet
reports that count more errors than they name.
"""

from __future__ import annotations

import secrets
import string
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from .common import snapshot
from .errors import no_such
from .store import Obj

if TYPE_CHECKING:
    from .server import Emulator, Request

ERROR_REPORT = "v1.billing.meter.error_report_triggered"
NO_METER_FOUND = "v1.billing.meter.no_meter_found"
_ALPHABET = string.ascii_letters + string.digits
_EVENTS = "v2_events"


def register(emu: Emulator) -> None:
    emu.router.add("GET /v2/core/events", list_events, {"limit", "object_id", "types", "created", "page"})
    emu.router.add("GET /v2/core/events/{id}", retrieve_event)


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ts * 1000) % 1000:03d}Z"


def v2_events(emu: Emulator) -> dict[str, Obj]:
    events: dict[str, Obj] = emu.store.extra.setdefault(_EVENTS, {})
    return events


def thin(event: Obj) -> Obj:
    """The payload an event destination with the thin style delivers: the event without its data."""
    return {k: snapshot(v) for k, v in event.items() if k not in ("data", "changes")}


def record(emu: Emulator, req: Request, type: str, related: Obj | None, data: Obj) -> Obj:
    event: Obj = {
        "id": "evt_test_" + "".join(secrets.choice(_ALPHABET) for _ in range(24)),
        "object": "v2.core.event",
        "context": None,
        "created": rfc3339(emu.clock.now_float()),
        "data": data,
        "livemode": False,
        "reason": {
            "type": "request",
            "request": {"id": req.request_id, "idempotency_key": req.idempotency_key or ""},
        },
        "related_object": None
        if related is None
        else {"id": related["id"], "type": "billing.meter", "url": f"/v1/billing/meters/{related['id']}"},
        "snapshot_event": None,
        "type": type,
    }
    v2_events(emu)[event["id"]] = event
    return event


def meter_error_reports(emu: Emulator, req: Request, failures: list[tuple[str | None, Obj]]) -> list[Obj]:
    """One report per meter (``None``: no meter) for the ``(meter id, failure)`` pairs of one request;
    a failure is ``{"code", "error_message", "identifier"}``."""
    by_meter: dict[str | None, list[Obj]] = {}
    for meter_id, failure in failures:
        by_meter.setdefault(meter_id, []).append(failure)
    now = rfc3339(emu.clock.now_float())
    limit = emu.settings.meter_error_samples
    reports = []
    for meter_id, errors in by_meter.items():
        codes: dict[str, list[Obj]] = {}
        for error in errors:
            codes.setdefault(error["code"], []).append(error)
        data = {
            "developer_message_summary": f"There {'is' if len(errors) == 1 else 'are'} {len(errors)} "
            f"invalid event{'' if len(errors) == 1 else 's'}",
            "reason": {
                "error_count": len(errors),
                "error_types": [
                    {
                        "code": code,
                        "error_count": len(items),
                        "sample_errors": [
                            {
                                "error_message": item["error_message"],
                                "request": {"identifier": item["identifier"]},
                            }
                            for item in items[:limit]
                        ],
                    }
                    for code, items in codes.items()
                ],
            },
            "validation_end": now,
            "validation_start": now,
        }
        meter = emu.store.coll("billing_meters").get(meter_id or "")
        kind = NO_METER_FOUND if meter is None else ERROR_REPORT
        reports.append(record(emu, req, kind, meter, data))
    return reports


def retrieve_event(req: Request) -> Obj:
    event = v2_events(req.emulator).get(req.id())
    if event is None:
        raise no_such("event", req.id())
    return snapshot(event)


def list_events(req: Request) -> Obj:
    p = req.params
    limit = p.int("limit") or 20
    object_id = p.str("object_id")
    types = set(p.str_list("types") or [])
    events = [
        snapshot(e)
        for e in reversed(v2_events(req.emulator).values())
        if (object_id is None or (e["related_object"] or {}).get("id") == object_id)
        and (not types or e["type"] in types)
    ]
    return {"data": events[:limit], "next_page_url": None, "previous_page_url": None}
