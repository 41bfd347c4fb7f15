"""Shared in-memory state: collections of Stripe objects, ids, events, list paging, expand.

Objects are stored as plain dicts in their API shape, with references held as ids.
Each resource module registers a *kind* (object name, id prefix, collection, renderer);
the renderer turns a stored dict into the response shape (e.g. a subscription's items
with their full prices). Everything runs under one re-entrant lock held by the server
for the whole of an endpoint call.
"""

from __future__ import annotations

import bisect
import copy
import secrets
import string
import threading
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass
from typing import Any

from .clock import Clock
from .errors import invalid, no_such
from .params import Params

Obj = dict[str, Any]
Renderer = Callable[[Obj], Obj]

API_VERSION = "2026-10-28.endive"
_ALPHABET = string.ascii_letters + string.digits


def clone(value: Any) -> Any:
    """A deep copy of an API-shaped value (dicts, lists and immutable scalars), several times faster
    than ``copy.deepcopy``; anything else is deep-copied."""
    if isinstance(value, dict):
        return {k: clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clone(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return copy.deepcopy(value)


def id_prefix(obj_id: str, known: Container[str]) -> str | None:
    """The longest of the ``known`` prefixes that ``obj_id`` starts with, as ``prefix_...``
    (``sub_sched_X`` is a schedule's, ``sub_X`` a subscription's)."""
    parts = obj_id.split("_")
    for cut in range(len(parts) - 1, 0, -1):
        candidate = "_".join(parts[:cut])
        if candidate in known:
            return candidate
    return None


class Collection(dict[str, Obj]):
    """A collection of objects by id that counts its changes of membership (``version``), so its
    indexes (:meth:`grouped`, e.g. subscription items by subscription) can tell when to rebuild.
    Objects mutated in place do not bump it; adding, replacing or removing an entry does."""

    version = 0
    _groups: dict[str, tuple[int, dict[str, list[str]]]] | None = None

    def _bump(self) -> None:
        self.version += 1

    def grouped(self, field: str, value: str) -> list[Obj]:
        """The live (not deleted) objects whose ``field`` is ``value``, in insertion order, from an
        index by ``field`` rebuilt only when the membership changed."""
        if self._groups is None:
            self._groups = {}
        cached = self._groups.get(field)
        if cached is None or cached[0] != self.version:
            by_value: dict[str, list[str]] = {}
            for obj_id, obj in self.items():
                if not obj.get("deleted"):
                    by_value.setdefault(obj[field], []).append(obj_id)
            cached = (self.version, by_value)
            self._groups[field] = cached
        return [self[obj_id] for obj_id in cached[1].get(value, ())]

    def __setitem__(self, key: str, value: Obj) -> None:
        super().__setitem__(key, value)
        self._bump()

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._bump()

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update(*args, **kwargs)
        self._bump()

    def clear(self) -> None:
        super().clear()
        self._bump()

    def pop(self, key: str, *default: Any) -> Any:
        self._bump()
        return super().pop(key, *default)

    def setdefault(self, key: str, default: Any = None) -> Any:
        self._bump()
        return super().setdefault(key, default)


EventHook = Callable[[Obj], None]


@dataclass
class Kind:
    object: str  # Stripe's "object" value, e.g. "customer"
    prefix: str  # id prefix, e.g. "cus"
    collection: str
    renderer: Renderer | None = None


class Store:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self.kinds: dict[str, Kind] = {}
        self.kinds_by_prefix: dict[str, Kind] = {}
        self.collections: dict[str, Collection] = {}
        self.counters: dict[str, int] = {}
        # Set by the server for the request being executed (events record it).
        self.current_request: dict[str, str | None] = {"id": None, "idempotency_key": None}
        # Free-form state for extensions (e.g. webhook endpoints, meters).
        self.extra: dict[str, Any] = {}
        # Called with each event as it is recorded (the due-time index, webhook delivery state).
        self.event_hooks: list[EventHook] = []
        self.register(Kind("event", "evt", "events", None))

    # registry -------------------------------------------------------------
    def register(self, kind: Kind) -> None:
        self.kinds[kind.object] = kind
        self.kinds_by_prefix[kind.prefix] = kind
        self.collections.setdefault(kind.collection, Collection())

    def kind_for_id(self, obj_id: str) -> Kind | None:
        prefix = id_prefix(obj_id, self.kinds_by_prefix)
        return None if prefix is None else self.kinds_by_prefix[prefix]

    def reset(self) -> None:
        for coll in self.collections.values():
            coll.clear()
        self.counters.clear()
        self.extra.clear()

    # objects --------------------------------------------------------------
    def new_id(self, prefix: str) -> str:
        return f"{prefix}_{''.join(secrets.choice(_ALPHABET) for _ in range(24))}"

    def next_counter(self, name: str) -> int:
        self.counters[name] = self.counters.get(name, 0) + 1
        return self.counters[name]

    def coll(self, name: str) -> Collection:
        return self.collections[name]

    def insert(self, collection: str, obj: Obj) -> Obj:
        self.collections[collection][obj["id"]] = obj
        return obj

    def get(self, collection: str, obj_id: str, noun: str, param: str = "id") -> Obj:
        obj = self.collections[collection].get(obj_id)
        if obj is None or obj.get("deleted"):
            raise no_such(noun, obj_id, param)
        return obj

    def lookup(self, obj_id: str) -> Obj | None:
        kind = self.kind_for_id(obj_id)
        if kind is None:
            return None
        return self.collections[kind.collection].get(obj_id)

    def render(self, obj: Obj) -> Obj:
        kind = self.kinds.get(obj.get("object", ""))
        if obj.get("deleted") or kind is None or kind.renderer is None:
            return clone(obj)  # type: ignore[no-any-return]
        return kind.renderer(obj)

    # events ---------------------------------------------------------------
    def record_event(self, type: str, obj: Obj, previous_attributes: Obj | None = None) -> Obj:
        """Record an event with a snapshot of ``obj`` (rendered now)."""
        data: Obj = {"object": self.render(obj)}
        if previous_attributes:
            data["previous_attributes"] = clone(previous_attributes)
        event: Obj = {
            "id": self.new_id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": self.clock.now(),
            "data": data,
            "livemode": False,
            "pending_webhooks": 0,
            "request": dict(self.current_request),
            "type": type,
        }
        self.insert("events", event)
        for hook in self.event_hooks:
            hook(event)
        return event

    # lists ----------------------------------------------------------------
    def newest_first(self, collection: str, keep: Callable[[Obj], bool] | None = None) -> list[Obj]:
        objs = [o for o in reversed(self.collections[collection].values()) if not o.get("deleted")]
        if keep is not None:
            objs = [o for o in objs if keep(o)]
        return objs

    def paginate(
        self, objs: list[Obj], params: Params, url: str, noun: str, universe: list[Obj] | None = None
    ) -> Obj:
        """Stripe cursor paging over ``objs`` (already newest first). With ``universe`` (every object
        of the list, unfiltered, in the same order) a cursor is a position in it, so it may name an
        object the filters leave out."""
        limit = params.int("limit")
        if limit is None:
            limit = 10
        if not 1 <= limit <= 100:
            raise invalid(
                "This value must be greater than or equal to 1 and less than or equal to 100.", param="limit"
            )
        after = params.str("starting_after")
        before = params.str("ending_before")
        ids = [o["id"] for o in objs]
        positions = {o["id"]: i for i, o in enumerate(universe if universe is not None else objs)}
        ranks = [positions[i] for i in ids]
        if after is not None:
            if after not in positions:
                raise no_such(noun, after, "starting_after")
            start = bisect.bisect_right(ranks, positions[after])
            page = objs[start : start + limit]
            has_more = start + limit < len(objs)
        elif before is not None:
            if before not in positions:
                raise no_such(noun, before, "ending_before")
            end = bisect.bisect_left(ranks, positions[before])
            page = objs[max(0, end - limit) : end]
            has_more = end - limit > 0
        else:
            page = objs[:limit]
            has_more = len(objs) > limit
        return {"object": "list", "data": [self.render(o) for o in page], "has_more": has_more, "url": url}

    # expand ---------------------------------------------------------------
    def expand(self, body: Obj, paths: Iterable[str]) -> Obj:
        for path in paths:
            if len(path.split(".")) > 4:
                raise invalid(
                    f"You cannot expand more than 4 levels of a property. Property: {path}", param="expand"
                )
            if not self._expand_path(body, path.split(".")):
                raise invalid(f"This property cannot be expanded ({path}).", param="expand")
        return body

    def _expand_path(self, node: Any, parts: list[str]) -> bool:
        if isinstance(node, list):
            return all(self._expand_path(n, parts) for n in node) if node else True
        if not isinstance(node, dict):
            return False
        head, rest = parts[0], parts[1:]
        if head not in node:
            return False
        value = node[head]
        if rest:
            if value is None:
                return True
            return self._expand_path(value, rest)
        if value is None or isinstance(value, dict):
            return True  # null or already an object
        if isinstance(value, str):
            target = self.lookup(value)
            if target is None:
                return False
            node[head] = self.render(target)
            return True
        return False
