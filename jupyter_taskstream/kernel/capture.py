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

A write in a task only appends the text to the task's `PendingOutput` (a print() is six
writes, so this path is kept to a context lookup and a list append, with no lock). The
task splits what piled up into lines in batches: when its publisher's sender asks (the
first write after a batch pokes it, so a lone line still leaves at once), at every pass of
the runtime's view pump (10/s, which bounds what a task can pile up even when the hub is
slow), when a snapshot needs it and when the task ends. `LineBuffer` turns text into
complete lines the way a terminal shows them: a carriage return rewrites the pending line,
so a tqdm text bar stays one line.
"""

from __future__ import annotations

import logging
import sys
import threading
from itertools import groupby
from typing import Any, Callable, TextIO

from .context import current_task

__all__ = [
    "LineBuffer", "PendingOutput", "StreamRouter", "echo", "install", "no_run_over", "split_runs", "visible_text",
]  # fmt: skip

STREAMS = ("stdout", "stderr")
#: A partial line longer than this is emitted as a line of its own, so a writer that never
#: sends a newline cannot grow memory without bound.
MAX_PARTIAL_CHARS = 64 * 1024

_install_lock = threading.Lock()
#: The installed routers by stream name, for output written after its task ended.
_routers: dict[str, StreamRouter] = {}


def visible_text(line: str) -> str:
    """What a terminal shows of one line: the text after its last carriage return."""
    stripped = line.rstrip("\r")
    cut = stripped.rfind("\r")
    return stripped if cut < 0 else stripped[cut + 1 :]


def no_run_over(text: str, limit: int) -> bool:
    """True if ``text`` has no run of more than ``limit`` characters without a newline.

    Looks for a newline in each aligned window of ``limit // 2`` characters: a few C-level
    searches per 64 KiB instead of measuring every line. It may answer False for a run of
    half the limit or more; callers then measure the lines.
    """
    half = max(limit // 2, 1)
    for start in range(0, len(text) - half + 1, half):
        if text.find("\n", start, start + half) < 0:
            return False
    return True


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
        # A batch of many lines with no carriage return (the usual case) needs no rewrite.
        if "\r" in text or "\r" in parts[0]:
            lines = [visible_text(p) if "\r" in p else p for p in parts]
        else:
            lines = parts
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


class PendingOutput:
    """What a task's code wrote and the task has not split into lines yet, in write order.

    ``chunks`` holds stdout text as ``str`` and stderr text as a 1-tuple ``(str,)``: one list
    keeps the two streams' order exactly without a lock, and print()'s stream costs nothing
    to tag. Writers append without a lock (``list.append`` is atomic); readers take chunks
    under ``lock`` with `take`, which removes only what it read.
    """

    __slots__ = ("chunks", "open", "waiting", "lock", "notify")

    def __init__(self, lock: Any, notify: Callable[[], None]):
        self.chunks: list[str | tuple[str]] = []
        #: False once the task ended: a write that finds it so takes its text back (`late`).
        self.open = True
        #: True once a write called `notify` since the last `take`: one call per batch.
        self.waiting = False
        self.lock = lock
        #: Someone should come and take the chunks (the first write after a `take`).
        self.notify = notify

    def take(self) -> list[str | tuple[str]]:
        """Remove and return the chunks written so far (``lock`` held)."""
        # Cleared before reading: a write after this point notifies again, so none is stranded.
        self.waiting = False
        chunks = self.chunks
        n = len(chunks)
        taken = chunks[:n]
        del chunks[:n]  # not clear(): a chunk appended meanwhile stays for the next taker
        return taken

    def late(self, router: StreamRouter) -> None:
        """After the end, send chunks nobody took to the streams they would have gone to."""
        with self.lock:
            taken = self.take()
        for stream, text in split_runs(taken):
            through = router if stream == router.name else _routers.get(stream)
            if through is not None and through.target is not None:
                through.target.write(text)


def split_runs(chunks: list[str | tuple[str]]) -> list[tuple[str, str]]:
    """``(stream, text)`` for each run of consecutive chunks of one stream, in order."""
    if not chunks:
        return []
    try:
        return [("stdout", "".join(chunks))]  # no stderr among them: the usual print() case
    except TypeError:
        pass
    return [
        (stream, "".join(c if stream == "stdout" else c[0] for c in run))  # type: ignore[misc]
        for stream, run in groupby(chunks, key=lambda c: "stdout" if type(c) is str else "stderr")
    ]


class StreamRouter:
    """Stands in for ``sys.stdout`` or ``sys.stderr``: task output to the task, the rest through."""

    def __init__(self, name: str, target: TextIO | None):
        self.name = name
        #: The stream that was installed before; output outside tasks goes there.
        self.target = target
        # An instance attribute, not a method: see `_router_write`.
        self.write = _router_write(self, name == "stdout")

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


def _router_write(router: StreamRouter, plain: bool) -> Callable[[str], int]:
    """The ``write`` of one router: a closure, because it runs several times per print().

    The router defines ``__getattr__`` (to pass everything else to the original stream),
    which keeps CPython from specializing attribute lookups on it; closure variables cost
    nothing. In a task, the usual write is a type check, one list append and one test of
    two flags (see `PendingOutput`); stdout and stderr get a function each, so neither
    tests which one it is.
    """
    get_task = current_task.get

    def settle(out: PendingOutput, text: str) -> int:
        # Checked after the append: a task that ends meanwhile either took the chunk into
        # its log or left it for `late`, never neither.
        if not out.open:
            out.late(router)
        elif not out.waiting:
            out.waiting = True
            out.notify()
        return len(text)

    def write_stdout(text: str) -> int:
        """Write ``text`` to the current task's log, or to the original stream outside tasks."""
        task = get_task()
        if task is None:
            target = router.target
            if target is None:  # pythonw and friends have no stdout
                return len(text)
            return target.write(text)
        if type(text) is not str and not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        out = task.pending_output
        out.chunks.append(text)
        if out.waiting and out.open:
            return len(text)
        return settle(out, text)

    def write_stderr(text: str) -> int:
        """Write ``text`` to the current task's log, or to the original stream outside tasks."""
        task = get_task()
        if task is None:
            target = router.target
            if target is None:
                return len(text)
            return target.write(text)
        if type(text) is not str and not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        out = task.pending_output
        out.chunks.append((text,))
        if out.waiting and out.open:
            return len(text)
        return settle(out, text)

    return write_stdout if plain else write_stderr


def echo(stream: str, lines: list[str]) -> None:
    """Write a task's ``lines`` to the stream they were captured from, as they would have gone."""
    router = _routers.get(stream)
    target = router.target if router is not None else None
    if target is not None:
        target.write("\n".join(lines) + "\n")


def install() -> None:
    """Put a `StreamRouter` in front of ``sys.stdout`` and ``sys.stderr`` unless one is there."""
    with _install_lock:
        for name in STREAMS:
            current = getattr(sys, name)
            if isinstance(current, StreamRouter):
                continue
            router = StreamRouter(name, current)
            setattr(sys, name, router)
            _routers[name] = router
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
