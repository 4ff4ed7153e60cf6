"""Kernel command logs: what the hub asks a kernel's runtime to do (``cancel``, ``start``).

One bounded `EventLog` per kernel, read by that kernel's runtime over
``/taskstream/api/kernels/{kernel_id}/commands`` (SSE, publish secret only). Command ids
come from the registry's one id counter, so a runtime resumes its stream by id like any
other reader.
"""

from __future__ import annotations

from typing import Iterable

from .eventlog import Event, EventLog

__all__ = ["KernelCommands"]

#: Commands kept per kernel: a runtime that reconnects finds the recent ones.
COMMANDS_KEPT = 1000


class KernelCommands:
    """The command logs of every kernel that owns (or is asked to start) a task."""

    def __init__(self) -> None:
        self._logs: dict[str, EventLog] = {}

    def log(self, kernel_id: str) -> EventLog:
        """The command log a kernel's runtime reads; a new one if it had none or it closed."""
        log = self._logs.get(kernel_id)
        if log is None or log.closed:
            log = self._logs[kernel_id] = EventLog(COMMANDS_KEPT)
        return log

    def append(self, kernel_id: str, event: Event) -> None:
        """Queue a command for a kernel's runtime."""
        self.log(kernel_id).append(event)

    def has_reader(self, kernel_id: str, readers: Iterable) -> bool:
        """True if one of ``readers`` (subscriptions) reads that kernel's command log."""
        log = self._logs.get(kernel_id)
        return log is not None and any(sub.log is log for sub in readers)

    def close(self, kernel_id: str) -> None:
        """The kernel is gone: end its runtime's command stream."""
        log = self._logs.pop(kernel_id, None)
        if log is not None:
            log.close()

    def close_all(self) -> None:
        """End every command stream (server shutdown)."""
        for log in self._logs.values():
            log.close()
