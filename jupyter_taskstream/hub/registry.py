"""The hub's task registry: task states, their event logs, subscriptions and commands.

A `LoggingConfigurable` with no tornado or Jupyter server imports, so it can be
driven directly in tests; the extension app builds one and the handlers call it.
Everything runs on the server's asyncio loop, so no locks are needed.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from typing import Any, Callable, Iterable

from traitlets import Callable as CallableTrait
from traitlets import Float, Instance, Int, default
from traitlets.config import LoggingConfigurable

from ..errors import TaskExists, TaskFinished, TaskNotFound, TaskRunning
from .eventlog import Event, EventLog, Gap
from ..protocol import TERMINAL_STATUSES, TaskState, new_task_id
from .store import MemoryStore, StoreError, TaskStore

__all__ = ["Subscription", "SubscriberTooSlow", "TaskRegistry"]


class SubscriberTooSlow(Exception):
    """A subscriber fell further behind than its backlog allows; drop it, it resumes by id."""


class _ProgressGate:
    """Per-task progress coalescing: when the last progress went out, and a pending flush."""

    __slots__ = ("last_sent", "timer", "unit", "message")

    def __init__(self) -> None:
        self.last_sent = float("-inf")
        #: what the last progress event said, so unchanged unit and message are left out
        self.unit: str | None = None
        self.message: str | None = None
        self.timer: asyncio.TimerHandle | None = None


class Subscription:
    """One reader of one log: a cursor, a bounded backlog, and a way to be closed.

    Give it a ``deliver`` callback with `push`: the log then hands it new events from its
    append loop, one call per event.
    """

    __slots__ = ("registry", "log", "cursor", "backlog", "task_id", "closed", "_deliver", "_on_end", "paused")

    def __init__(self, registry: TaskRegistry, log: EventLog, cursor: int, backlog: int, task_id=None):
        self.registry = registry
        self.log = log
        self.cursor = cursor
        self.backlog = backlog
        self.task_id = task_id
        self.closed = False
        self._deliver: Callable[[list[Event]], bool] | None = None
        self._on_end: Callable[[BaseException | None], None] | None = None
        #: a push reader whose last delivery is still being written: it catches up later
        self.paused = False

    def take(self) -> list[Event]:
        """The events after the cursor (maybe none), moving the cursor past them.

        Raises `SubscriberTooSlow` when more events wait than the backlog allows, or some
        were trimmed before being read.
        """
        try:
            events = self.log.after(self.cursor)
        except Gap as e:
            raise SubscriberTooSlow(self.cursor) from e
        if events:
            if len(events) > self.backlog:
                raise SubscriberTooSlow(len(events))
            self.cursor = events[-1].id
        return events

    def push(self, deliver: Callable[[list[Event]], bool], on_end: Callable[[BaseException | None], None]) -> None:
        """Hand every event to ``deliver(events)`` as it is appended, starting with the backlog.

        ``deliver`` returns True while it is still writing (the reader is then paused until
        `resume`); ``on_end(error)`` is called once when the log closes or the reader fails.
        """
        self._deliver, self._on_end = deliver, on_end
        self.log.push_to(self)
        self.on_append()
        if self.log.closed:
            self.on_close()

    def resume(self) -> None:
        """The last delivery was written: catch up with what was appended meanwhile."""
        self.paused = False
        self.on_append()

    def on_append(self) -> None:
        if self.closed or self.paused or self._deliver is None:
            return
        try:
            events = self.take()
            if events:
                self.paused = bool(self._deliver(events))
        except Exception as e:  # too slow, or the socket is gone: this reader ends, no one else
            self.close(e)

    def on_close(self) -> None:
        self.close()

    def fail(self, error: BaseException) -> None:
        """The reader cannot go on (its client went away): end it with ``error``."""
        self.close(error)

    def close(self, error: BaseException | None = None) -> None:
        """Stop reading; frees the registry's reference at once and tells a push reader."""
        if self.closed:
            return
        self.closed = True
        self.registry._subscriptions.discard(self)
        self.log.stop_pushing_to(self)
        on_end, self._on_end = self._on_end, None
        if on_end is not None:
            on_end(error)


class TaskRegistry(LoggingConfigurable):
    """Every task the hub knows: state, per-task log, the all-tasks log, kernel command logs."""

    retention_events = Int(10_000, help="Events kept per task.")
    retention_all_events = Int(100_000, help="Events kept in the all-tasks log.")
    progress_rate_hz = Float(10.0, help="Progress events sent per task per second, at most.")
    max_log_event_bytes = Int(64 * 1024, help="Longer log text is split into several events.")
    max_tasks = Int(1000, help="Finished tasks kept; the oldest finished are removed first.")
    snapshot_log_lines = Int(100, help="Log lines sent with a one-task snapshot.")
    all_snapshot_log_lines = Int(20, help="Log lines per task sent with the all-tasks snapshot.")
    subscriber_backlog = Int(5000, help="Events a subscriber may fall behind before it is dropped.")
    clock = CallableTrait(time.time, help="Epoch-seconds clock; injectable for tests.")
    store = Instance(TaskStore, help="Where tasks and events are kept; events are shown only once stored.")

    @default("store")
    def _store_default(self) -> TaskStore:
        return MemoryStore()

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._tasks: OrderedDict[str, TaskState] = OrderedDict()
        self._logs: dict[str, EventLog] = {}
        self._finished: deque[str] = deque()
        self._gates: dict[str, _ProgressGate] = {}
        self._kernel_commands: dict[str, EventLog] = {}
        self._publisher_seq: dict[str, int] = {}
        self._subscriptions: set[Subscription] = set()
        self.all_events = EventLog(self.retention_all_events)
        self.last_event_id = 0
        self._listeners: list[Callable[[Event], None]] = []
        # Events waiting for the store (durable stores only), the tasks whose records changed,
        # and the callers waiting for a commit, by the highest id they need committed.
        self._staged: list[tuple[Event, bool]] = []
        self._staged_through = 0
        self._committed_through = 0
        self._touched: dict[str, TaskState] = {}
        #: what readers see of each task with a durable store: (version, snapshot) as of the last commit
        self._shown: dict[str, tuple[int, dict]] = {}
        self._commit_waiters: list[tuple[int, asyncio.Future]] = []
        self._committer: asyncio.Task | None = None
        #: unfinished tasks found at start, and the last event id the previous run wrote
        self.orphans: set[str] = set()
        self.loaded_through = 0

    # ---- reading -------------------------------------------------------------------------

    def get(self, task_id: str) -> TaskState:
        """The task with this id; raises `TaskNotFound`."""
        try:
            return self._tasks[task_id]
        except KeyError:
            raise TaskNotFound(task_id) from None

    def tasks(self, status: str | None = None) -> list[TaskState]:
        """Tasks newest first, optionally only those with one status (the live state)."""
        out = [t for t in reversed(self._tasks.values()) if status is None or t.status == status]
        return out

    def snapshot(self, task_id: str) -> dict:
        """The task as readers see it: with a durable store, as of the last commit, so the
        snapshot never runs ahead of the log a reader can fetch next."""
        if self.store.durable:
            try:
                return self._shown[task_id][1]
            except KeyError:
                raise TaskNotFound(task_id) from None
        return self.get(task_id).snapshot()

    def etag(self, task_id: str) -> str:
        """An ETag of what `snapshot` shows."""
        version = self._shown[task_id][0] if self.store.durable and task_id in self._shown else self.get(task_id).version
        return f'"{task_id}-{version}"'

    def snapshots(self, status: str | None = None) -> list[dict]:
        """What `snapshot` shows for every task, newest first, optionally of one status."""
        out = []
        for task_id in reversed(self._tasks):
            try:
                snap = self.snapshot(task_id)
            except TaskNotFound:
                continue  # created, not committed yet
            if status is None or snap["status"] == status:
                out.append(snap)
        return out

    def event_log(self, task_id: str) -> EventLog:
        """The event log of one task."""
        self.get(task_id)
        return self._logs[task_id]

    def running_count(self) -> int:
        """Tasks not yet finished: what `current_activity` reports to the idle culler."""
        return sum(1 for t in self._tasks.values() if not t.terminal)

    def snapshot_event(self, task_id: str) -> tuple[int, dict]:
        """``(id, data)`` of a per-task ``snapshot`` event: the snapshot plus the log tail."""
        log = self.event_log(task_id)
        tail = log.tail(self.snapshot_log_lines, "log")
        # The id is the log's: events still being stored come after it.
        return log.last_id, {**self.snapshot(task_id), "log": [_log_line(e) for e in tail]}

    def all_snapshot_event(self) -> tuple[int, dict]:
        """``(id, data)`` of the all-tasks ``snapshot`` event."""
        tasks = []
        for snap in self.snapshots():
            tail = self._logs[snap["id"]].tail(self.all_snapshot_log_lines, "log")
            tasks.append({**snap, "log": [_log_line(e) for e in tail]})
        return self.all_events.last_id, {"tasks": tasks}

    # ---- writing -------------------------------------------------------------------------

    def create(
        self,
        name: str,
        *,
        total: float | None = None,
        unit: str = "it",
        kernel_id: str | None = None,
        task_id: str | None = None,
    ) -> TaskState:
        """Register a new ``pending`` task; a given id must be new (else `TaskExists`)."""
        if task_id is None:
            task_id = new_task_id()
            while task_id in self._tasks:
                task_id = new_task_id()
        elif task_id in self._tasks:
            raise TaskExists(task_id)
        task = TaskState(task_id, name, now=self.clock(), total=total, unit=unit, kernel_id=kernel_id)
        self._tasks[task_id] = task
        self._logs[task_id] = self._new_log(task)
        self._emit(task, "status", {"status": "pending", "name": name})
        return task

    def ensure(self, spec: dict) -> TaskState:
        """Create the task a publisher describes, or return it if that publisher made it already."""
        task = self._tasks.get(spec["id"])
        if task is not None:
            if task.kernel_id != spec.get("kernel_id"):
                raise TaskExists(spec["id"])
            return task
        return self.create(
            spec["name"],
            total=spec.get("total"),
            unit=spec.get("unit") or "it",
            kernel_id=spec.get("kernel_id"),
            task_id=spec["id"],
        )

    def check_publishable(self, task_id: str) -> TaskState:
        """The task, if it still takes events; raises `TaskNotFound` or `TaskFinished`."""
        task = self.get(task_id)
        if task.terminal:
            raise TaskFinished(task_id, task.status)
        return task

    def publish(self, task_id: str, events: Iterable[tuple[str, dict]]) -> None:
        """Apply validated events to a task, in order, and fan them out."""
        task = self.check_publishable(task_id)
        self.orphans.discard(task_id)  # its publisher came back after a restart
        now = self.clock()
        for etype, data in events:
            if task.terminal:
                raise TaskFinished(task_id, task.status)
            if etype != "status" and task.status == "pending":
                # The first progress or output starts the task: say so, so a viewer that
                # follows status events sees running before the end.
                task.apply("status", {"status": "running"}, now)
                self._emit(task, "status", {"status": "running"})
            if etype == "progress":
                task.apply(etype, data, now)
                self._progress_changed(task, now)
            elif etype == "log":
                task.apply(etype, data, now)
                stream = data["stream"]
                # A batch of lines from a publisher becomes one event per line, each with its id.
                for line in data["lines"] if "lines" in data else (data["text"],):
                    for text in _split_utf8(line, self.max_log_event_bytes):
                        self._emit(task, "log", {"stream": stream, "text": text})
            else:
                if data["status"] in TERMINAL_STATUSES:
                    self._flush_progress(task)
                task.apply(etype, data, now)
                self._emit(task, "status", data)
                if task.terminal:
                    self._finish(task)

    def publisher_seen(self, publisher: str, seq: int) -> bool:
        """True if this publisher already delivered batch ``seq`` (a retry after a lost reply)."""
        last = self._publisher_seq.get(publisher)
        if last is not None and seq <= last:
            return True
        self._publisher_seq[publisher] = seq
        return False

    def request_cancel(self, task_id: str) -> TaskState:
        """Flag the task, tell its kernel; a task nobody has started yet ends at once."""
        task = self.check_publishable(task_id)
        task.cancel_requested = True
        if task.status == "pending" and task.kernel_id is None:
            self.publish(task_id, [("status", {"status": "cancelled", "message": "cancelled before it started"})])
            return task
        self._emit(task, "status", {"status": task.status, "cancel_requested": True})
        if task.kernel_id is not None:
            self.send_command(task.kernel_id, "cancel", {"task": task_id})
        return task

    def delete(self, task_id: str) -> None:
        """Forget a finished task and its log; raises `TaskRunning` while it runs."""
        task = self.get(task_id)
        if not task.terminal:
            raise TaskRunning(task_id, task.status)
        self._remove(task_id)

    def fail_kernel_tasks(self, kernel_id: str, message: str) -> list[str]:
        """End every unfinished task of a kernel as ``failed``; returns their ids."""
        failed = []
        for task in list(self._tasks.values()):
            if task.kernel_id == kernel_id and not task.terminal:
                error = {"type": "KernelDied", "message": message, "traceback": ""}
                self.publish(task.id, [("status", {"status": "failed", "message": message, "error": error})])
                failed.append(task.id)
        log = self._kernel_commands.pop(kernel_id, None)
        if log is not None:
            log.close()
        return failed

    def kernels_with_running_tasks(self) -> set[str]:
        """Kernel ids that own at least one unfinished task."""
        return {t.kernel_id for t in self._tasks.values() if t.kernel_id and not t.terminal}

    # ---- kernel commands -----------------------------------------------------------------

    def commands(self, kernel_id: str) -> EventLog:
        """The command log a kernel's runtime reads (``cancel``, ``start``)."""
        log = self._kernel_commands.get(kernel_id)
        if log is None or log.closed:
            log = self._kernel_commands[kernel_id] = EventLog(1000)
        return log

    def has_command_listener(self, kernel_id: str) -> bool:
        """True while a runtime in that kernel reads its command stream."""
        log = self._kernel_commands.get(kernel_id)
        return log is not None and any(sub.log is log for sub in self._subscriptions)

    def start_in_kernel(self, kernel_id: str, name: str, code: str, total=None) -> TaskState:
        """A ``pending`` task whose code the kernel's runtime runs when it reads the command."""
        task = self.create(name, total=total, kernel_id=kernel_id)
        self.send_command(kernel_id, "start", {"task": task.id, "name": name, "code": code})
        return task

    def send_command(self, kernel_id: str, ctype: str, data: dict) -> Event:
        """Append a command for a kernel's runtime."""
        self.last_event_id += 1
        event = Event(self.last_event_id, data.get("task"), ctype, data)
        self.commands(kernel_id).append(event)
        return event

    # ---- subscriptions -------------------------------------------------------------------

    def subscribe(self, log: EventLog, cursor: int, task_id: str | None = None) -> Subscription:
        """A new reader of ``log`` starting after ``cursor``."""
        sub = Subscription(self, log, cursor, self.subscriber_backlog, task_id)
        self._subscriptions.add(sub)
        return sub

    @property
    def subscriber_count(self) -> int:
        """Open subscriptions: SSE streams and long-polls in progress."""
        return len(self._subscriptions)

    def resume_point(self, log: EventLog, last_event_id: int | None) -> int | None:
        """The cursor to replay from, or None when a fresh snapshot is needed.

        An id from the future (e.g. issued before a restart) or older than the retained
        events gets a snapshot instead of a stall (mercure#704) or silent loss.
        """
        if last_event_id is None or last_event_id > self.last_event_id:
            return None
        if last_event_id < log.trimmed_through:
            return None
        return last_event_id

    def add_listener(self, listener: Callable[[Event], None]) -> None:
        """Call ``listener(event)`` for every event the registry emits."""
        self._listeners.append(listener)

    def close(self) -> None:
        """End every stream (server shutdown), cancel pending timers, close the store."""
        for gate in self._gates.values():
            if gate.timer is not None:
                gate.timer.cancel()
        self._gates.clear()
        for log in (*self._logs.values(), *self._kernel_commands.values(), self.all_events):
            log.close()
        for sub in list(self._subscriptions):
            sub.close()
        self.store.close()

    # ---- internals -----------------------------------------------------------------------

    def _emit(self, task: TaskState, etype: str, data: dict) -> Event:
        self.last_event_id += 1
        task.version += 1
        if etype == "end":
            data = {**task.snapshot(), "last_event_id": self.last_event_id}
        event = Event(self.last_event_id, task.id, etype, data)
        self._release(event, task)
        return event

    def _release(self, event: Event, task: TaskState | None, persist: bool = True) -> None:
        """Show an event now (memory store) or once the store has committed it."""
        if not self.store.durable:
            self._fan_out([event])
            return
        self._staged.append((event, persist))
        self._staged_through = event.id
        if task is not None:
            self._touched[task.id] = task
        if self._committer is None or self._committer.done():
            self._committer = asyncio.get_running_loop().create_task(self._commit_staged())

    def _fan_out(self, events: list[Event]) -> None:
        """Show events: append them to their logs, then wake each log once for the batch."""
        woken: dict[int, EventLog] = {}
        for event in events:
            log = self._logs.get(event.task) if event.type != "deleted" else None
            if log is not None:
                log.append(event, wake=False)
                woken[id(log)] = log
                # A snapshot's last_event_id is what a reader can resume from: shown events only.
                self._tasks[event.task].last_event_id = event.id
            self.all_events.append(event, wake=False)
            for listener in self._listeners:
                listener(event)
        for log in woken.values():
            log.wake()
        if events:
            self.all_events.wake()

    async def commit(self) -> None:
        """Wait until every event emitted so far is stored and shown (durable stores)."""
        target = self._staged_through
        if self._committed_through >= target:
            return
        fut = asyncio.get_running_loop().create_future()
        self._commit_waiters.append((target, fut))
        await fut

    async def _commit_staged(self) -> None:
        # One write at a time: what is emitted during a write goes into the next one together.
        while self._staged:
            staged, self._staged = self._staged, []
            touched, self._touched = self._touched, {}
            through = staged[-1][0].id
            # Taken now, with no await in between: exactly the state these events lead to.
            shown = {t.id: (t.version, t.snapshot()) for t in touched.values()}
            try:
                await self.store.write(
                    [e for e, persist in staged if persist], [t.to_record() for t in touched.values()], through
                )
            except Exception as e:
                self.log.error("taskstream: %d events could not be stored and were not sent: %s", len(staged), e)
                self._settle_waiters(through, StoreError(f"the task database could not be written: {e}"))
                continue
            self._fan_out([e for e, _ in staged if e.type == "deleted" or e.task in self._logs])
            for task_id, (version, snap) in shown.items():
                if task_id in self._tasks:
                    snap["last_event_id"] = self._tasks[task_id].last_event_id
                    self._shown[task_id] = (version, snap)
            self._committed_through = through
            self._settle_waiters(through, None)

    def _settle_waiters(self, through: int, error: Exception | None) -> None:
        waiting = []
        for target, fut in self._commit_waiters:
            if target > through:
                waiting.append((target, fut))
            elif not fut.done():
                if error is None:
                    fut.set_result(None)
                else:
                    fut.set_exception(error)
        self._commit_waiters = waiting

    def _new_log(self, task: TaskState) -> EventLog:
        def trimmed(events: list[Event]) -> None:
            task.log_dropped += sum(1 for e in events if e.type == "log")
            if self.store.durable:
                self._touched[task.id] = task

        return EventLog(self.retention_events, on_trim=trimmed)

    # ---- restart -------------------------------------------------------------------------

    def load(self) -> None:
        """Take over what the store kept from a previous run (call once, before serving)."""
        state = self.store.open()
        self.last_event_id = self.loaded_through = state.last_event_id
        self._committed_through = self._staged_through = state.last_event_id
        merged: list[Event] = []
        for record in state.tasks:
            task = TaskState.from_record(record)
            self._tasks[task.id] = task
            log = self._logs[task.id] = self._new_log(task)
            for event_id, etype, data in state.events.get(task.id, []):
                event = Event(event_id, task.id, etype, data)
                log.append(event)
                merged.append(event)
            task.last_event_id = max(task.last_event_id, log.last_id)
            self._shown[task.id] = (task.version, task.snapshot())
            if task.terminal:
                self._finished.append(task.id)
            else:
                self.orphans.add(task.id)
        merged.sort(key=lambda e: e.id)
        for event in merged[-self.retention_all_events :]:
            self.all_events.append(event)

    def fail_orphans(self, message: str) -> list[str]:
        """End the tasks that were running before a restart and whose publisher never came back."""
        failed = []
        for task_id in sorted(self.orphans):
            task = self._tasks.get(task_id)
            if task is not None and not task.terminal:
                error = {"type": "ServerStopped", "message": message, "traceback": ""}
                self.publish(task_id, [("status", {"status": "failed", "message": message, "error": error})])
                failed.append(task_id)
        self.orphans.clear()
        return failed

    def _progress_data(self, task: TaskState, gate: _ProgressGate) -> dict:
        data = task.progress()
        # unit and message rarely change: sent with the first progress event and when they
        # change, so a stream of updates stays small (a client keeps the last value it got).
        if data["unit"] == gate.unit:
            del data["unit"]
        gate.unit = task.unit
        if task.message != gate.message:
            data["message"] = gate.message = task.message
        bars = task.take_bar_changes()
        if bars:
            data["bars"] = bars  # the child bars that changed since the last progress event
        return data

    def _progress_changed(self, task: TaskState, now: float) -> None:
        gate = self._gates.setdefault(task.id, _ProgressGate())
        interval = 1.0 / self.progress_rate_hz if self.progress_rate_hz > 0 else 0.0
        if gate.timer is not None:
            return  # a flush is already scheduled; it will send the latest value
        wait = gate.last_sent + interval - now
        if wait <= 0:
            gate.last_sent = now
            self._emit(task, "progress", self._progress_data(task, gate))
            return
        gate.timer = asyncio.get_running_loop().call_later(wait, self._flush_progress, task)

    def _flush_progress(self, task: TaskState) -> None:
        gate = self._gates.get(task.id)
        if gate is None or gate.timer is None:
            return
        gate.timer.cancel()
        gate.timer = None
        if self._tasks.get(task.id) is task and not task.terminal:
            gate.last_sent = self.clock()
            self._emit(task, "progress", self._progress_data(task, gate))

    def _finish(self, task: TaskState) -> None:
        gate = self._gates.pop(task.id, None)
        if gate is not None and gate.timer is not None:
            gate.timer.cancel()
        self._emit(task, "end", {})
        self._finished.append(task.id)
        while len(self._finished) > self.max_tasks:
            old = self._finished.popleft()
            if old in self._tasks:
                self._remove(old)

    def _remove(self, task_id: str) -> None:
        self._tasks.pop(task_id, None)
        log = self._logs.pop(task_id, None)
        if log is not None:
            log.close()
        try:
            self._finished.remove(task_id)
        except ValueError:
            pass
        self.orphans.discard(task_id)
        self._touched.pop(task_id, None)
        self._shown.pop(task_id, None)
        self._staged = [(e, p) for e, p in self._staged if e.task != task_id]
        self.store.delete(task_id)
        self.last_event_id += 1
        self._release(Event(self.last_event_id, task_id, "deleted", {}), None, persist=False)


def _log_line(event: Event) -> dict:
    return {"id": event.id, **event.data}


def _split_utf8(text: str, limit: int) -> list[str]:
    """Split text into pieces of at most ``limit`` UTF-8 bytes, never inside a character."""
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
