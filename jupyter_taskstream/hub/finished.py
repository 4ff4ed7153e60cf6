"""Finished tasks, oldest first: what ``max_tasks`` removes and what the finished-log budget trims.

A finished task's log no longer grows, but ``retention_events`` × ``max_tasks`` allows 10
million events at the defaults: ~2.2 GB of hub memory (~220 bytes per kept line) and a
restart that reads them all back. ``retention_finished_events`` bounds what all finished
logs hold together: past it, the oldest finished tasks' logs are cut to their newest
``snapshot_log_lines`` events, through the log's own trim, which counts the lines in the
task's ``log_dropped`` and has the store delete them with the task's next record.
"""

from __future__ import annotations

from collections import deque
from typing import Mapping

from .eventlog import EventLog

__all__ = ["FinishedTasks"]


class FinishedTasks(deque):
    """Ids of finished tasks in the order they finished."""

    def discard(self, task_id: str) -> None:
        """Forget ``task_id`` if it is here (a removed task)."""
        try:
            self.remove(task_id)
        except ValueError:
            pass

    def fit(self, logs: Mapping[str, EventLog], budget: int, keep: int) -> list[str]:
        """Trim the oldest finished logs until they hold at most ``budget`` events together,
        each keeping its newest ``keep``; returns the ids of the tasks trimmed."""
        held = sum(len(logs[task_id]) for task_id in self if task_id in logs)
        trimmed: list[str] = []
        for task_id in self:
            if held <= budget:
                break
            log = logs.get(task_id)
            if log is None or len(log) <= keep:
                continue
            held -= len(log) - keep
            log.keep_last(keep)
            trimmed.append(task_id)
        return trimmed
