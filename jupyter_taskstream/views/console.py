"""A text progress bar on the terminal, for tasks run outside a kernel (scripts, a REPL).

Chosen by `auto` when ``config.console`` is ``"on"``, or ``"auto"`` and stderr is a terminal
outside a kernel. It watches each task like any other view (so it is fed from the pump thread, at
most 10 times a second), keeps one status line for the running tasks, rewritten in place
with a carriage return, and prints a final line per task when it ends. It writes to the
real stderr, never through the capture router, so it is not captured into a task.
"""

from __future__ import annotations

import shutil
from typing import Any, TextIO

from ..protocol import TERMINAL_STATUSES
from .meter import format_snapshot

__all__ = ["ConsoleBar"]

_CLEAR_LINE = "\r\x1b[K"


class ConsoleBar:
    """Renders task snapshots as a line on a terminal stream."""

    def __init__(self, stream: TextIO | None, width: int | None = None):
        self.stream = stream
        self.width = width
        self._running: dict[str, dict[str, Any]] = {}

    def show(self, snapshot: dict[str, Any]) -> None:
        """Take a task's latest snapshot and redraw (a `Task.watch` callback)."""
        if self.stream is None:
            return
        width = self.width or shutil.get_terminal_size((80, 20)).columns - 1
        out = _CLEAR_LINE
        if snapshot["status"] in TERMINAL_STATUSES:
            self._running.pop(snapshot["id"], None)
            out += format_snapshot(snapshot, width) + "\n"
        else:
            self._running[snapshot["id"]] = snapshot
        if self._running:
            share = max(width // len(self._running), 20)
            out += " | ".join(format_snapshot(s, share) for s in self._running.values())[:width]
        self.stream.write(out)
        self.stream.flush()
