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
        self._staged: list[Event] = []
        #: ids of staged events that are shown but not stored (a removed task's ``deleted``)
        self._unpersisted: set[int] = set()
        self._staged_through = 0
        self._committed_through = 0
        self._touched: dict[str, TaskState] = {}
        #: what readers see of each task: (version, snapshot) as of the last commit
        self._shown: dict[str, tuple[int, dict]] = {}
        self._waiters: list[tuple[int, int, asyncio.Future]] = []
        self._asked_through = 0
        self._committer: asyncio.Task | None = None

    def start_at(self, last_event_id: int) -> None:
        """Everything up to ``last_event_id`` is stored already (what a previous run wrote)."""
        self._committed_through = self._staged_through = self._asked_through = last_event_id

    def release(self, event: Event, task: TaskState | None, persist: bool = True) -> None:
        """Show an event now (memory store) or once the store has committed it."""
        if not persist and self.store.durable:
            self._unpersisted.add(event.id)
        self.release_many([event], task)

    def release_many(self, events: list[Event], task: TaskState | None) -> None:
        """`release` for events in id order (a batch of log lines): one call, not one per line."""
        if not self.store.durable:
            self._fan_out(events)
            return
        self._staged += events
        self._staged_through = events[-1].id
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
        self._staged = [e for e in self._staged if e.task != task_id]

    def commit(self) -> asyncio.Future:
        """A future that resolves once every event emitted so far is stored and shown.

        Registered at the call, not at the first await: the caller's events are those emitted
        since the previous caller asked, and a failed event fails only its caller.
        """
        fut = asyncio.get_running_loop().create_future()
        target = self._staged_through
        if self._committed_through >= target:
            fut.set_result(None)
            return fut
        self._waiters.append((self._asked_through, target, fut))
        self._asked_through = target
        return fut

    async def _commit_staged(self) -> None:
        # One write at a time: what is emitted during a write goes into the next one together.
        # A log trimmed during fan-out touches its task without an event: its record (the
        # new log_dropped and trimmed_through) is written by the next round, events or not.
        while self._staged or self._touched:
            staged, self._staged = self._staged, []
            touched, self._touched = self._touched, {}
            through = staged[-1].id if staged else self._committed_through
            # Taken now, with no await in between: exactly the state these events lead to.
            shown = {t.id: (t.version, t.snapshot()) for t in touched.values()}
            unpersisted, self._unpersisted = self._unpersisted, set()
            persisted = [e for e in staged if e.id not in unpersisted] if unpersisted else staged
            records = [t.to_record() for t in touched.values()]
            try:
                await self.store.write(persisted, records, through)
                failed: dict[int, Exception] = {}
            except Exception as e:
                # One bad event must not fail everything that was committed with it: find it.
                self._logger.warning("taskstream: a group of %d events could not be stored (%s); "
                                     "storing them apart to find the one that fails", len(persisted), e)
                failed = await self._store_apart(persisted, records, through)
            if failed:
                staged = [e for e in staged if e.id not in failed]
            self._fan_out([e for e in staged if e.type == "deleted" or e.task in self._logs])
            for task_id, (version, snap) in shown.items():
                if task_id in self._tasks:
                    task = self._tasks[task_id]
                    snap["last_event_id"] = task.last_event_id
                    # The fan-out just trimmed the log: readers see the count of what it cut.
                    snap["log_dropped"] = task.log_dropped
                    self._shown[task_id] = (version, snap)
            self._committed_through = through
            self._settle_waiters(through, failed)

    async def _store_apart(self, events: list[Event], records: list[dict], through: int) -> dict[int, Exception]:
        """Store ``events`` in halves down to the ones that fail; returns those, by id."""
        failed: dict[int, Exception] = {}

        async def store(part: list[Event]) -> None:
            try:
                await self.store.write(part, [], part[-1].id)
            except Exception as e:
                if len(part) == 1:
                    event = part[0]
                    self._logger.error("taskstream: event %d (%s) of task %s could not be stored and is not "
                                       "shown: %s", event.id, event.type, event.task, e)  # fmt: skip
                    failed[event.id] = e
                    return
                await store(part[: len(part) // 2])
                await store(part[len(part) // 2 :])

        if events:
            await store(events)
        for record in records:
            try:
                await self.store.write([], [record], through)
            except Exception as e:
                self._logger.error("taskstream: the record of task %s could not be stored: %s", record.get("id"), e)
        return failed

    def _settle_waiters(self, through: int, failed: dict[int, Exception]) -> None:
        """Answer the callers waiting for ids up to ``through``: an error to those whose events failed."""
        waiting = []
        for since, target, fut in self._waiters:
            if target > through:
                waiting.append((since, target, fut))
                continue
            mine = [e for event_id, e in failed.items() if since < event_id <= target]
            if fut.done():
                continue
            if mine:
                fut.set_exception(StoreError(f"the task database could not store an event: {mine[0]}"))
            else:
                fut.set_result(None)
        self._waiters = waiting
