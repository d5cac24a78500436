"""Progress for long commands: a bar redrawn in place on a terminal, nothing in a log or pipe."""

from __future__ import annotations

import sys
from typing import IO


class Progress:
    """``update(done)`` redraws ``label [#####.....] done/total`` when the stream is a tty."""

    WIDTH = 30

    def __init__(self, label: str, total: int, stream: IO[str] = sys.stderr) -> None:
        self.label, self.total, self.stream = label, max(total, 1), stream
        self.shown = stream.isatty()

    def update(self, done: int) -> None:
        if not self.shown:
            return
        filled = min(self.WIDTH, self.WIDTH * done // self.total)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        self.stream.write(f"\r{self.label} [{bar}] {done:,}/{self.total:,}")
        self.stream.flush()

    def close(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()
