"""One task's captured output: what its code wrote, split into lines, and the tail kept locally.

`capture` appends raw writes to the task's `PendingOutput` without a lock; `TaskLog` turns
them into lines in batches (see `capture` for who asks when), keeps the latest ``keep``
lines for snapshots, and hands every batch of new lines to a sink (the task's `Reporter`,
which queues them for the hub). Every method runs with the owning task's lock held, so the
local log and the hub get lines in one order.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable

from ..protocol import JoinedLines
from ..protocol.batchbody import Lines
from .capture import STREAMS, PendingOutput
from .lines import MAX_PARTIAL_CHARS, LineBuffer, no_run_over

__all__ = ["TaskLog"]


class TaskLog:
    """Captured lines of one task: splitting, the local tail, and the count for views.

    Parameters
    ----------
    lock : lock
        The owning task's lock; held by every caller of the methods below.
    notify : callable
        Called (without blocking) by the first write after a split: someone should split.
    sink : callable
        ``sink(stream, lines)`` for every batch of new lines: a list, or `JoinedLines` for a
        run of plain ones (what print() writes), which no one splits unless they must.
    """

    __slots__ = ("pending", "keep", "count", "echo", "_sink", "_log", "_held", "_buffers", "_last_stream")

    def __init__(self, lock: Any, notify: Callable[[], None], sink: Callable[[str, list[str]], None]):
        #: The raw writes not split yet; `capture` appends to it directly.
        self.pending = PendingOutput(lock, notify)
        #: Lines kept for snapshots; at least this many when there are that many.
        self.keep = 100
        #: Lines ever added, so a view can tell the log changed.
        self.count = 0
        #: ``echo(stream, lines)`` also writes every batch of lines somewhere (the process's own
        #: streams, outside a kernel: see ``RuntimeConfig.echo``), or None.
        self.echo: Callable[[str, Lines], None] | None = None
        self._sink = sink
        #: The latest lines as ``(stream, lines)`` batches; `tail_dicts` makes them dicts.
        self._log: deque[tuple[str, list[str]]] = deque()
        self._held = 0
        self._buffers = {name: LineBuffer() for name in STREAMS}
        self._last_stream = "stdout"

    @property
    def partial(self) -> str:
        """The pending partial line of the stream written last, as a terminal shows it."""
        return self._buffers[self._last_stream].peek()

    @property
    def partial_raw(self) -> str:
        """The pending partial line as written (cheap; for change detection)."""
        return self._buffers[self._last_stream].partial

    def split(self) -> None:
        """Turn the pending writes into log lines, in write order."""
        for stream, text in self.pending.take():
            lines = self._buffers[stream].feed_joined(text)
            if type(lines) is JoinedLines:
                self.add(stream, lines, no_run_over(lines.text, MAX_PARTIAL_CHARS))
            elif lines:
                # Only the first line holds text from before this run (the pending partial).
                short = len(lines[0]) <= MAX_PARTIAL_CHARS and no_run_over(text, MAX_PARTIAL_CHARS)
                self.add(stream, lines, short)
            self._last_stream = stream

    def close(self) -> None:
        """The task ended: later writes go back to the real streams; pending partials become lines."""
        self.pending.end()
        self.split()
        for stream, buffer in self._buffers.items():
            line = buffer.flush()
            if line is not None:
                self.add(stream, [line])

    def add(self, stream: str, lines: Lines, short: bool = False) -> None:
        """Add complete lines of one stream; ``short`` says none is over the line limit."""
        if not short and type(lines) is JoinedLines:
            lines = lines.as_list()  # measured line by line below: split once
        if not short and max(map(len, lines)) > MAX_PARTIAL_CHARS:
            # One huge line would make one huge request (the hub refuses bodies over 4 MB).
            lines = [
                line[start : start + MAX_PARTIAL_CHARS]
                for line in lines
                for start in range(0, max(len(line), 1), MAX_PARTIAL_CHARS)
            ]
        keep = self.keep
        if keep:
            log = self._log
            log.append((stream, lines))
            self._held += len(lines)
            while self._held - len(log[0][1]) >= keep:
                self._held -= len(log.popleft()[1])
        self.count += len(lines)
        self._sink(stream, lines)
        if self.echo is not None:
            self.echo(stream, lines)

    def tail_dicts(self) -> list[dict]:
        """The last ``keep`` lines as ``{"stream", "text"}``."""
        out: list[dict] = []
        left = self.keep
        for stream, lines in reversed(self._log):
            if left <= 0:
                break
            part = lines[-left:]
            out.extend({"stream": stream, "text": text} for text in reversed(part))
            left -= len(part)
        out.reverse()
        return out
