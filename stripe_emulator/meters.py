"""Billing meters, meter events (v1 and the v2 meter event stream) and event summaries.

Sources (Stripe docs, checked with the ``search`` tool; SDK = stripe 16.1.0 in the venv):

* Meter object and params: SDK ``billing/_meter.py``, ``params/billing/_meter_*_params.py``.
  Defaults ``customer_mapping.event_payload_key=stripe_customer_id`` and
  ``value_settings.event_payload_key=value`` (meter event ``payload`` doc). "An event name can
  only be used by one meter" and "after setup only the display name can change"
  (docs.stripe.com/billing/subscriptions/usage-based/meters/configure). Pre-aggregated meters
  (``event_time_window`` hour|day): only the last event received in each UTC window counts
  (same page, "Event ingestion").
* Meter events: "timestamp ... Must be within the past 35 calendar days or up to 5 minutes in
  the future" (API reference, meter event ``timestamp``; recording-usage-api: the 5 minutes are
  for clock drift). Identifier "uniqueness within a rolling 24 hour period" (API reference).
  A v1 event whose identifier was already seen is rejected, not ignored: 400
  ``invalid_request_error`` "An event already exists with identifier ...", with
  ``Stripe-Should-Retry: false`` (Stripe's observed answer, quoted in langfuse/langfuse PR
  #16292; the docs only say uniqueness is enforced). A negative total for a period is billed
  as quantity 0 (recording-usage-api, "Usage values").
* Error codes are the ones Stripe reports for meter events (SDK
  ``events/_v1_billing_meter_error_report_triggered_event.py``): ``no_meter``,
  ``archived_meter``, ``meter_event_no_customer_defined``, ``meter_event_customer_not_found``,
  ``meter_event_invalid_value``, ``timestamp_too_far_in_past``, ``timestamp_in_future``. The
  message for a missing customer key is the one in Stripe's sample error report
  ("Customer mapping key stripe_customer_id not found in payload."); the other messages are
  the emulator's wording.
* v2 session: ``POST /v2/billing/meter_event_session`` with the secret key, "Authentication
  tokens are only valid for 15 minutes" (SDK ``v2/billing/_meter_event_session_service.py``);
  ``created``/``expires_at`` are RFC 3339 strings (SDK ``v2/billing/_meter_event_session.py``,
  API reference sample ``2024-06-01T12:15:00.000Z``).
* v2 stream: ``POST /v2/billing/meter_event_stream`` on the ``meter_events`` base address,
  ``Authorization: Bearer <authentication_token>``, "up to 100 events per request", answers
  ``{}``; "Events are processed asynchronously, including validation" (SDK
  ``v2/billing/_meter_event_stream_service.py``, API reference). Expired token: 401
  ``{"error": {"type": "temporary_session_expired", "code":
  "billing_meter_event_session_expired", "message", "doc_url"}}`` (OpenAPI schema
  ``v2.error.billing_meter_event_session_expired``; the SDK raises
  ``TemporarySessionExpiredError``).

How v2 validation is emulated: the request's shape (``events`` a list of 1..100 objects, each
with ``event_name`` and a ``payload`` object) is checked synchronously (400, v2 envelope,
code ``invalid_fields``); each event is then validated as in v1 but a failing event is only
dropped and recorded as an error report (``GET /_emulator/state`` -> ``meter_error_reports``,
shaped after the ``v1.billing.meter.error_report_triggered`` / ``no_meter_found`` thin events) and
as those v2 events themselves (``thin_events.py``), never turned into an HTTP error. Duplicate identifiers in the stream are dropped silently.
Real Stripe aggregates asynchronously (summaries are eventually consistent); the emulator
applies events at once.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from . import thin_events
from .common import previous_attributes, public, snapshot
from .errors import StripeError, invalid, missing_param, no_such
from .params import Params
from .store import Kind, Obj

if TYPE_CHECKING:
    from .server import Emulator, Request

DAY = 86400
PAST_WINDOW = 35 * DAY  # meter event timestamps: within the past 35 calendar days
FUTURE_WINDOW = 5 * 60  # ... and at most 5 minutes ahead (clock drift)
IDENTIFIER_WINDOW = DAY  # identifiers unique within a rolling 24 hours
SESSION_TTL = 15 * 60  # v2 session tokens are valid for 15 minutes
MAX_STREAM_EVENTS = 100
MAX_DIGITS = 15  # significant digits of a value (changelog 2026-04-22.dahlia)
FORMULAS = ["count", "last", "sum"]
WINDOWS = ["day", "hour"]
STREAM_ROUTE = "/v2/billing/meter_event_stream"
V2_DOCS = "https://docs.stripe.com/api/v2/billing/meter-event-stream/create"


class V2Error(StripeError):
    """An error in the API v2 envelope: ``{"error": {"type", "code", "message", "doc_url"}}``."""

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        err: dict[str, Any] = {"type": self.type, "code": self.code, "message": self.message}
        err["doc_url"] = V2_DOCS
        return {"error": err}


def session_expired(message: str = "The temporary session token has expired.") -> V2Error:
    return V2Error(401, message, type="temporary_session_expired", code="billing_meter_event_session_expired")


def register(emu: Emulator) -> None:
    emu.store.register(Kind("billing.meter", "mtr", "billing_meters", None))
    r = emu.router
    r.add(
        "POST /v1/billing/meters",
        create_meter,
        {
            "display_name",
            "event_name",
            "default_aggregation",
            "customer_mapping",
            "value_settings",
            "event_time_window",
        },
    )
    r.add("GET /v1/billing/meters", list_meters, {"status", "limit", "starting_after", "ending_before"})
    r.add("GET /v1/billing/meters/{id}", retrieve_meter)
    r.add("POST /v1/billing/meters/{id}", update_meter, {"display_name"})
    r.add("POST /v1/billing/meters/{id}/deactivate", deactivate_meter)
    r.add("POST /v1/billing/meters/{id}/reactivate", reactivate_meter)
    r.add(
        "GET /v1/billing/meters/{id}/event_summaries",
        event_summaries,
        {
            "customer",
            "start_time",
            "end_time",
            "value_grouping_window",
            "limit",
            "starting_after",
            "ending_before",
        },
    )
    r.add(
        "POST /v1/billing/meter_events",
        create_meter_event,
        {"event_name", "payload", "identifier", "timestamp"},
    )
    r.add("POST /v2/billing/meter_event_session", create_session)
    r.add("POST /v2/billing/meter_event_stream", stream_events, {"events"})
    # The stream authenticates with a session token, not an API key.
    emu.authenticators[STREAM_ROUTE] = lambda header: authenticate_stream(emu, header)


# state ------------------------------------------------------------------------------------------
def _extra(emu: Emulator, name: str) -> Any:
    defaults: dict[str, Any] = {"meter_events": [], "meter_event_sessions": {}, "meter_error_reports": []}
    return emu.store.extra.setdefault(name, defaults[name])


def meter_events(emu: Emulator) -> list[Obj]:
    result: list[Obj] = _extra(emu, "meter_events")
    return result


def state(emu: Emulator) -> dict[str, Any]:
    """For ``GET /_emulator/state``."""
    return {
        "billing_meters": [snapshot(m) for m in emu.store.coll("billing_meters").values()],
        "meter_events": [snapshot(e) for e in meter_events(emu)],
        "meter_event_sessions": [snapshot(s) for s in _extra(emu, "meter_event_sessions").values()],
        "meter_error_reports": [snapshot(r) for r in _extra(emu, "meter_error_reports")],
    }


# meters -----------------------------------------------------------------------------------------
def _payload_key(p: Params, name: str, default: str, extra: set[str] | None = None) -> str:
    sub = p.sub(name)
    if sub is None:
        return default
    sub.check({"event_payload_key"} | (extra or set()))
    key = sub.str("event_payload_key", required=True)
    assert key is not None
    return key


def _active_with_event_name(emu: Emulator, event_name: str, other_than: str | None = None) -> Obj | None:
    for meter in emu.store.coll("billing_meters").values():
        if meter["event_name"] == event_name and meter["status"] == "active" and meter["id"] != other_than:
            return meter
    return None


def _name_taken(event_name: str) -> StripeError:
    # configure doc: "An event name can only be used by one meter."
    return invalid(
        f"An active meter with event_name '{event_name}' already exists. An event name can only be used "
        "by one meter.",
        param="event_name",
    )


def create_meter(req: Request) -> Obj:
    p, store, now = req.params, req.store, req.now
    display_name = p.str("display_name", required=True)
    event_name = p.str("event_name", required=True)
    assert display_name is not None
    assert event_name is not None
    if len(event_name) > 100:
        raise invalid("event_name must be at most 100 characters.", param="event_name")
    agg = p.sub("default_aggregation", required=True)
    if agg is None:
        raise missing_param("default_aggregation[formula]")
    agg.check({"formula"})
    formula = agg.enum("formula", FORMULAS, required=True)
    mapping = p.sub("customer_mapping")
    if mapping is not None:
        mapping.check({"event_payload_key", "type"})
        mapping.enum("type", ["by_id"], required=True)
    customer_key = _payload_key(p, "customer_mapping", "stripe_customer_id", {"type"})
    value_key = _payload_key(p, "value_settings", "value")
    window = p.enum("event_time_window", WINDOWS)
    if _active_with_event_name(req.emulator, event_name) is not None:
        raise _name_taken(event_name)
    meter: Obj = {
        "id": store.new_id("mtr"),
        "object": "billing.meter",
        "created": now,
        "customer_mapping": {"event_payload_key": customer_key, "type": "by_id"},
        "default_aggregation": {"formula": formula},
        "display_name": display_name,
        "event_name": event_name,
        "event_time_window": window,
        "livemode": False,
        "status": "active",
        "status_transitions": {"deactivated_at": None},
        "updated": now,
        "value_settings": {"event_payload_key": value_key},
    }
    store.insert("billing_meters", meter)
    store.record_event("billing.meter.created", meter)
    return snapshot(meter)


def _meter(req: Request) -> Obj:
    return req.store.get("billing_meters", req.id(), "billing meter")


def retrieve_meter(req: Request) -> Obj:
    return snapshot(_meter(req))


def list_meters(req: Request) -> Obj:
    status = req.params.enum("status", ["active", "inactive"])
    objs = req.store.newest_first("billing_meters", lambda m: status is None or m["status"] == status)
    return req.store.paginate(objs, req.params, "/v1/billing/meters", "billing meter")


def update_meter(req: Request) -> Obj:
    meter = _meter(req)
    before = snapshot(meter)
    if req.params.has("display_name"):
        meter["display_name"] = req.params.str("display_name", required=True)
        meter["updated"] = req.now
    prev = previous_attributes(before, meter)
    prev.pop("updated", None)
    if prev:
        req.store.record_event("billing.meter.updated", meter, prev)
    return snapshot(meter)


def deactivate_meter(req: Request) -> Obj:
    """No more events are accepted for a deactivated meter (SDK ``Meter.deactivate`` doc).

    Deactivating an inactive meter is answered with the meter unchanged (emulator choice).
    """
    meter = _meter(req)
    if meter["status"] == "active":
        before = snapshot(meter)
        meter["status"] = "inactive"
        meter["status_transitions"] = {"deactivated_at": req.now}
        meter["updated"] = req.now
        req.store.record_event("billing.meter.deactivated", meter, previous_attributes(before, meter))
    return snapshot(meter)


def reactivate_meter(req: Request) -> Obj:
    meter = _meter(req)
    if meter["status"] == "inactive":
        if _active_with_event_name(req.emulator, meter["event_name"], other_than=meter["id"]) is not None:
            raise _name_taken(meter["event_name"])
        before = snapshot(meter)
        meter["status"] = "active"
        meter["status_transitions"] = {"deactivated_at": None}
        meter["updated"] = req.now
        req.store.record_event("billing.meter.reactivated", meter, previous_attributes(before, meter))
    return snapshot(meter)


# meter events -----------------------------------------------------------------------------------
class EventRejected(Exception):
    """A meter event failing validation; v1 answers it, v2 reports it asynchronously."""

    def __init__(
        self,
        code: str | None,
        message: str,
        param: str | None,
        meter: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
        self.meter = meter
        self.headers = headers or {}


def _number(raw: Any) -> Decimal | None:
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        return None
    try:
        value = Decimal(str(raw).strip())
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def ingest(
    emu: Emulator,
    event_name: str,
    payload: dict[str, Any],
    identifier: str | None,
    timestamp: int | None,
    source: str,
) -> Obj:
    """Validate and store one meter event (the rules of both v1 and v2). Raises EventRejected."""
    now = emu.clock.now()
    ts = now if timestamp is None else timestamp
    if ts < now - PAST_WINDOW:
        raise EventRejected(
            "timestamp_too_far_in_past",
            "The timestamp must be within the past 35 calendar days.",
            "timestamp",
        )
    if ts > now + FUTURE_WINDOW:
        raise EventRejected(
            "timestamp_in_future",
            "The timestamp cannot be more than 5 minutes in the future.",
            "timestamp",
        )
    meter = _active_with_event_name(emu, event_name)
    if meter is None:
        archived = [m for m in emu.store.coll("billing_meters").values() if m["event_name"] == event_name]
        if archived:
            raise EventRejected(
                "archived_meter",
                f"The meter for event_name '{event_name}' is inactive and does not accept events.",
                "event_name",
                archived[-1]["id"],
            )
        raise EventRejected(
            "no_meter", f"No active meter was found for event_name '{event_name}'.", "event_name"
        )
    customer_key = meter["customer_mapping"]["event_payload_key"]
    value_key = meter["value_settings"]["event_payload_key"]
    customer = payload.get(customer_key)
    if not customer or not isinstance(customer, str):
        raise EventRejected(
            "meter_event_no_customer_defined",
            f"Customer mapping key {customer_key} not found in payload.",
            f"payload[{customer_key}]",
            meter["id"],
        )
    cus = emu.store.coll("customers").get(customer)
    if cus is None or cus.get("deleted"):
        raise EventRejected(
            "meter_event_customer_not_found",
            f"No customer was found for {customer_key} '{customer}'.",
            f"payload[{customer_key}]",
            meter["id"],
        )
    raw_value = payload.get(value_key)
    formula = meter["default_aggregation"]["formula"]
    if raw_value is None and formula != "count":
        raise EventRejected(
            "meter_event_invalid_value",
            f"Value key {value_key} not found in payload.",
            f"payload[{value_key}]",
            meter["id"],
        )
    value = _number(raw_value) if raw_value is not None else Decimal(1)
    if value is None:
        raise EventRejected(
            "meter_event_invalid_value",
            f"The value for {value_key} must be a number given as a string, got {raw_value!r}.",
            f"payload[{value_key}]",
            meter["id"],
        )
    if len(value.normalize().as_tuple().digits) > MAX_DIGITS:
        raise EventRejected(
            "meter_event_value_too_many_digits",
            f"The value in the event payload can have at most {MAX_DIGITS} digits. Received {raw_value}.",
            f"payload[{value_key}]",
            meter["id"],
        )
    if identifier is not None:
        for seen in meter_events(emu):
            if seen["identifier"] == identifier and seen["created"] > now - IDENTIFIER_WINDOW:
                raise EventRejected(
                    None,
                    f"An event already exists with identifier {identifier}.",
                    "identifier",
                    meter["id"],
                    {"Stripe-Should-Retry": "false"},
                )
    event: Obj = {
        "identifier": identifier or str(uuid.uuid4()),
        "event_name": event_name,
        "meter": meter["id"],
        "customer": customer,
        "value": str(value),
        "payload": {k: str(v) for k, v in payload.items()},
        "timestamp": ts,
        "created": now,
        "source": source,
    }
    meter_events(emu).append(event)
    return event


def create_meter_event(req: Request) -> Obj:
    """``POST /v1/billing/meter_events``: validated synchronously (see the module docstring)."""
    p = req.params
    event_name = p.str("event_name", required=True)
    assert event_name is not None
    payload_params = p.sub("payload", required=True)
    if payload_params is None:
        raise missing_param("payload")
    identifier = p.str("identifier")
    if identifier is not None and len(identifier) > 100:
        raise invalid("identifier must be at most 100 characters.", param="identifier")
    timestamp = p.int("timestamp")
    try:
        event = ingest(req.emulator, event_name, payload_params.data, identifier, timestamp, "v1")
    except EventRejected as rej:
        raise StripeError(400, rej.message, code=rej.code, param=rej.param, headers=rej.headers) from None
    return {
        "object": "billing.meter_event",
        "created": event["created"],
        "event_name": event["event_name"],
        "identifier": event["identifier"],
        "livemode": False,
        "payload": dict(event["payload"]),
        "timestamp": event["timestamp"],
    }


# v2: sessions and the stream --------------------------------------------------------------------
def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ts * 1000) % 1000:03d}Z"


def create_session(req: Request) -> Obj:
    now = req.emulator.clock.now_float()
    token = "token_" + secrets.token_urlsafe(24)
    session: Obj = {
        "id": "mtrses_" + secrets.token_hex(12),
        "object": "v2.billing.meter_event_session",
        "authentication_token": token,
        "created": _rfc3339(now),
        "expires_at": _rfc3339(now + SESSION_TTL),
        "livemode": False,
        "_expires": now + SESSION_TTL,
    }
    _extra(req.emulator, "meter_event_sessions")[token] = session
    return public(session)


def authenticate_stream(emu: Emulator, header: str | None) -> str:
    """The stream takes ``Bearer <authentication_token>`` of a live session, nothing else."""
    scheme, _, value = (header or "").partition(" ")
    token = value.strip() if scheme.lower() == "bearer" else ""
    with emu.store.lock:
        session = _extra(emu, "meter_event_sessions").get(token)
    if session is None:
        # Documented 401 for the stream; an unknown token is treated like an expired one.
        raise session_expired("The temporary session token is invalid or has expired.")
    if emu.clock.now_float() >= session["_expires"]:
        raise session_expired()
    return token


def _invalid_fields(message: str) -> V2Error:
    # API v2 reports request-shape errors with code ``invalid_fields`` (see stripe-node's
    # generateV2Error); the type is the emulator's choice so the SDK raises InvalidRequestError.
    return V2Error(400, message, type="invalid_request_error", code="invalid_fields")


def _parse_time(raw: Any, index: int) -> int | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise _invalid_fields(f"events[{index}].timestamp must be an RFC 3339 date-time string.")
    try:
        dt = datetime.fromisoformat(raw)
    except ValueError:
        raise _invalid_fields(f"events[{index}].timestamp is not a valid date-time: {raw!r}.") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp())


def stream_events(req: Request) -> Obj:
    emu = req.emulator
    events = req.params.raw("events")
    if not isinstance(events, list) or not events:
        raise _invalid_fields("events is required and must be a non-empty array.")
    if len(events) > MAX_STREAM_EVENTS:
        raise _invalid_fields(
            f"events supports up to {MAX_STREAM_EVENTS} events per request; got {len(events)}."
        )
    parsed: list[tuple[str, dict[str, Any], str | None, int | None]] = []
    for i, ev in enumerate(events):
        if not isinstance(ev, dict):
            raise _invalid_fields(f"events[{i}] must be an object.")
        unknown = set(ev) - {"event_name", "identifier", "payload", "timestamp"}
        if unknown:
            raise _invalid_fields(f"events[{i}] has unknown field {sorted(unknown)[0]}.")
        name, payload, identifier = ev.get("event_name"), ev.get("payload"), ev.get("identifier")
        if not isinstance(name, str) or not name:
            raise _invalid_fields(f"events[{i}].event_name is required.")
        if not isinstance(payload, dict):
            raise _invalid_fields(f"events[{i}].payload is required and must be an object.")
        if identifier is not None and not isinstance(identifier, str):
            raise _invalid_fields(f"events[{i}].identifier must be a string.")
        parsed.append((name, payload, identifier, _parse_time(ev.get("timestamp"), i)))
    failures: list[tuple[str | None, Obj]] = []
    for name, payload, identifier, ts in parsed:
        try:
            ingest(emu, name, payload, identifier, ts, "v2")
        except EventRejected as rej:
            if rej.code is None:  # duplicate identifier: dropped
                continue
            _report(emu, req, name, identifier, rej)
            failures.append(
                (rej.meter, {"code": rej.code, "error_message": rej.message, "identifier": identifier or ""})
            )
    if failures:
        thin_events.meter_error_reports(emu, req, failures)
    return {}


def _report(emu: Emulator, req: Request, event_name: str, identifier: str | None, rej: EventRejected) -> None:
    """Record an asynchronous validation failure the way Stripe's thin events describe it."""
    _extra(emu, "meter_error_reports").append(
        {
            "type": "v1.billing.meter.no_meter_found"
            if rej.meter is None
            else "v1.billing.meter.error_report_triggered",
            "related_object": None if rej.meter is None else {"id": rej.meter, "type": "billing.meter"},
            "created": _rfc3339(emu.clock.now_float()),
            "code": rej.code,
            "error_message": rej.message,
            "event_name": event_name,
            "identifier": identifier,
            "request_id": req.request_id,
        }
    )


# aggregation ------------------------------------------------------------------------------------
def _window_start(ts: int, window: str) -> int:
    size = 3600 if window == "hour" else DAY
    return ts - ts % size


def aggregate(emu: Emulator, meter: Obj, customer: str, start: int, end: int) -> Decimal:
    """The meter's formula over the customer's events with ``start <= timestamp < end``."""
    events = [
        e
        for e in meter_events(emu)
        if e["meter"] == meter["id"] and e["customer"] == customer and start <= e["timestamp"] < end
    ]
    window = meter.get("event_time_window")
    if window:
        # Pre-aggregated: the last event received in each UTC hour/day window wins.
        latest: dict[int, Obj] = {}
        for e in events:  # stored in the order received
            latest[_window_start(e["timestamp"], window)] = e
        events = list(latest.values())
    formula = meter["default_aggregation"]["formula"]
    if formula == "count":
        return Decimal(len(events))
    if formula == "last":
        if not events:
            return Decimal(0)
        # The latest event by timestamp; among equal timestamps, the one received last.
        last = max(enumerate(events), key=lambda pair: (pair[1]["timestamp"], pair[0]))[1]
        return Decimal(last["value"])
    return sum((Decimal(e["value"]) for e in events), Decimal(0))


def billable_usage(emu: Emulator, meter_id: str | None, customer: str, start: int, end: int) -> Decimal:
    """Usage to bill for a metered price over ``[start, end)``: 0 for a missing meter, never negative."""
    meter = emu.store.coll("billing_meters").get(meter_id or "")
    if meter is None:
        return Decimal(0)
    return max(Decimal(0), aggregate(emu, meter, customer, start, end))


def usage_amount(unit_amount_decimal: str, usage: Decimal) -> int:
    return int((Decimal(unit_amount_decimal) * usage).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _summary_id(meter_id: str, customer: str, start: int, end: int) -> str:
    digest = hashlib.sha256(f"{meter_id}:{customer}:{start}:{end}".encode()).hexdigest()[:24]
    return f"mtrusg_{digest}"


def event_summaries(req: Request) -> Obj:
    p = req.params
    meter = _meter(req)
    customer = p.str("customer", required=True)
    start = p.int("start_time", required=True)
    end = p.int("end_time", required=True)
    assert customer is not None
    assert start is not None
    assert end is not None
    if customer not in req.store.coll("customers"):
        raise no_such("customer", customer, "customer")
    # SDK params: start/end "Must be aligned with minute boundaries"; hour/day windows must align
    # with hour boundaries / UTC day boundaries.
    window = p.enum("value_grouping_window", WINDOWS)
    step = {None: 60, "hour": 3600, "day": DAY}[window]
    for name, value in (("start_time", start), ("end_time", end)):
        if value % step:
            unit = {60: "minute", 3600: "hour", DAY: "day"}[step]
            raise invalid(f"{name} must be aligned with {unit} boundaries.", param=name)
    if end <= start:
        raise invalid("end_time must be after start_time.", param="end_time")
    bounds = [(start, end)] if window is None else [(t, t + step) for t in range(start, end, step)]
    summaries = [
        {
            "id": _summary_id(meter["id"], customer, s, e),
            "object": "billing.meter_event_summary",
            "aggregated_value": float(aggregate(req.emulator, meter, customer, s, e)),
            "end_time": e,
            "livemode": False,
            "meter": meter["id"],
            "start_time": s,
        }
        for s, e in reversed(bounds)
    ]
    return req.store.paginate(
        summaries, p, f"/v1/billing/meters/{meter['id']}/event_summaries", "billing meter event summary"
    )
