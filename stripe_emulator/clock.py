"""The emulator clock: real time until set, then frozen at the set instant.

``POST /_emulator/clock {"now": t}`` or ``{"advance_seconds": n}`` freezes the clock so
time-based figures (prorations, due dates) are reproducible; ``{"frozen": false}``
lets it tick again from where it is. Reset returns to real time.
"""

from __future__ import annotations

import threading
import time


class Clock:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._frozen_at: float | None = None
        self._offset = 0.0

    def now(self) -> int:
        return int(self.now_float())

    def now_float(self) -> float:
        with self._lock:
            if self._frozen_at is not None:
                return self._frozen_at
            return time.time() + self._offset

    @property
    def frozen(self) -> bool:
        return self._frozen_at is not None

    def set(self, now: float) -> None:
        with self._lock:
            self._frozen_at = float(now)

    def advance(self, seconds: float) -> None:
        current = self.now_float()
        with self._lock:
            self._frozen_at = current + seconds

    def unfreeze(self) -> None:
        with self._lock:
            if self._frozen_at is not None:
                self._offset = self._frozen_at - time.time()
                self._frozen_at = None

    def reset(self) -> None:
        with self._lock:
            self._frozen_at = None
            self._offset = 0.0
