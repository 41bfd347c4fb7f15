"""Invoices (placeholder, filled in below)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .store import Obj

if TYPE_CHECKING:
    from .server import Emulator


def register(emu: Emulator) -> None:
    pass


def payment_succeeded(emu: Emulator, inv: Obj) -> None:
    pass


def payment_failed(emu: Emulator, inv: Obj) -> None:
    pass
