"""The hub's task registry: every task's state and event log, and the one way to change them.

`TaskRegistry` is the facade the handlers and the app call. It keeps task states, their
logs and the all-tasks log, hands out event ids, and delegates each other concern to a
module of its own: progress coalescing (`gate`), the commit pipeline to the store
(`commit`), kernel command logs (`commands`), the duplicate-batch check (`duplicates`),
restart recovery (`recovery`) and readers (`subscription`).

A `LoggingConfigurable` with no tornado or Jupyter server imports, so it can be driven
directly in tests. Everything runs on the server's asyncio loop, so no locks are needed.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any, Awaitable, Callable, Iterable

from traitlets import Callable as CallableTrait
from traitlets import Instance, default

from ..errors import TaskExists, TaskFinished, TaskNotFound, TaskRunning
from ..protocol import TERMINAL_STATUSES, TaskState, new_task_id
from .commands import KernelCommands
from .commit import CommitPipeline
from .duplicates import BatchSequences
from .eventlog import Event, EventLog, append_by_task, collector_paused, count_lines, line_events
from .finished import FinishedTasks
from .gate import ProgressGates
from .options import RegistryOptions
from .recovery import RestartRecovery
from .store import MemoryStore, TaskStore
from .subscription import SubscriberTooSlow, Subscription

__all__ = ["SubscriberTooSlow", "Subscription", "TaskRegistry"]


class TaskRegistry(RegistryOptions):
    """Every task the hub knows: state, per-task log, the all-tasks log, kernel command logs.

    Its options (retention, rate, limits) are declared in `RegistryOptions`, shared with the app.
    """

    clock = CallableTrait(time.time, help="Epoch-seconds clock; injectable for tests.")
    store = Instance(TaskStore, help="Where tasks and events are kept; events are shown only once stored.")

    @default("store")
    def _store_default(self) -> TaskStore:
        return MemoryStore()

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._tasks: OrderedDict[str, TaskState] = OrderedDict()
        self._logs: dict[str, EventLog] = {}
        self._finished = FinishedTasks()
        self._subscriptions: set[Subscription] = set()
        self.all_events = EventLog(self.retention_all_events)
        self.last_event_id = 0
        self._listeners: list[Callable[[Event], None]] = []
        self._gates = ProgressGates(
            lambda task, data: self._emit(task, "progress", data),
            lambda: self.clock(),
            lambda: self.progress_rate_hz,
            lambda task: self._tasks.get(task.id) is task and not task.terminal,
        )
        self._commit = CommitPipeline(self.store, self._tasks, self._logs, self._fan_out, self.log)
        self._commands = KernelCommands()
        self._batches = BatchSequences()
        self._recovery = RestartRecovery()

    # ---- reading -------------------------------------------------------------------------

    def get(self, task_id: str) -> TaskState:
        """The task with this id; raises `TaskNotFound`."""
        try:
            return self._tasks[task_id]
        except KeyError:
            raise TaskNotFound(task_id) from None

    def tasks(self, status: str | None = None) -> list[TaskState]:
        """Tasks newest first, optionally only those with one status (the live state)."""
        return [t for t in reversed(self._tasks.values()) if status is None or t.status == status]

    def is_running(self, task_id: str) -> bool:
        """True for a known task that has not finished."""
        task = self._tasks.get(task_id)
        return task is not None and not task.terminal

    def snapshot(self, task_id: str) -> dict:
        """The task as readers see it: with a durable store, as of the last commit, so the
        snapshot never runs ahead of the log a reader can fetch next."""
        if self.store.durable:
            try:
                return self._commit.shown(task_id)[1]
            except KeyError:
                raise TaskNotFound(task_id) from None
        return self.get(task_id).snapshot()

    def etag(self, task_id: str) -> str:
        """An ETag of what `snapshot` shows."""
        try:
            version = self._commit.shown(task_id)[0] if self.store.durable else self.get(task_id).version
        except KeyError:
            version = self.get(task_id).version
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

    def kernels_with_running_tasks(self) -> set[str]:
        """Kernel ids that own at least one unfinished task."""
        return {t.kernel_id for t in self._tasks.values() if t.kernel_id and not t.terminal}

    # ---- writing -------------------------------------------------------------------------

    def create(self, name: str, *, total: float | None = None, unit: str = "it",
               kernel_id: str | None = None, task_id: str | None = None) -> TaskState:  # fmt: skip
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
        unit = spec.get("unit") or "it"
        return self.create(spec["name"], total=spec.get("total"), unit=unit, kernel_id=spec.get("kernel_id"),
                           task_id=spec["id"])  # fmt: skip

    def check_publishable(self, task_id: str) -> TaskState:
        """The task, if it still takes events; raises `TaskNotFound` or `TaskFinished`."""
        task = self.get(task_id)
        if task.terminal:
            raise TaskFinished(task_id, task.status)
        return task

    def publish(self, task_id: str, events: Iterable[tuple[str, dict]]) -> None:
        """Apply validated events to a task, in order, and fan them out."""
        task = self.check_publishable(task_id)
        self._recovery.claimed(task_id)  # its publisher came back after a restart
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
                self._gates.changed(task, now)
            elif etype == "log":
                task.apply(etype, data, now)
                if "dropped" in data:
                    # Lines lost before they reached the hub (a kernel's full outbox, a refused
                    # batch): counted where readers look, and marked at the gap.
                    task.log_dropped += data["dropped"]
                    self._emit(task, "log", data)
                    continue
                # A batch of lines from a publisher becomes one event per line, each with its id.
                lines = line_events(self.last_event_id + 1, task.id, data, self.max_log_event_bytes)
                self.last_event_id += len(lines)
                task.version += len(lines)
                self._commit.release_many(lines, task)
            else:
                if data["status"] in TERMINAL_STATUSES:
                    self._gates.flush(task)
                task.apply(etype, data, now)
                self._emit(task, "status", data)
                if task.terminal:
                    self._finish(task)

    def publisher_seen(self, publisher: str, seq: int) -> bool:
        """True if this publisher already delivered batch ``seq`` (a retry after a lost reply)."""
        return self._batches.seen(publisher, seq)

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
        self._commands.close(kernel_id)
        return failed

    def commit(self) -> Awaitable[None]:
        """Await it until every event emitted so far is stored and shown; call it right after
        publishing (an event the store refuses fails only the call after it was emitted)."""
        return self._commit.commit()

    # ---- kernel commands -----------------------------------------------------------------

    def commands(self, kernel_id: str) -> EventLog:
        """The command log a kernel's runtime reads (``cancel``, ``start``)."""
        return self._commands.log(kernel_id)

    def has_command_listener(self, kernel_id: str) -> bool:
        """True while a runtime in that kernel reads its command stream."""
        return self._commands.has_reader(kernel_id, self._subscriptions)

    def start_in_kernel(self, kernel_id: str, name: str, code: str, total=None) -> TaskState:
        """A ``pending`` task whose code the kernel's runtime runs when it reads the command."""
        task = self.create(name, total=total, kernel_id=kernel_id)
        self.send_command(kernel_id, "start", {"task": task.id, "name": name, "code": code})
        return task

    def send_command(self, kernel_id: str, ctype: str, data: dict) -> Event:
        """Append a command for a kernel's runtime."""
        self.last_event_id += 1
        event = Event(self.last_event_id, data.get("task"), ctype, data)
        self._commands.append(kernel_id, event)
        return event

    # ---- readers -------------------------------------------------------------------------

    def subscribe(self, log: EventLog, cursor: int) -> Subscription:
        """A new reader of ``log`` starting after ``cursor``."""
        sub = Subscription(log, cursor, self.subscriber_backlog, forget=self._subscriptions.discard, logger=self.log)
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
        """Call ``listener(event)`` for every event the registry shows."""
        self._listeners.append(listener)

    # ---- start and stop ------------------------------------------------------------------

    def load(self) -> None:
        """Take over what the store kept from a previous run (call once, before serving);
        the collector paused: 9.3 million stored lines took 79 s with it, 28-30 s without."""
        with collector_paused():
            state = self.store.open()
            self.last_event_id = state.last_event_id
            self._commit.start_at(state.last_event_id)
            self._recovery.restore(self, state)
            for task_id in self._finished.fit(self._logs, self.retention_finished_events, self.snapshot_log_lines):
                self._commit.show_as_stored(self._tasks[task_id])  # as the next load would trim it again

    @property
    def orphans(self) -> set[str]:
        """Unfinished tasks found at start whose publisher has not come back yet."""
        return self._recovery.orphans

    def fail_orphans(self, message: str) -> list[str]:
        """End the tasks that were running before a restart and whose publisher never came back."""
        return self._recovery.fail_orphans(self, message)

    def adopt(self, task: TaskState, events: list[Event]) -> None:
        """Take over a stored task and its stored events (restart recovery)."""
        self._tasks[task.id] = task
        log = self._logs[task.id] = self._new_log(task)
        # What was trimmed stays gone; a crash between storing events and storing their trim
        log.trimmed_through = task.trimmed_through  # leaves more on disk, trimmed (and counted) here
        for event in events:
            if event.id > task.trimmed_through:
                log.append(event)
        task.last_event_id = max(task.last_event_id, log.last_id)
        self._commit.show_as_stored(task)
        if task.terminal:
            self._finished.append(task.id)

    def close(self) -> None:
        """End every stream (server shutdown), cancel pending timers, close the store."""
        self._gates.close()
        for log in (*self._logs.values(), self.all_events):
            log.close()
        self._commands.close_all()
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
        self._commit.release(event, task)
        return event

    def _fan_out(self, events: list[Event]) -> None:
        """Show events: append them to their logs, then wake each log once for the batch."""
        if not events:
            return
        woken = append_by_task(events, self._logs)
        for task_id, log in woken.items():
            # A snapshot's last_event_id is what a reader can resume from: shown events only.
            self._tasks[task_id].last_event_id = log.last_id
        self.all_events.extend(events, wake=False)
        for listener in self._listeners:
            for event in events:
                listener(event)
        for log in woken.values():
            log.wake()
        self.all_events.wake()
        if any(self._tasks[task_id].terminal for task_id in woken):  # a finished task's last events
            self._finished.fit(self._logs, self.retention_finished_events, self.snapshot_log_lines)

    def _new_log(self, task: TaskState) -> EventLog:
        def trimmed(events: list[Event]) -> None:
            # Counted here, once, and stored with the record: the store deletes exactly these
            # events when it writes the record, so memory and disk keep the same log.
            # A marker of lines dropped earlier is no line: its count is in log_dropped already.
            task.log_dropped += count_lines(events)
            task.trimmed_through = events[-1].id
            task.version += 1
            self._commit.touch(task)

        return EventLog(self.retention_events, on_trim=trimmed)

    def _finish(self, task: TaskState) -> None:
        self._gates.drop(task.id)
        self._finished.append(task.id)  # first: its log counts in the budget once its end is shown
        self._emit(task, "end", {})
        while len(self._finished) > self.max_tasks:
            old = self._finished.popleft()
            if old in self._tasks:
                self._remove(old)

    def _remove(self, task_id: str) -> None:
        self._tasks.pop(task_id, None)
        log = self._logs.pop(task_id, None)
        if log is not None:
            log.close()
        self._finished.discard(task_id)
        self._recovery.claimed(task_id)
        self._commit.forget(task_id)
        self.store.delete(task_id)
        self.last_event_id += 1
        self._commit.release(Event(self.last_event_id, task_id, "deleted", {}), None, persist=False)


def _log_line(event: Event) -> dict:
    return {"id": event.id, **event.data}
