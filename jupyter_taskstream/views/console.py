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
from .meter import format_snapshot, format_snapshot_lines

__all__ = ["ConsoleBar"]

_CLEAR_LINE = "\r\x1b[K"
_UP = "\x1b[A"


class ConsoleBar:
    """Renders task snapshots as a line on a terminal stream."""

    def __init__(self, stream: TextIO | None, width: int | None = None):
        self.stream = stream
        self.width = width
        self._running: dict[str, dict[str, Any]] = {}
        #: Lines below the status line drawn last time (child bars), cleared before a redraw.
        self._extra = 0

    def show(self, snapshot: dict[str, Any]) -> None:
        """Take a task's latest snapshot and redraw (a `Task.watch` callback)."""
        if self.stream is None:
            return
        width = self.width or shutil.get_terminal_size((80, 20)).columns - 1
        out = (_CLEAR_LINE + _UP) * self._extra + _CLEAR_LINE
        if snapshot["status"] in TERMINAL_STATUSES:
            self._running.pop(snapshot["id"], None)
            out += "\n".join(format_snapshot_lines(snapshot, width)) + "\n"
        else:
            self._running[snapshot["id"]] = snapshot
        self._extra = 0
        if self._running:
            share = max(width // len(self._running), 20)
            out += " | ".join(format_snapshot(s, share) for s in self._running.values())[:width]
            # Child bars as extra lines under the status line (the first task that has any).
            children = next((format_snapshot_lines(s, width)[1:] for s in self._running.values() if s.get("bars")), [])
            if children:
                out += "".join("\n" + _CLEAR_LINE + line for line in children)
                self._extra = len(children)
        self.stream.write(out)
        self.stream.flush()
