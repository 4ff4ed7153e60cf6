"""Restart recovery: taking over what the store kept, and ending what can no longer finish.

At start the registry loads the previous run's tasks and events from its store: finished
tasks are listed and streamed as before, event ids go on where they stopped. Tasks that were
still running are *orphans*: their publisher may continue them (a kernel outlives a server
restart), and the app fails the ones it does not after ``restart_grace_period``.
"""

from __future__ import annotations

from operator import attrgetter
from typing import TYPE_CHECKING

from ..protocol import TaskState
from .eventlog import Event
from .store import LoadedState

if TYPE_CHECKING:  # the registry owns a RestartRecovery; this module only calls it back
    from .registry import TaskRegistry

__all__ = ["RestartRecovery"]


class RestartRecovery:
    """The unfinished tasks a restart left, until their publisher comes back or they fail."""

    def __init__(self) -> None:
        self.orphans: set[str] = set()

    def restore(self, registry: TaskRegistry, state: LoadedState) -> None:
        """Hand the registry every stored task with its events, in their original order."""
        merged: list[Event] = []
        gone = 0
        for record in state.tasks:
            task = TaskState.from_record(record)
            events = state.events.pop(task.id, [])
            registry.adopt(task, events)
            gone = max(gone, task.trimmed_through)
            merged.extend(e for e in events if e.id > task.trimmed_through)
            if not task.terminal:
                self.orphans.add(task.id)
        merged.sort(key=attrgetter("id"))
        # The all-tasks log: the newest of them, and a trim point at the newest id known to
        # be gone, so a resume from before it gets a snapshot, not a replay across the gap.
        log = registry.all_events
        kept = merged[-registry.retention_all_events :]
        cut = merged[-len(kept) - 1].id if len(kept) < len(merged) else 0
        log.trimmed_through = max(gone, cut)
        for event in kept:
            if event.id > log.trimmed_through:
                log.append(event)

    def claimed(self, task_id: str) -> None:
        """The task is no orphan any more: its publisher came back, or it was removed."""
        self.orphans.discard(task_id)

    def fail_orphans(self, registry: TaskRegistry, message: str) -> list[str]:
        """End the orphans whose publisher never came back; returns their ids."""
        failed = []
        for task_id in sorted(self.orphans):
            if registry.is_running(task_id):
                error = {"type": "ServerStopped", "message": message, "traceback": ""}
                registry.publish(task_id, [("status", {"status": "failed", "message": message, "error": error})])
                failed.append(task_id)
        self.orphans.clear()
        return failed
