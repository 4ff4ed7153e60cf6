"""Captured output: ``sys.stdout``/``sys.stderr`` routed by task context, split into lines.

Once the runtime is first used, `install` puts a `StreamRouter` in front of each stream and
leaves it there for good. A write from code whose context has a running task (see
`context.current_task`) goes to that task's log; any other write goes to the stream that
was there before, unchanged. Keeping the router installed permanently matters because a
`logging.StreamHandler` stores the stream object it was given: handlers created after
`install` hold the router and are routed too. Handlers created *before* whose stream is the
replaced ``sys.stdout``/``sys.stderr`` are re-pointed at the router by `install`; handlers
holding any other object (e.g. ``sys.__stderr__``, a file) are left alone and not captured.
Output written to file descriptors directly (C extensions, subprocesses) is not captured.

`LineBuffer` turns writes into complete lines the way a terminal shows them: a carriage
return rewrites the pending line, so a tqdm text bar stays one line.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any, TextIO

from .context import current_task

__all__ = ["LineBuffer", "StreamRouter", "install", "visible_text"]

STREAMS = ("stdout", "stderr")
#: A partial line longer than this is emitted as a line of its own, so a writer that never
#: sends a newline cannot grow memory without bound.
MAX_PARTIAL_CHARS = 64 * 1024

_install_lock = threading.Lock()


def visible_text(line: str) -> str:
    """What a terminal shows of one line: the text after its last carriage return."""
    stripped = line.rstrip("\r")
    cut = stripped.rfind("\r")
    return stripped if cut < 0 else stripped[cut + 1 :]


class LineBuffer:
    """The pending partial line of one stream of one task."""

    __slots__ = ("partial", "cut")

    def __init__(self) -> None:
        self.partial = ""
        #: The pending line was just emitted for being too long; its newline ends nothing new.
        self.cut = False

    def feed(self, text: str) -> list[str]:
        """Add written text; return the lines it completed (without their newline)."""
        if "\n" not in text:
            pending = self.partial + text
            if "\r" in pending:
                # Keep trailing CRs: "abc\r" + "\n" is the line "abc", "abc\r" + "d" is "d".
                trailing = len(pending) - len(pending.rstrip("\r"))
                pending = visible_text(pending) + "\r" * trailing
            if len(pending) > MAX_PARTIAL_CHARS:
                self.partial, self.cut = "", True
                return [pending]
            self.partial, self.cut = pending, False
            return []
        parts = text.split("\n")
        parts[0] = self.partial + parts[0]
        self.partial = ""
        tail = parts.pop()
        lines = [visible_text(p) if "\r" in p else p for p in parts]
        if self.cut and not lines[0]:
            del lines[0]
        self.cut = False
        if tail:
            lines.extend(self.feed(tail))
        return lines

    def flush(self) -> str | None:
        """The pending partial line as it shows, and forget it; None when there is none."""
        if not self.partial:
            return None
        line, self.partial = visible_text(self.partial), ""
        return line

    def peek(self) -> str:
        """The pending partial line as a terminal would show it now."""
        return visible_text(self.partial) if self.partial else ""


class StreamRouter:
    """Stands in for ``sys.stdout`` or ``sys.stderr``: task output to the task, the rest through."""

    def __init__(self, name: str, target: TextIO | None):
        self.name = name
        #: The stream that was installed before; output outside tasks goes there.
        self.target = target

    def write(self, text: str) -> int:
        """Write ``text`` to the current task's log, or to the original stream outside tasks."""
        task = current_task.get()
        if task is not None and task._capture(self.name, text):
            return len(text)
        if self.target is None:  # pythonw and friends have no stdout
            return len(text)
        return self.target.write(text)

    def writelines(self, lines: Any) -> None:
        """Write each string of ``lines``."""
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Flush the original stream; captured lines need no flushing."""
        if self.target is not None:
            self.target.flush()

    def __getattr__(self, name: str) -> Any:
        # Everything else (encoding, isatty, fileno, ipykernel's set_parent...) is the original's.
        if self.target is None:
            raise AttributeError(name)
        return getattr(self.target, name)

    def __repr__(self) -> str:
        return f"<StreamRouter {self.name} -> {self.target!r}>"


def install() -> None:
    """Put a `StreamRouter` in front of ``sys.stdout`` and ``sys.stderr`` unless one is there."""
    with _install_lock:
        for name in STREAMS:
            current = getattr(sys, name)
            if isinstance(current, StreamRouter):
                continue
            router = StreamRouter(name, current)
            setattr(sys, name, router)
            if current is not None:
                _repoint_handlers(current, router)


def _repoint_handlers(old: Any, new: StreamRouter) -> None:
    """Point logging handlers that hold the replaced stream object at its router."""
    loggers = [logging.getLogger()]
    loggers += [lg for lg in list(logging.Logger.manager.loggerDict.values()) if isinstance(lg, logging.Logger)]
    for logger in loggers:
        for handler in list(logger.handlers):
            if isinstance(handler, logging.StreamHandler) and handler.stream is old:
                handler.setStream(new)  # type: ignore[arg-type]
