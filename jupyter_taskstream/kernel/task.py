"""`Task`: one unit of observable work in the kernel, as its users hold it.

A task is made by `jupyter_taskstream.task` (context manager or decorator), by
`jupyter_taskstream.run` (a background thread) or by `jupyter_taskstream.progress` (a loop
with no task around it). The counting paths (`Task.update`, the progress loop) only add
to a number and read a flag; clocks, snapshots, the hub and the watchers are the job of
the runtime's one view thread (`sampler.ViewPump`), which samples tasks at most 10 times a
second. That is what keeps per-item cost low and the views coalesced.

This module is the user-facing API; the state, its parts and the lifecycle the runtime
drives are in the base class, `taskcore.TaskCore`.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import sys
import threading
from types import TracebackType
from typing import Any, Callable

from ..errors import ValidationError
from ..protocol import check_count, display_status
from . import capture
from .context import current_task
from .taskcore import TaskCore

__all__ = ["Task"]


class Task(TaskCore):
    """One task: counts progress, keeps captured output, reports to views and the hub.

    Parameters
    ----------
    name : str
        Shown in every view; 1-200 characters.
    total : float, optional
        Expected number of items; None when unknown.
    unit : str
        What is counted, e.g. ``"it"``, ``"files"``, ``"B"``.
    task_id : str, optional
        Id to use (1-64 of ``[A-Za-z0-9_-]``); a random one by default.

    Use it as a context manager (``with ts.task("load") as t: ...``) or as a decorator
    (``@ts.task("load")`` makes a new task on every call). Leaving the block normally
    ends it ``completed``; by an exception, ``failed`` with the traceback; by
    `TaskCancelled` (or KeyboardInterrupt), ``cancelled``. A task inside another is a new,
    separate task (the hub has no nesting); output goes to the innermost one.
    """

    # ---- what views read ---------------------------------------------------------------

    @property
    def name(self) -> str:
        """The task's name."""
        return self._state.name

    @property
    def status(self) -> str:
        """``pending``, ``running``, ``cancelling`` (asked to stop), ``completed``, ``failed`` or ``cancelled``."""
        return display_status(self._state.status, self._cancel_requested)

    @property
    def current(self) -> float:
        """Items done so far."""
        driver = self._driver
        if driver is not None and driver.live:
            with self._lock:
                self._sample_driver()
        return self._state.current

    @property
    def total(self) -> float | None:
        """Items expected, or None when unknown."""
        return self._state.total

    @property
    def cancel_requested(self) -> bool:
        """True once someone asked this task to stop."""
        return self._cancel_requested

    @property
    def done(self) -> bool:
        """True once the task has completed, failed or been cancelled."""
        return self._done.is_set()

    def watch(self, callback: Callable[[dict], Any]) -> Callable[[], None]:
        """Call ``callback(snapshot)`` on changes, at most 10/s, from the runtime's view thread.

        The callback is always called once more with the final state after the task ends
        (at once if it has ended already). Returns a function that stops watching.
        """
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        with self._lock:
            watcher = self._watchers.add(callback)
        self._resolve_runtime().pump_task(self)

        def unwatch() -> None:
            with self._lock:
                self._watchers.remove(watcher)

        return unwatch

    # ---- what the task's code calls ----------------------------------------------------

    def update(self, n: float = 1) -> None:
        """Add ``n`` items done; raises `TaskCancelled` once the task was cancelled."""
        if self._cancel_requested:
            raise self.cancelled_error()
        if type(n) is not int or n < 0:
            check_count(n, "n")
        self._main_touched = True  # the code counts the main bar itself: loops inside are children
        with self._lock:
            self._state.current += n

    def set(self, current: float | None = None, total: float | None = None, message: str | None = None) -> None:
        """Set the count, the expected total and/or a status message; None leaves a field as it is."""
        if self._cancel_requested:
            raise self.cancelled_error()
        check_count(current, "current", nullable=True)
        check_count(total, "total", nullable=True)
        if message is not None and not isinstance(message, str):
            raise ValidationError("message", f"must be a string, not {type(message).__name__}")
        with self._lock:
            if current is not None:
                self._main_touched = True
                self._state.current = current
            if total is not None:
                self._state.total = total
            if message is not None:
                self._state.message = message

    def log(self, text: str) -> None:
        """Add ``text`` to the task's log as one or more lines (stream ``stdout``)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, not {type(text).__name__}")
        with self._lock:
            self._log.split()  # lines printed before stay before
            self._log.add("stdout", text.rstrip("\n").split("\n"))

    def raise_if_cancelled(self) -> None:
        """Raise `TaskCancelled` if the task was asked to stop (a check for code that counts nothing)."""
        if self._cancel_requested:
            raise self.cancelled_error()

    # ---- what the caller of a task uses ------------------------------------------------

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the task ends or ``timeout`` seconds pass; True if it has ended."""
        return self._done.wait(timeout)

    def result(self, timeout: float | None = None) -> Any:
        """The return value of a `run` task; re-raises the exception the task ended with."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"task {self.name!r} is still {self.status} after {timeout} s")
        if self._exception is not None:
            if isinstance(self._exception, (KeyboardInterrupt, asyncio.CancelledError)):
                raise self.cancelled_error() from self._exception
            raise self._exception
        return self._result

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """The exception the task ended with, or None; waits like `result`."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"task {self.name!r} is still {self.status} after {timeout} s")
        return self._exception

    # ---- context manager and decorator -------------------------------------------------

    def __enter__(self) -> Task:
        self.begin()
        frame = sys._getframe(1)
        self.bind_thread(threading.get_ident(), frame)
        self._token = current_task.set(self)
        self._claim = capture.claim(self.pending_output, frame)
        return self

    def __exit__(
        self, etype: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        try:
            capture.release(self.pending_output, self._claim)
            self.finish(exc)
        finally:
            try:
                current_task.reset(self._token)
            except ValueError:  # left in another context than it was entered (rare in asyncio)
                current_task.set(None)
        return False

    def __call__(self, fn: Callable) -> Callable:
        """Decorate ``fn`` so that every call runs as a new task with this name and total."""
        if not callable(fn):
            raise TypeError(f"task() decorates a callable, not {type(fn).__name__}")
        name, total, unit, runtime = self.name, self._state.total, self._state.unit, self._runtime
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with Task(name, total, unit, runtime=runtime):
                    return await fn(*args, **kwargs)

            return run_async

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            with Task(name, total, unit, runtime=runtime):
                return fn(*args, **kwargs)

        return run

    def __repr__(self) -> str:
        total = "" if self.total is None else f"/{self.total:g}"
        return f"<Task {self.id} {self.name!r} {self.status} {self.current:g}{total}>"
