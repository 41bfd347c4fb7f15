"""What the command-line tools print: a progress bar and plain tables (no dependency: the tools run
from the project's own environment)."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TextIO


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns padded to their widest cell, a rule under the header."""
    cells = [[str(cell) for cell in header], *[[str(cell) for cell in row] for row in rows]]
    widths = [max(len(row[column]) for row in cells) for column in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


class Progress:
    """`[#####.....]  340/1000  34%  21.3/s  ETA 31s` on one line of a terminal (redrawn at most ten
    times a second); elsewhere (a log, a pipe) a line at each tenth."""

    def __init__(self, total: int, label: str, stream: TextIO = sys.stderr, width: int = 30) -> None:
        self.total = max(total, 0)
        self.done = 0
        self._label = label
        self._stream = stream
        self._width = width
        self._started = time.monotonic()
        self._drawn = 0.0
        self._tenth = -1
        self._tty = stream.isatty()

    def advance(self, steps: int = 1) -> None:
        self.done += steps
        now = time.monotonic()
        if self._tty:
            if now - self._drawn >= 0.1 or self.done >= self.total:
                self._drawn = now
                self._stream.write("\r" + self.line(now))
                self._stream.flush()
        elif self.total and (tenth := self.done * 10 // self.total) != self._tenth:
            self._tenth = tenth
            self._stream.write(self.line(now) + "\n")

    def close(self) -> None:
        if self._tty:
            self._stream.write("\r" + self.line(time.monotonic()) + "\n")
            self._stream.flush()

    def line(self, now: float) -> str:
        share = self.done / self.total if self.total else 1.0
        filled = int(share * self._width)
        rate = self.done / max(now - self._started, 1e-6)
        left = (self.total - self.done) / rate if rate > 0 else 0.0
        return (
            f"{self._label} [{'#' * filled}{'.' * (self._width - filled)}] {self.done}/{self.total} "
            f"{share:4.0%}  {rate:5.1f}/s  ETA {left:4.0f}s"
        )
