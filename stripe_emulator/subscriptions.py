"""Subscriptions (placeholder)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .store import Obj

if TYPE_CHECKING:
    from .server import Emulator


def register(emu: Emulator) -> None:
    pass


def advance_time(emu: Emulator) -> None:
    pass


def cancel_now(emu: Emulator, sub: Obj, reason: str) -> None:
    pass
