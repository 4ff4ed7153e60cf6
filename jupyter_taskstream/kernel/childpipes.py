"""Output of child processes a task starts: pipes whose reader threads feed the task's log.

A child started inside a task with no explicit ``stdout``/``stderr`` (``subprocess.Popen`` and
everything built on it, ``os.system``; see `integrations.processes`) gets one `ChildPipe` per
stream instead of the kernel's file descriptors. A reader thread per pipe decodes what the
child writes (UTF-8, undecodable bytes replaced), splits it into lines as a terminal shows
them (`capture.LineBuffer`) and adds whole lines to the task's log, stdout and stderr apart,
so a child's line is never cut by another writer. The pipe is a pseudo-terminal when the
descriptor the child would have inherited is one, so ``isatty()`` answers as without the
extension; its output post-processing is off, so lines end in ``\\n`` as in a pipe.

Tags: while a task has one child process writing, its lines are shown as written; once
another starts writing while it runs (two Popen at the same time, or pool workers: see
`workerlink`), each line of both starts with ``[pid N] `` from then on. `deliver` is also what `workerlink` uses.

Lines that arrive after their task ended (a child left running) go to the streams output
outside tasks goes to, tagged, like a thread's late writes (see `capture`). `settle` lets a
finishing task take what its children already wrote before it closes its log.
"""

from __future__ import annotations

import codecs
import contextvars
import os
import sys
import threading
from typing import TYPE_CHECKING, Any, Callable

from .lines import LineBuffer
from .diagnostics import report_once

if TYPE_CHECKING:
    from .taskcore import TaskCore

__all__ = ["TAG", "ChildPipe", "add_settler", "deliver", "open_pipes", "running_children", "settle"]

#: How a line is tagged with the process that wrote it, where several write at once.
TAG = "[pid {pid}] "
READ_SIZE = 64 * 1024

_lock = threading.Lock()
#: Task id -> the sources (`ChildPipe` groups, worker connections) writing into it right now.
_running: dict[str, list] = {}
#: Called by `settle` with a finishing task: they deliver what is already readable.
_settlers: list[Callable[[TaskCore], None]] = []


def running_children(task: TaskCore) -> int:
    """How many child processes of ``task`` have output being read right now."""
    return len(_running.get(task.id, ()))


def child_started(task: TaskCore, source: Any) -> None:
    """``source`` (with a ``tagged`` flag) writes into ``task`` now; with another, both are tagged."""
    with _lock:
        sources = _running.setdefault(task.id, [])
        sources.append(source)
        if len(sources) > 1:
            for other in sources:
                other.tagged = True


def child_ended(task: TaskCore, source: Any) -> None:
    """``source`` stopped writing into ``task``."""
    with _lock:
        sources = _running.get(task.id, [])
        if source in sources:
            sources.remove(source)
        if not sources:
            _running.pop(task.id, None)


def deliver(task: TaskCore, stream: str, lines: list[str], tag: str = "") -> None:
    """Add whole lines of a child to ``task``'s log; after its end, to the streams outside tasks."""
    if tag:
        lines = [tag + line for line in lines]
    if task.add_lines(stream, lines):
        return
    original = getattr(sys, stream, None)
    target = getattr(original, "target", original)  # the capture router's stream, if installed
    if target is not None:
        try:
            target.write("".join(line + "\n" for line in lines))
        except Exception:
            pass  # a closed stream after the kernel shut down: nothing left to show it


def add_settler(settler: Callable[[TaskCore], None]) -> None:
    """Have `settle` call ``settler(task)`` (idempotent)."""
    if settler not in _settlers:
        _settlers.append(settler)


def settle(task: TaskCore) -> None:
    """Before ``task`` closes its log: deliver what its children have written so far."""
    for settler in tuple(_settlers):
        try:
            settler(task)
        except Exception as e:  # a broken worker connection must not keep the task from ending
            report_once(("settle", type(e)), f"could not collect child processes' output: {e!r}")


class ChildPipe:
    """One stream of one child process: the end the child writes to, and the reader that feeds the task.

    Parameters
    ----------
    task : TaskCore
        Where the lines go.
    stream : str
        ``"stdout"`` or ``"stderr"``.
    inherited_fd : int
        The descriptor the child would have inherited (1 or 2): a terminal there makes
        this pipe a pseudo-terminal.
    """

    def __init__(self, task: TaskCore, stream: str, inherited_fd: int):
        self.task = task
        #: The pipes of one child, shared: the child counts as running until the last closes.
        self.siblings: list[ChildPipe] = [self]
        #: Several children write into the task at once: lines carry `TAG` (on the first sibling).
        self.tagged = False
        #: True until the reader saw the child close it (or the child never started).
        self.open = True
        self.stream = stream
        self.pid: int | None = None
        self.read_fd, self.write_fd = _open_channel(inherited_fd)
        self.thread: threading.Thread | None = None

    def start(self, pid: int) -> None:
        """The child ``pid`` holds the write end now: close ours, read until it closes."""
        self.pid = pid
        self._close_write_end()
        if self.siblings[0] is self:
            child_started(self.task, self)
        thread = threading.Thread(target=self._read, name=f"taskstream-child-{pid}-{self.stream}", daemon=True)
        # An empty context: the reader is not part of the task (its writes would loop back).
        contextvars.Context().run(thread.start)
        self.thread = thread

    def abandon(self) -> None:
        """The child never started: close both ends."""
        self.open = False
        self._close_write_end()
        if self.read_fd is not None:
            os.close(self.read_fd)
            self.read_fd = None

    def join(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the reader to deliver the child's last line."""
        if self.thread is not None:
            self.thread.join(timeout)

    def _close_write_end(self) -> None:
        if self.write_fd is not None:
            os.close(self.write_fd)
            self.write_fd = None

    def _read(self) -> None:
        fd = self.read_fd
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        buffer = LineBuffer()
        try:
            while True:
                try:
                    data = os.read(fd, READ_SIZE)
                except OSError:  # EIO: a pseudo-terminal whose child side was closed
                    data = b""
                if not data:
                    break
                lines = buffer.feed(decoder.decode(data))
                if lines:
                    self._deliver(lines)
            lines = buffer.feed(decoder.decode(b"", final=True))
            last = buffer.flush()
            if last is not None:
                lines.append(last)
            if lines:
                self._deliver(lines)
        finally:
            os.close(fd)
            self.read_fd = None
            with _lock:
                self.open = False
                last = not any(p.open for p in self.siblings)
            if last:
                child_ended(self.task, self.siblings[0])

    def _deliver(self, lines: list[str]) -> None:
        tag = TAG.format(pid=self.pid) if self.siblings[0].tagged else ""
        deliver(self.task, self.stream, lines, tag)


def open_pipes(task: TaskCore, stdout: bool, stderr: bool) -> dict[str, ChildPipe]:
    """`ChildPipe` for each stream asked for, by name."""
    pipes: dict[str, ChildPipe] = {}
    try:
        if stdout:
            pipes["stdout"] = ChildPipe(task, "stdout", 1)
        if stderr:
            pipes["stderr"] = ChildPipe(task, "stderr", 2)
    except BaseException:
        for pipe in pipes.values():
            pipe.abandon()
        raise
    siblings = list(pipes.values())
    for pipe in siblings:
        pipe.siblings = siblings
    return pipes


def _open_channel(inherited_fd: int) -> tuple[int, int]:
    """``(read_fd, write_fd)``: a pseudo-terminal if ``inherited_fd`` is a terminal, else a pipe."""
    try:
        tty = os.isatty(inherited_fd)
    except OSError:
        tty = False
    if tty:
        try:
            import pty
            import termios

            parent, child = pty.openpty()
            attrs = termios.tcgetattr(child)
            attrs[1] &= ~termios.OPOST  # no "\n" -> "\r\n": lines as a pipe would carry them
            termios.tcsetattr(child, termios.TCSANOW, attrs)
            return parent, child
        except (ImportError, OSError):
            pass
    return os.pipe()
