"""A bounded, ordered log of events with monotonic ids, and cursors that read it.

One log per task, one for all tasks, one per kernel for commands. Polling
(``after=``) and SSE (``Last-Event-ID``) both read through a cursor into the same
log, so there is one source of truth and no per-subscriber queue to fan out into
(the model is tornado's chat demo ``MessageBuffer``; the failure it avoids is
sse-starlette#81, where subscribers sharing a queue each got half the events).
Runs on one asyncio loop; no tornado imports so it tests without a server.

A published batch of lines becomes one `LineEvent` per line in one pass (`line_events`) and
reaches each log in one `EventLog.extend` (`append_by_task`): the hot path of a printing task.
"""

from __future__ import annotations

import asyncio
import bisect
import gc
import json
from itertools import groupby
from operator import attrgetter
from typing import Any, Callable, Mapping

from . import sse

__all__ = ["Event", "EventLog", "Gap", "LineEvent", "append_by_task", "count_lines", "line_events", "split_utf8"]


class Gap(Exception):
    """The cursor points before the oldest retained event: some events are gone."""


class Event:
    """One event: id, task, type, payload, and its SSE bytes encoded once on first use."""

    __slots__ = ("id", "task", "type", "data", "_sse", "_sse_all")

    def __init__(self, id: int, task: str | None, type: str, data: dict[str, Any]):
        self.id = id
        self.task = task
        self.type = type
        self.data = data
        self._sse: bytes | None = None
        self._sse_all: bytes | None = None

    def sse(self) -> bytes:
        """The event framed for a per-task stream."""
        if self._sse is None:
            self._sse = sse.encode_json(self.data, event=self.type, id=self.id)
        return self._sse

    def sse_all(self) -> bytes:
        """The event framed for the all-tasks stream, its payload carrying ``task``."""
        if self._sse_all is None:
            payload = self.data if self.task is None else {**self.data, "task": self.task}
            self._sse_all = sse.encode_json(payload, event=self.type, id=self.id)
        return self._sse_all

    def to_json(self) -> dict[str, Any]:
        """The event as polling clients get it."""
        return {"id": self.id, "type": self.type, "data": self.data}

    def __repr__(self) -> str:
        return f"Event({self.id}, {self.task!r}, {self.type!r}, {json.dumps(self.data)[:60]})"


class LineEvent(Event):
    """A log line, the bulk of all events: its ``data`` dict is made only when read.

    A flood of printed lines is a million of these on the hub; one object per line instead
    of two is less to allocate and for the garbage collector to trace.
    """

    __slots__ = ("stream", "text")
    type = "log"  # type: ignore[assignment]

    def __init__(self, id: int, task: str, stream: str, text: str):  # noqa: D107 (no super: no dict)
        self.id = id
        self.task = task
        self.stream = stream
        self.text = text
        self._sse = None
        self._sse_all = None

    @property  # type: ignore[override]
    def data(self) -> dict[str, Any]:
        """``{"stream", "text"}``, as every log line reads."""
        return {"stream": self.stream, "text": self.text}


class EventLog:
    """Events in id order, trimmed to ``retention``; wakes waiters on every append."""

    def __init__(self, retention: int, on_trim: Callable[[list[Event]], None] | None = None):
        if retention < 1:
            raise ValueError("retention must be at least 1 event")
        self.retention = retention
        self._on_trim = on_trim
        self._events: list[Event] = []
        self._ids: list[int] = []
        #: highest id trimmed away; a cursor below it has missed events.
        self.trimmed_through = 0
        self.closed = False
        self._waiters: set[asyncio.Future] = set()
        #: readers that take events as they are appended (see `push_to`), instead of waiting
        self._pushers: list[Any] = []

    def __len__(self) -> int:
        return len(self._events)

    @property
    def last_id(self) -> int:
        """Id of the newest event, 0 when empty."""
        return self._ids[-1] if self._ids else self.trimmed_through

    def append(self, event: Event, wake: bool = True) -> None:
        """Add an event (ids must increase) and wake every waiter, or leave that to `wake`."""
        if self._ids and event.id <= self._ids[-1]:
            raise ValueError(f"event id {event.id} is not above {self._ids[-1]}")
        self._events.append(event)
        self._ids.append(event.id)
        self._trim()
        if wake:
            self.wake()

    def _trim(self) -> None:
        # Trim in chunks so appends stay O(1) amortized; the log keeps at least `retention`.
        if len(self._events) > self.retention + max(16, self.retention // 8):
            self.keep_last(self.retention)

    def keep_last(self, n: int) -> None:
        """Trim to the newest ``n`` events now (counted by ``on_trim``, as every trim)."""
        cut = len(self._events) - max(n, 0)
        if cut <= 0:
            return
        self.trimmed_through = self._ids[cut - 1]
        if self._on_trim is not None:
            self._on_trim(self._events[:cut])
        del self._events[:cut]
        del self._ids[:cut]

    def extend(self, events: list[Event], wake: bool = True) -> None:
        """`append` for events in increasing id order (a batch), in one step."""
        if self._ids and events[0].id <= self._ids[-1]:
            raise ValueError(f"event id {events[0].id} is not above {self._ids[-1]}")
        self._events += events
        self._ids += [e.id for e in events]
        self._trim()
        if wake:
            self.wake()

    def after(self, cursor: int) -> list[Event]:
        """Events with id > cursor, oldest first; raises `Gap` if some were trimmed."""
        if cursor < self.trimmed_through:
            raise Gap(cursor)
        start = bisect.bisect_right(self._ids, cursor)
        return self._events[start:]

    def before(self, cursor: int, n: int, type: str, floor: int = 0) -> list[Event]:
        """The newest ``n`` held events of one type with ``floor < id < cursor``, oldest first."""
        out: list[Event] = []
        for i in range(bisect.bisect_left(self._ids, cursor) - 1, -1, -1):
            event = self._events[i]
            if event.id <= floor or len(out) >= n:
                break
            if event.type == type:
                out.append(event)
        out.reverse()
        return out

    def tail(self, n: int, type: str | None = None) -> list[Event]:
        """The newest ``n`` events (of one type, if given), oldest first."""
        if type is None:
            return self._events[-n:] if n > 0 else []
        out: list[Event] = []
        for event in reversed(self._events):
            if len(out) >= n:
                break
            if event.type == type:
                out.append(event)
        out.reverse()
        return out

    def waiter(self, timeout: float | None) -> asyncio.Future:
        """A future that resolves True at the next append or close, False after ``timeout``.

        One future and one timer per waiter, no task: cheap enough for thousands of
        subscribers, and the owner may resolve it early (a subscription closing).
        """
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._waiters.add(fut)
        if timeout is not None:
            timer = loop.call_later(timeout, _resolve, fut, False)
            fut.add_done_callback(lambda _f: timer.cancel())
        fut.add_done_callback(self._waiters.discard)
        return fut

    async def wait(self, cursor: int, timeout: float | None) -> bool:
        """Wait until an event newer than ``cursor`` exists or the log closes; False on timeout."""
        if self.last_id > cursor or self.closed:
            return True
        return await self.waiter(timeout)

    def close(self) -> None:
        """Mark the log finished (task deleted, server stopping) and wake every waiter."""
        self.closed = True
        self.wake()

    def push_to(self, reader: Any) -> None:
        """Call ``reader.on_append()`` after every append and ``reader.on_close()`` at close.

        Delivering from the append loop costs one call per reader per `wake` (a whole batch
        of appended events); waking a coroutine per reader costs a future, a task switch and
        a timer each time (the fan-out hot path).
        """
        self._pushers.append(reader)

    def stop_pushing_to(self, reader: Any) -> None:
        """Forget a reader given to `push_to`."""
        try:
            self._pushers.remove(reader)
        except ValueError:
            pass

    def wake(self) -> None:
        """Tell waiters and push readers that events were appended (or the log closed).

        Appending a batch with ``wake=False`` and waking once hands each push reader the
        whole batch in one call: one write per subscriber, not one per event.
        """
        if self._waiters:
            for fut in list(self._waiters):
                _resolve(fut, True)
        if self._pushers:
            if self.closed:
                for reader in tuple(self._pushers):
                    reader.on_close()
            else:
                for reader in tuple(self._pushers):
                    reader.on_append()


def _resolve(fut: asyncio.Future, value: bool) -> None:
    if not fut.done():
        fut.set_result(value)


def split_utf8(text: str, limit: int) -> list[str]:
    """Split a log line into pieces of at most ``limit`` UTF-8 bytes, never inside a character.

    How ``max_log_event_bytes`` bounds a log event without cutting any text.
    """
    if limit <= 0 or len(text) * 4 <= limit or len(text.encode("utf-8")) <= limit:
        return [text]
    pieces, current, size = [], [], 0
    for ch in text:
        n = len(ch.encode("utf-8"))
        if size + n > limit and current:
            pieces.append("".join(current))
            current, size = [], 0
        current.append(ch)
        size += n
    pieces.append("".join(current))
    return pieces


#: From this many lines on, a batch's events are made with the garbage collector paused. Each
#: one is a tracked object, so 20,000 of them started ~28 young collections and a few older
#: ones, each walking what the hub retains (a million lines, say). Paused, the batch costs one
#: young collection when it ends: the hub's CPU for 800,000 printed lines went from 2.2 to
#: 1.8 s (issue 16, goal 2: that CPU is taken from the printing kernel on a shared machine).
_GC_PAUSE_LINES = 1000


class collector_paused:  # noqa: N801 - used as a function: ``with collector_paused():``
    """The cyclic garbage collector off while many lasting objects are made (``when``), unless
    the caller had it off already; one young collection's worth of work when it comes back.
    A class, not a generator: leaving it allocates nothing, so no collection runs inside."""

    __slots__ = ("paused", "when")

    def __init__(self, when: bool = True):
        self.when = when
        self.paused = False

    def __enter__(self) -> None:
        self.paused = self.when and gc.isenabled()
        if self.paused:
            gc.disable()

    def __exit__(self, *exc: object) -> None:
        if self.paused:
            gc.enable()


def line_events(first_id: int, task_id: str, data: dict, limit: int) -> list[Event]:
    """One log event per line of a validated ``log`` event's ``lines`` (or ``text``), ids from ``first_id``.

    A line over ``limit`` UTF-8 bytes becomes several events (`split_utf8`); a batch whose
    lines are all short enough is not measured line by line.
    """
    stream = data["stream"]
    lines = data["lines"] if "lines" in data else [data["text"]]
    if limit > 0 and max(map(len, lines)) * 4 > limit:
        lines = [piece for line in lines for piece in split_utf8(line, limit)]
    with collector_paused(len(lines) >= _GC_PAUSE_LINES):
        return [LineEvent(i, task_id, stream, text) for i, text in enumerate(lines, first_id)]


def stored_event(event_id: int, task_id: str, etype: str, data: dict) -> Event:
    """A stored event as the hub holds a live one: a plain log line as a `LineEvent` (no dict
    kept: a full store at the default retention was ~9 million lines, 4.5 GB as dicts)."""
    if etype == "log" and len(data) == 2 and "stream" in data and "text" in data:
        return LineEvent(event_id, task_id, data["stream"], data["text"])
    return Event(event_id, task_id, etype, data)


def count_lines(events: list[Event]) -> int:
    """How many of ``events`` are log lines (a marker of dropped lines is none)."""
    return sum(1 for e in events if type(e) is LineEvent or (e.type == "log" and "dropped" not in e.data))


_task_of = attrgetter("task")


def append_by_task(events: list[Event], logs: Mapping[str, EventLog]) -> dict[str, EventLog]:
    """Append events to their tasks' logs without waking them; returns the logs appended to.

    Consecutive events of one task (a batch of lines) are one `EventLog.extend`; a
    ``deleted`` event goes to no task's log, and a task without a log is skipped.
    """
    woken: dict[str, EventLog] = {}
    for task_id, group in groupby(events, _task_of):
        log = logs.get(task_id)
        if log is None:
            continue
        run = [e for e in group if e.type != "deleted"]
        if run:
            log.extend(run, wake=False)
            woken[task_id] = log
    return woken
