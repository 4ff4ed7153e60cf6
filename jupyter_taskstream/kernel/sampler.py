"""The runtime's one background view thread: samples tasks, feeds watchers and the hub.

At most every ``config.view_interval`` seconds (10/s) it visits each task that needs it:
folds the count into rate and eta, queues changed progress for the hub (latest value
wins), and calls ``watch()`` callbacks whose view changed, plus once more with the final
state. Doing this here, not in the task's thread, is what keeps the task's hot loop free of
clocks, locks and I/O. The thread starts on first need and sleeps while no task is live.
"""

from __future__ import annotations

import contextvars
import threading
from typing import TYPE_CHECKING, Callable

from .diagnostics import report_once

if TYPE_CHECKING:
    from .task import Task

__all__ = ["ViewPump"]


class ViewPump:
    """Periodic sampler of live tasks, run on one daemon thread."""

    def __init__(self, interval: Callable[[], float], clock: Callable[[], float]):
        self._interval = interval
        self._clock = clock
        self._tasks: dict[str, Task] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopped = False
        #: Passes started and passes done, for `settle`.
        self._passes = threading.Condition()
        self._started = self._done = 0

    def add(self, task: Task) -> None:
        """Visit ``task`` until it has ended and every watcher had its final call."""
        with self._lock:
            self._tasks[task.id] = task
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="taskstream-views", daemon=True)
                # An empty context: the pump must never count as part of a task.
                contextvars.Context().run(self._thread.start)
        self._wake.set()

    def wake(self) -> None:
        """Run a pass now (e.g. a task just ended)."""
        self._wake.set()

    def settle(self, timeout: float) -> bool:
        """Wait, at most ``timeout`` seconds, for a whole pass that starts after now: watchers
        of tasks that just ended have had their final call when it returns True."""
        if self._thread is None or self._thread is threading.current_thread():
            return True
        with self._passes:
            target = self._started + 1
            self._wake.set()
            return self._passes.wait_for(lambda: self._done >= target, timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread after a last pass."""
        self._stopped = True
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def run_once(self) -> bool:
        """One pass over the tasks; True while some still need visiting."""
        with self._lock:
            tasks = list(self._tasks.values())
        now = self._clock()
        # A little under the interval, so a pass that starts a hair early still counts.
        min_gap = self._interval() * 0.9
        for task in tasks:
            for watcher, snapshot in task.tick(now, min_gap):
                try:
                    watcher.callback(snapshot)
                except Exception as e:
                    report_once(("watch", id(watcher.callback)), f"a watch() callback of task {task.id} failed: {e!r}")
            with self._lock:
                if not task.needs_visits():
                    self._tasks.pop(task.id, None)
        with self._lock:
            return bool(self._tasks)

    def _run(self) -> None:
        while True:
            self._wake.clear()
            with self._passes:
                self._started += 1
                started = self._started
            busy = self.run_once()
            with self._passes:
                self._done = started
                self._passes.notify_all()
            if self._stopped:
                return
            self._wake.wait(self._interval() if busy else None)
