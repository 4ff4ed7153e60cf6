"""Progress coalescing: at most ``progress_rate_hz`` progress events per task, latest value wins.

A tight loop may report progress thousands of times a second; readers need a few updates a
second. The gate sends one at once, holds the rest behind one timer per task and sends the
latest value when it fires, and leaves out ``unit`` and ``message`` while they do not change.
A terminal status flushes a pending value first, so the last progress before the end is seen.
"""

from __future__ import annotations

import asyncio
from typing import Callable

from ..protocol import TaskState

__all__ = ["ProgressGates"]


class _Gate:
    """One task's gate: when its last progress went out, what it said, and a pending flush."""

    __slots__ = ("last_sent", "timer", "unit", "message")

    def __init__(self) -> None:
        self.last_sent = float("-inf")
        #: what the last progress event said, so unchanged unit and message are left out
        self.unit: str | None = None
        self.message: str | None = None
        self.timer: asyncio.TimerHandle | None = None


class ProgressGates:
    """The gates of every running task; ``send(task, data)`` emits a progress event."""

    def __init__(
        self,
        send: Callable[[TaskState, dict], object],
        clock: Callable[[], float],
        rate_hz: Callable[[], float],
        is_live: Callable[[TaskState], bool],
    ):
        self._send = send
        self._clock = clock
        #: read at each update, so the registry's option is the one source
        self._rate_hz = rate_hz
        #: still the registry's unfinished task (a flush may fire after a delete)
        self._is_live = is_live
        self._gates: dict[str, _Gate] = {}

    def changed(self, task: TaskState, now: float) -> None:
        """The task's progress changed: send it now, or schedule the latest value for later."""
        gate = self._gates.setdefault(task.id, _Gate())
        rate = self._rate_hz()
        interval = 1.0 / rate if rate > 0 else 0.0
        if gate.timer is not None:
            return  # a flush is already scheduled; it will send the latest value
        wait = gate.last_sent + interval - now
        if wait <= 0:
            gate.last_sent = now
            self._send(task, self._data(task, gate))
            return
        gate.timer = asyncio.get_running_loop().call_later(wait, self.flush, task)

    def flush(self, task: TaskState) -> None:
        """Send a held value now (its timer fired, or the task is about to end)."""
        gate = self._gates.get(task.id)
        if gate is None or gate.timer is None:
            return
        gate.timer.cancel()
        gate.timer = None
        if self._is_live(task):
            gate.last_sent = self._clock()
            self._send(task, self._data(task, gate))

    def drop(self, task_id: str) -> None:
        """Forget a task that ended (its held value, if any, was flushed before)."""
        gate = self._gates.pop(task_id, None)
        if gate is not None and gate.timer is not None:
            gate.timer.cancel()

    def close(self) -> None:
        """Cancel every pending flush (server shutdown)."""
        for gate in self._gates.values():
            if gate.timer is not None:
                gate.timer.cancel()
        self._gates.clear()

    @staticmethod
    def _data(task: TaskState, gate: _Gate) -> dict:
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
            data["bars"] = bars  # the child bars that changed since the last progress event: one budget per task
        return data
