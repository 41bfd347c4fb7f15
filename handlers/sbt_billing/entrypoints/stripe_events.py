"""Stripe's deliveries to the webhook, parsed at the boundary: a snapshot event (API v1, the object as it
was) into the domain's StripeEvent, or an event destination's thin event (API v2: what happened, the
data fetched by id)."""

from __future__ import annotations

import json

from pydantic import ValidationError

from sbt_billing.domain.errors import InvalidEvent
from sbt_billing.domain.frozen import Frozen
from sbt_billing.domain.stripe_events import StripeEvent
from sbt_billing.entrypoints import bounded_json


def parse_event(payload: bytes) -> StripeEvent:
    document = bounded_json.loads(payload, "body")  # not JSON, or nested too deep: InvalidEvent
    if not isinstance(document, dict) or document.get("object", "event") != "event":
        raise InvalidEvent("body", "is not a Stripe event")
    try:
        return StripeEvent.model_validate(document)
    except ValidationError as error:
        first = error.errors()[0]
        location = ".".join(str(part) for part in first["loc"]) or "body"
        raise InvalidEvent(location, "is required" if first["type"] == "missing" else first["msg"]) from None


class ThinEvent(Frozen):
    """An event destination's thin delivery: what happened, not the data (fetched by id)."""

    event_id: str
    type: str
    livemode: bool
    related_id: str | None = None


def thin_event(payload: bytes) -> ThinEvent | None:
    """The thin event in a delivery, or None when the body is not one (a snapshot event, say)."""
    try:
        body = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(body, dict) or body.get("object") != "v2.core.event":
        return None
    event_id, kind = body.get("id"), body.get("type")
    if not isinstance(event_id, str) or not event_id or not isinstance(kind, str):
        raise InvalidEvent("id", "a thin event needs an id and a type")
    related = body.get("related_object")
    related_id = related.get("id") if isinstance(related, dict) else None
    return ThinEvent(
        event_id=event_id,
        type=kind,
        livemode=body.get("livemode") is True,
        related_id=related_id if isinstance(related_id, str) else None,
    )


def is_thin_event(payload: bytes) -> bool:
    """Whether a webhook delivery is an event destination's thin event (API v2), not a snapshot event."""
    try:
        return thin_event(payload) is not None
    except InvalidEvent:
        return True  # malformed, but thin: the thin event's handling answers it
