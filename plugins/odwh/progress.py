"""Progress of the long steps (dates checked and loaded, dbt models built, months closed, bench stages).

On a terminal a bar is redrawn in place; in a log (stdout not a terminal, as under Airflow or CI) a line is
written per step, or per tenth of the steps when there are many (a dbt build has a hundred models), so a log
shows the run moving without burying the lines people read.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

BAR_WIDTH = 30
LOG_LINES_PER_STEP = 10  # at most this many lines per long step in a log


class Progress:
    """``total`` steps of the work called ``label``; call :meth:`advance` after each."""

    def __init__(
        self, label: str, total: int, *, stream: TextIO | None = None, log_lines: bool = True
    ) -> None:
        """``log_lines=False``: in a log the caller's own :meth:`note` lines already say each step."""
        self.label, self.total, self.done = label, max(total, 0), 0
        self.log_lines = log_lines
        self.stream = stream or sys.stdout
        self.started = time.monotonic()
        self.on_terminal = _is_terminal(self.stream)
        self._log_every = max(1, -(-self.total // LOG_LINES_PER_STEP))

    def advance(self, note: str = "", steps: int = 1) -> None:
        self.done = min(self.done + steps, self.total) if self.total else self.done + steps
        if self.on_terminal:
            self._write("\r" + self.line(note) + "\033[K", end="\n" if self.done == self.total else "")
        elif self.log_lines and (self.done == self.total or self.done % self._log_every == 0):
            self._write(self.line(note))

    def note(self, text: str) -> None:
        """A line to keep (e.g. a date's outcome): above the bar on a terminal, as it is in a log."""
        if self.on_terminal and 0 < self.done < self.total:
            self._write("\r\033[K" + text + "\n" + self.line(), end="")
        else:
            self._write(text)

    def line(self, note: str = "") -> str:
        elapsed = f"{time.monotonic() - self.started:6.1f} s"
        counts = f"{self.done:>{len(str(self.total))}}/{self.total}"
        if self.on_terminal and self.total:
            filled = BAR_WIDTH * self.done // self.total
            counts = f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {counts}"
        return f"{self.label} {counts} {elapsed}" + (f"  {note}" if note else "")

    def _write(self, text: str, end: str = "\n") -> None:
        self.stream.write(text + end)
        self.stream.flush()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a logging proxy or a closed stream
        return False


class DbtProgress:
    """A dbt callback: a :class:`Progress` over the nodes of one invocation (dbt announces their number)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.progress: Progress | None = None

    def __call__(self, event: Any) -> None:
        name = event.info.name
        if name == "ConcurrencyLine":
            self.progress = Progress(self.label, int(event.data.node_count))
        elif name == "NodeFinished" and self.progress is not None:
            self.progress.advance(event.data.node_info.unique_id.split(".")[-1])
