"""Hooks of work a task started elsewhere: what to do when it is asked to stop, and as it ends.

Integrations use them (the Dask one cancels its futures on a cancel and settles what
finished on the workers as the task ends); `TaskCore` calls them, never holding its lock.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

__all__ = ["TaskHooks", "run_hooks"]


class TaskHooks:
    """`on_cancel` and `on_ending`, mixed into `TaskCore` (which keeps the two lists)."""

    _lock: threading.Lock
    _cancel_requested: bool
    _cancel_callbacks: list[Callable[[Any], Any]]
    _ending_callbacks: list[Callable[[Any], Any]]

    def on_cancel(self, callback: Callable[[Any], Any]) -> None:
        """Call ``callback(task)`` once when the task is asked to stop (at once if it was already).

        It runs in the thread that calls `cancel` and must not block; errors are ignored.
        """
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        with self._lock:
            if not self._cancel_requested:
                self._cancel_callbacks.append(callback)
                return
        run_hooks([callback], self)

    def on_ending(self, callback: Callable[[Any], Any]) -> None:
        """Call ``callback(task)`` once as the task ends, before its final state is fixed.

        It runs in the task's thread and may still `log` and `set`; errors are ignored.
        """
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        with self._lock:
            self._ending_callbacks.append(callback)


def run_hooks(callbacks: list[Callable[[Any], Any]], task: Any) -> None:
    """Call each hook with the task; a broken one must not keep a cancel from reaching the task."""
    for callback in callbacks:
        try:
            callback(task)
        except Exception:
            pass
