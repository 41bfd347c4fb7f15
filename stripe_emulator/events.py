"""``GET /v1/events`` and ``GET /v1/events/{id}`` over the events the resources record.

As Stripe documents them (api/events/list, api/events/retrieve):

* newest first, paged with ``limit`` (1..100, default 10), ``starting_after``, ``ending_before``;
* ``type`` (one type, or a group with ``*``: ``customer.subscription.*``) or ``types[]`` (up to 20
  exact types), not both; ``created`` (a second, or ``created[gt|gte|lt|lte]``);
* ``delivery_success``: ``true`` lists events every webhook endpoint has received (or that had none
  to go to), ``false`` those still pending or failed at some endpoint (``pending_webhooks`` > 0;
  deliveries are the emulator's ``/_emulator/webhook_endpoints/{id}/deliver``);
* only the last 30 days of events, by the emulator clock: an older one is neither listed nor
  retrieved (404), as Stripe keeps events for 30 days.

Events are recorded by :meth:`Store.record_event` as objects change (oldest first in
``store.coll("events")``); each carries the request that caused it (``request.id``,
``request.idempotency_key``; null for what happens on the clock or in a hosted page).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .common import created_filter
from .errors import invalid, no_such
from .store import Obj

if TYPE_CHECKING:
    from .server import Emulator, Request

RETENTION = 30 * 86400
MAX_TYPES = 20


def register(emu: Emulator) -> None:
    emu.router.add(
        "GET /v1/events",
        list_events,
        {"limit", "starting_after", "ending_before", "type", "types", "created", "delivery_success"},
    )
    emu.router.add("GET /v1/events/{id}", retrieve_event)


def _kept(req: Request, event: Obj) -> bool:
    return int(event["created"]) >= req.now - RETENTION


def list_events(req: Request) -> Obj:
    p = req.params
    types = p.str_list("types")
    one = p.str("type")
    if types is not None and one is not None:
        raise invalid("You may only specify one of these parameters: type, types.", param="types")
    if types is not None and len(types) > MAX_TYPES:
        raise invalid(f"You may pass at most {MAX_TYPES} event types in `types`.", param="types")
    wanted = set(types or [])
    created = created_filter(p, "created")
    delivered = p.bool("delivery_success")

    def keep(e: Obj) -> bool:
        if not _kept(req, e) or not created(int(e["created"])):
            return False
        if delivered is not None and (int(e["pending_webhooks"]) == 0) != delivered:
            return False
        if wanted and e["type"] not in wanted:
            return False
        if one is None:
            return True
        if one.endswith("*"):
            return str(e["type"]).startswith(one[:-1])
        return bool(e["type"] == one)

    everything = req.store.newest_first("events")
    return req.store.paginate(
        [e for e in everything if keep(e)], p, "/v1/events", "event", universe=everything
    )


def retrieve_event(req: Request) -> Obj:
    event = req.store.get("events", req.id(), "event")
    if not _kept(req, event):
        raise no_such("event", req.id())
    return req.store.render(event)
