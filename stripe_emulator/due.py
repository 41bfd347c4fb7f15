"""Work that falls due on the emulator clock, indexed by when it falls due.

Resource modules register a *source* per kind of object that has time-driven work (subscriptions:
renewals, trial ends...; invoices: payment retries; subscription schedules: phase transitions;
checkout sessions: expiry): how to tell when an object is next due and what to do then. The index
keeps, per object, its next due time in a heap, so a request costs in proportion to the work that
is due and to the objects that changed, not to the number of objects.

An object's due time is recomputed when it may have changed: whenever an event is recorded about it
(every change the API can see records one), after its own due work ran, or when a module marks it
explicitly (:meth:`DueIndex.mark`). Moving the clock through the admin API rebuilds the whole index
first, a safety net that costs one pass over the objects per clock move.

Objects due at the same second run in source rank order (a schedule's phase change before the
subscription's renewal at the same instant, so the renewal bills the new phase's prices), then in
the order they were indexed.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .store import Obj, id_prefix

if TYPE_CHECKING:
    from .server import Emulator

NextDue = Callable[["Emulator", Obj], "tuple[int, str] | None"]
ApplyDue = Callable[["Emulator", Obj, int, str], None]
MAX_STEPS = 100_000  # a bound per run, in case a source keeps an object due without moving on


@dataclass(frozen=True)
class Source:
    prefix: str  # the id prefix of its objects, e.g. "sub"
    collection: str
    next_due: NextDue  # (when, what) or None
    apply: ApplyDue  # do ``what`` (due at ``when``) to the object
    rank: int  # order among sources due at the same second (lower first)


class DueIndex:
    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.sources: dict[str, Source] = {}
        self._heap: list[tuple[int, int, int, str]] = []  # (when, rank, seq, id)
        self._due: dict[str, tuple[int, str, int]] = {}  # id -> (when, what, seq of its heap entry)
        self._dirty: set[str] = set()
        self._seq = itertools.count()
        self._stale = True
        self.refreshes = 0  # due times computed so far (tests and benches check the cost stays proportional)

    def add_source(self, prefix: str, collection: str, next_due: NextDue, apply: ApplyDue, rank: int) -> None:
        self.sources[prefix] = Source(prefix, collection, next_due, apply, rank)

    # what changed ---------------------------------------------------------------------------
    def mark(self, obj_id: str) -> None:
        """``obj_id`` may have changed: recompute its due time before the next run."""
        if id_prefix(obj_id, self.sources) is not None:
            self._dirty.add(obj_id)

    def on_event(self, event: Obj) -> None:
        obj = event["data"]["object"]
        if isinstance(obj, dict) and isinstance(obj.get("id"), str):
            self.mark(obj["id"])

    def rebuild(self) -> None:
        """Recompute every object's due time before the next run (after the clock moved)."""
        self._stale = True

    def reset(self) -> None:
        self._heap.clear()
        self._due.clear()
        self._dirty.clear()
        self._stale = True

    # running --------------------------------------------------------------------------------
    def _source(self, obj_id: str) -> Source:
        prefix = id_prefix(obj_id, self.sources)
        assert prefix is not None
        return self.sources[prefix]

    def _refresh(self, obj_id: str) -> None:
        self.refreshes += 1
        source = self._source(obj_id)
        obj = self.emu.store.coll(source.collection).get(obj_id)
        nxt = None if obj is None or obj.get("deleted") else source.next_due(self.emu, obj)
        if nxt is None:
            self._due.pop(obj_id, None)
            return
        current = self._due.get(obj_id)
        if current is not None and current[:2] == nxt:
            return
        seq = next(self._seq)
        self._due[obj_id] = (nxt[0], nxt[1], seq)
        heapq.heappush(self._heap, (nxt[0], source.rank, seq, obj_id))

    def _refresh_all(self) -> None:
        self._heap.clear()
        self._due.clear()
        self._dirty.clear()
        for source in sorted(self.sources.values(), key=lambda s: s.rank):
            for obj_id in list(self.emu.store.coll(source.collection)):
                self._refresh(obj_id)
        self._stale = False

    def _refresh_dirty(self) -> None:
        while self._dirty:
            self._refresh(self._dirty.pop())

    def peek(self) -> tuple[int, str, str] | None:
        """The earliest due work: (when, what, object id)."""
        self._refresh_dirty()
        while self._heap:
            when, _, seq, obj_id = self._heap[0]
            current = self._due.get(obj_id)
            if current is not None and current[2] == seq:
                return when, current[1], obj_id
            heapq.heappop(self._heap)  # superseded by a later entry, or no longer due
        return None

    def run(self) -> None:
        """Apply, in time order, everything that fell due up to the emulator's now."""
        if self._stale:
            self._refresh_all()
        now = self.emu.clock.now()
        for _ in range(MAX_STEPS):
            head = self.peek()
            if head is None or head[0] > now:
                return
            when, what, obj_id = head
            heapq.heappop(self._heap)
            del self._due[obj_id]
            self._dirty.add(obj_id)  # recomputed after its work, whether or not that recorded events
            source = self._source(obj_id)
            source.apply(self.emu, self.emu.store.coll(source.collection)[obj_id], when, what)
