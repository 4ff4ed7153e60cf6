"""Exceptions of jupyter_taskstream, shared by the hub and the kernel runtime.

Each subclasses the package base `TaskStreamError` and the stdlib error it means,
so callers can catch either (``except KeyError`` still works for a missing task).
"""

from __future__ import annotations

__all__ = [
    "TaskCancelled",
    "TaskExists",
    "TaskFinished",
    "TaskNotFound",
    "TaskRunning",
    "TaskStreamError",
    "ValidationError",
]


class TaskStreamError(Exception):
    """Base class of every error raised by jupyter_taskstream."""


class ValidationError(TaskStreamError, ValueError):
    """Input that breaks the contract; ``field`` names the offending field."""

    def __init__(self, field: str, problem: str):
        self.field = field
        self.problem = problem
        super().__init__(f"{field} {problem}")


class TaskNotFound(TaskStreamError, KeyError):
    """No task has this id (or it was removed by retention or DELETE)."""

    def __init__(self, task_id: str):
        self.task_id = task_id
        super().__init__(task_id)

    def __str__(self) -> str:
        return f"no task with id {self.task_id!r}"


class TaskExists(TaskStreamError, ValueError):
    """A task with this id already exists and belongs to someone else."""

    def __init__(self, task_id: str):
        self.task_id = task_id
        super().__init__(f"a task with id {task_id!r} already exists")


class TaskFinished(TaskStreamError, RuntimeError):
    """The task has reached a terminal status; it takes no more events."""

    def __init__(self, task_id: str, status: str):
        self.task_id = task_id
        self.status = status
        super().__init__(f"task {task_id!r} has already finished ({status})")


class TaskRunning(TaskStreamError, RuntimeError):
    """The operation needs a finished task, and this one is still pending or running."""

    def __init__(self, task_id: str, status: str):
        self.task_id = task_id
        self.status = status
        super().__init__(f"task {task_id!r} is still {status}")


class TaskCancelled(TaskStreamError, Exception):
    """Raised inside a task at its next progress step after someone cancelled it."""
