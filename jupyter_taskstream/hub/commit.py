"""The commit pipeline: events reach the store before anyone sees them (durable stores).

With a durable store (SQLite) every emitted event is staged; one writer coroutine hands
everything staged so far to the store in one write (a group commit) and only then shows it
(``fan_out``), so an event a client has seen, or whose publisher got its 204, survives a
crash. What readers see of a task (its snapshot) is taken at that same moment, so a snapshot
never runs ahead of the log a reader can fetch next. With a memory store events are shown
at once and nothing is staged.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable, Mapping

from ..protocol import TaskState
from .eventlog import Event, EventLog
from .store import StoreError, TaskStore

__all__ = ["CommitPipeline"]


class CommitPipeline:
    """Stage, store, then show: the path of every event with a durable store."""

    def __init__(
        self,
        store: TaskStore,
        tasks: Mapping[str, TaskState],
        logs: Mapping[str, EventLog],
        fan_out: Callable[[list[Event]], None],
        logger: logging.Logger | logging.LoggerAdapter,
    ):
        self.store = store
        #: the registry's live tables, read (never written) to show what a commit led to
        self._tasks = tasks
        self._logs = logs
        self._fan_out = fan_out
        self._logger = logger
        # Events waiting for the store, the tasks whose records changed, and the callers
        # waiting for a commit, by the highest id they need committed.
        self._staged: list[tuple[Event, bool]] = []
        self._staged_through = 0
        self._committed_through = 0
        self._touched: dict[str, TaskState] = {}
        #: what readers see of each task: (version, snapshot) as of the last commit
        self._shown: dict[str, tuple[int, dict]] = {}
        self._waiters: list[tuple[int, asyncio.Future]] = []
        self._committer: asyncio.Task | None = None

    def start_at(self, last_event_id: int) -> None:
        """Everything up to ``last_event_id`` is stored already (what a previous run wrote)."""
        self._committed_through = self._staged_through = last_event_id

    def release(self, event: Event, task: TaskState | None, persist: bool = True) -> None:
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

    def touch(self, task: TaskState) -> None:
        """The task's record changed without an event of its own (e.g. its log was trimmed)."""
        if self.store.durable:
            self._touched[task.id] = task

    def show_as_stored(self, task: TaskState) -> None:
        """Readers see ``task`` as it is now (loaded from the store, so stored already)."""
        self._shown[task.id] = (task.version, task.snapshot())

    def shown(self, task_id: str) -> tuple[int, dict]:
        """``(version, snapshot)`` of a task as of the last commit; KeyError before its first."""
        return self._shown[task_id]

    def forget(self, task_id: str) -> None:
        """Drop a removed task's staged events and shown state (its ``deleted`` event is not)."""
        self._touched.pop(task_id, None)
        self._shown.pop(task_id, None)
        self._staged = [(e, p) for e, p in self._staged if e.task != task_id]

    async def commit(self) -> None:
        """Wait until every event emitted so far is stored and shown (durable stores)."""
        target = self._staged_through
        if self._committed_through >= target:
            return
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append((target, fut))
        await fut

    async def _commit_staged(self) -> None:
        # One write at a time: what is emitted during a write goes into the next one together.
        # A log trimmed during fan-out touches its task without an event: its record (the
        # new log_dropped and trimmed_through) is written by the next round, events or not.
        while self._staged or self._touched:
            staged, self._staged = self._staged, []
            touched, self._touched = self._touched, {}
            through = staged[-1][0].id if staged else self._committed_through
            # Taken now, with no await in between: exactly the state these events lead to.
            shown = {t.id: (t.version, t.snapshot()) for t in touched.values()}
            try:
                await self.store.write(
                    [e for e, persist in staged if persist], [t.to_record() for t in touched.values()], through
                )
            except Exception as e:
                self._logger.error("taskstream: %d events could not be stored and were not sent: %s", len(staged), e)
                self._settle_waiters(through, StoreError(f"the task database could not be written: {e}"))
                continue
            self._fan_out([e for e, _ in staged if e.type == "deleted" or e.task in self._logs])
            for task_id, (version, snap) in shown.items():
                if task_id in self._tasks:
                    task = self._tasks[task_id]
                    snap["last_event_id"] = task.last_event_id
                    # The fan-out just trimmed the log: readers see the count of what it cut.
                    snap["log_dropped"] = task.log_dropped
                    self._shown[task_id] = (version, snap)
            self._committed_through = through
            self._settle_waiters(through, None)

    def _settle_waiters(self, through: int, error: Exception | None) -> None:
        waiting = []
        for target, fut in self._waiters:
            if target > through:
                waiting.append((target, fut))
            elif not fut.done():
                if error is None:
                    fut.set_result(None)
                else:
                    fut.set_exception(error)
        self._waiters = waiting
