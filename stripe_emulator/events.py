"""``GET /v1/events`` and ``GET /v1/events/{id}`` over the events the resources record.

Events are recorded by :meth:`Store.record_event` as objects change; a webhook feature can
deliver them later from ``store.coll("events")`` (oldest first).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .store import Obj

if TYPE_CHECKING:
    from .server import Emulator, Request


def register(emu: Emulator) -> None:
    emu.router.add(
        "GET /v1/events", list_events, {"limit", "starting_after", "ending_before", "type", "types"}
    )
    emu.router.add("GET /v1/events/{id}", retrieve_event)


def list_events(req: Request) -> Obj:
    p = req.params
    types = set(p.str_list("types") or [])
    one = p.str("type")

    def keep(e: Obj) -> bool:
        if types and e["type"] not in types:
            return False
        if one is None:
            return True
        if one.endswith("*"):
            return str(e["type"]).startswith(one[:-1])
        return bool(e["type"] == one)

    return req.store.paginate(req.store.newest_first("events", keep), p, "/v1/events", "event")


def retrieve_event(req: Request) -> Obj:
    return req.store.render(req.store.get("events", req.id(), "event"))
