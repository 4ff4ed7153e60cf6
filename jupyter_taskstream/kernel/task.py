"""`Task`: one unit of observable work in the kernel: its state, its lifecycle, its API.

A task is made by `jupyter_taskstream.task` (context manager or decorator), by
`jupyter_taskstream.run` (a background thread) or by `jupyter_taskstream.progress` (a loop
with no task around it). The counting paths (`Task.update`, the progress loop) only add
to a number and read a flag; clocks, snapshots, the hub and the watchers are the job of
the runtime's one view thread (`sampler.ViewPump`), which samples tasks at most 10 times a
second. That is what keeps per-item cost low and the views coalesced.

The task's concerns live beside it, one module each, and it holds one of each:
`tasklog.TaskLog` (captured output as lines), `reporting.Reporter` (rate, ETA and what the
hub is told), `watchers.Watchers` (``watch()`` callbacks) and `interrupt.ThreadInterrupter`
(the grace-period interrupt of a cancel). The runtime, the progress loop, capture and the
pump use the task only through the methods under "runtime interface" below.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import sys
import threading
import time
import traceback
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, Callable

from ..errors import TaskCancelled, TaskFinished, TaskRunning, ValidationError
from ..protocol import TaskState, check_count, check_unit, display_status, new_task_id, validate_name, validate_task_id
from .context import current_task, default_runtime
from .interrupt import ThreadInterrupter
from .reporting import Reporter
from .tasklog import TaskLog
from .watchers import Watcher, Watchers

if TYPE_CHECKING:
    from .runtime import Runtime

__all__ = ["Task"]

_PACKAGE = __name__.rpartition(".")[0]
#: When an interrupt would land in the runtime's own code, try again this much later.
_INTERRUPT_RETRY = 0.05

class Task:
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

    def __init__(
        self,
        name: str,
        total: float | None = None,
        unit: str = "it",
        *,
        task_id: str | None = None,
        runtime: Runtime | None = None,
    ):
        validate_name(name)
        check_count(total, "total", nullable=True)
        check_unit(unit)
        self.id = new_task_id() if task_id is None else validate_task_id(task_id, "task_id")
        self._runtime = runtime
        now = runtime.wall() if runtime is not None else time.time()
        self._state = TaskState(self.id, name, now=now, total=total, unit=unit)
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._cancel_requested = False
        self._closed = False
        self._t0 = 0.0
        self._report = Reporter(self.id)
        self._log = TaskLog(self._lock, self._output_waiting, self._report.lines)
        #: Where `capture` appends what the task's code writes (runtime interface; see `capture`).
        self.pending_output = self._log.pending
        self._watchers = Watchers()
        self._interrupter = ThreadInterrupter()
        self._children: list[Task] = []
        self._driver: Any = None  # the progress loop counting for this task, if any
        self._token: Any = None
        self._result: Any = None
        self._exception: BaseException | None = None

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

    def snapshot(self) -> dict[str, Any]:
        """The task in the hub's snapshot shape, plus local ``cancelling``, ``log``, ``partial``, ``elapsed``."""
        runtime = self._runtime
        with self._lock:
            self._log.split()
            if runtime is not None and self._state.status == "running":
                self._sample_driver()
                self._report.measure(self._state, runtime.clock())
            snap = self._state.snapshot()
            snap["last_event_id"] = None  # only the hub numbers events
            snap["cancelling"] = snap["display_status"] == "cancelling"
            snap["log"] = self._log.tail_dicts()
            snap["partial"] = self._log.partial
            snap["elapsed"] = self._elapsed()
        return snap

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

    def cancel(self) -> bool:
        """Ask the task to stop; False if it has already ended.

        The task's code gets `TaskCancelled` at its next progress step, `update` or `set`;
        code that never calls the runtime gets it raised in its thread after
        ``config.cancel_grace_period`` seconds. Tasks made by nested progress() loops
        are cancelled with it.
        """
        with self._lock:
            if self._state.terminal:
                return False
            first = not self._cancel_requested
            self._cancel_requested = True
            self._state.cancel_requested = True
            children = list(self._children)
            self._log.split()  # lines printed before the request reach the hub before it
        for child in children:
            child.cancel()
        if first and not self._state.terminal:
            self._report.cancel_requested(self._state.status)
        if first and self._state.status != "pending":
            runtime = self._resolve_runtime()
            runtime.schedule(runtime.config.cancel_grace_period, self._interrupt)
            runtime.pump_task(self)
        return True

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
        self.bind_thread(threading.get_ident(), sys._getframe(1))
        self._token = current_task.set(self)
        return self

    def __exit__(
        self, etype: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        try:
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

    # ---- runtime interface: lifecycle (the runtime, progress loops) --------------------

    def begin(self) -> None:
        """pending -> running: connect to the runtime's hub, tell it, register with the runtime."""
        runtime = self._resolve_runtime()
        kernel_id = runtime.kernel_id  # connects once: kernel id, publisher, command listener
        with self._lock:
            status = self._state.status
            if status != "pending":
                if self._state.terminal:
                    raise TaskFinished(self.id, status)
                raise TaskRunning(self.id, status)
            self._t0 = runtime.clock()
            self._state.kernel_id = kernel_id
            self._report.publisher = runtime.publisher
            self._state.apply("status", {"status": "running"}, runtime.wall())
            self._log.keep = runtime.config.log_lines
        self._report.announce(self._state)
        runtime.task_started(self)

    def bind_thread(self, thread_id: int, frame: FrameType | None) -> None:
        """Record the thread and frame the task's code runs in, for the grace-period interrupt."""
        self._interrupter.bind(thread_id, frame)

    def finish(self, exc: BaseException | None = None, result: Any = None) -> bool:
        """Enter the terminal status for ``exc`` (None: completed); False if it had ended already."""
        self._interrupter.close()
        runtime = self._resolve_runtime()
        status, message, error = _outcome(exc)
        with self._lock:
            if self._closed:
                return False
            self._closed = True  # from here on, writes in this context go to the real streams
            self._log.close()
            state = self._state
            elapsed = self._elapsed()
            if elapsed and state.current:
                state.rate = state.current / elapsed  # the final figure is the whole run's average
            state.eta = None
            self._report.progress(state, force=True)
            data: dict[str, Any] = {"status": status}
            if message:
                data["message"] = message
            if error is not None:
                data["error"] = error
            state.apply("status", data, runtime.wall())
            self._report.status(data)
            self._result, self._exception = result, exc
            children = list(self._children)
            self._children.clear()
            self._driver = None
        for child in children:
            child.finish(exc)
        self._done.set()
        runtime.task_finished(self)
        return True

    def cancelled_error(self) -> TaskCancelled:
        """The `TaskCancelled` this task raises in its code."""
        return TaskCancelled(f"task {self.name!r} ({self.id}) was cancelled")

    # ---- runtime interface: progress loops -----------------------------------------------

    def drive(self, loop: Any, *, total: float | None = None, unit: str | None = None, message: str | None = None) -> bool:
        """Let ``loop`` count for this task (its count restarts at 0); False if another does or it ended."""
        with self._lock:
            if self._driver is not None or self._closed:
                return False
            self._driver = loop
            state = self._state
            state.current = 0
            if total is not None:
                state.total = total
            if unit is not None:
                state.unit = unit
            if message:
                state.message = message
            return True

    def release(self, loop: Any, count: float) -> None:
        """``loop`` is over at ``count``: store it, and stop being driven by it."""
        with self._lock:
            if not self._closed:
                self._state.current = count
            if self._driver is loop:
                self._driver = None

    def count_to(self, count: float, *, live: bool = False) -> None:
        """Store a driving loop's count; ``live`` loops are also sampled by the pump, so never go back."""
        if not live:
            self._state.current = count  # the loop's own checkpoint: one store, no lock
            return
        with self._lock:
            self._state.current = max(count, self._state.current)

    def add_child(self, child: Task) -> None:
        """``child`` (a nested loop's own task) ends with this one and is cancelled with it."""
        with self._lock:
            self._children.append(child)
            cancelled = self._cancel_requested
        if cancelled:
            child.cancel()

    # ---- runtime interface: the view pump ----------------------------------------------

    def tick(self, now: float, min_gap: float) -> list[tuple[Watcher, dict]]:
        """One pump step: sample rate, publish progress, return the watchers to call and their snapshot.

        ``min_gap`` keeps every view at most 1/min_gap per second even when the pump is
        woken more often; the final call after the end is never held back.
        """
        with self._lock:
            self._log.split()
            terminal = self._state.terminal
            if not terminal:
                self._sample_driver(now)
                self._report.measure(self._state, now)
                if now - self._report.published_at >= min_gap:
                    self._report.published_at = now
                    self._report.progress(self._state)
            if not self._watchers:
                return []
            key = self._view_key()
            due = self._watchers.due(key, terminal, now, min_gap)
        if not due:
            return []
        snap = self.snapshot()
        Watchers.called(due, key, terminal, now)
        return [(w, snap) for w in due]

    def needs_visits(self) -> bool:
        """True while the pump has something to do for this task."""
        return not self._state.terminal or self._watchers.waiting_for_final()

    # ---- internals -----------------------------------------------------------------------

    def _resolve_runtime(self) -> Runtime:
        if self._runtime is None:
            self._runtime = default_runtime()
        return self._runtime

    def _interrupt(self) -> None:
        """Grace period over: raise TaskCancelled in the task's thread (runs on a timer thread)."""
        if self._state.terminal:
            return
        runtime = self._resolve_runtime()
        outcome = self._interrupter.fire()
        if outcome == ThreadInterrupter.RETRY_SOON:
            runtime.schedule(_INTERRUPT_RETRY, self._interrupt)
        elif outcome == ThreadInterrupter.ABANDONED:
            # The task's block was left without reaching finish (an interrupt landed in the
            # runtime's exit path): end it here so it does not look like it runs forever.
            self.finish(TaskCancelled(f"task {self.name!r} was cancelled"))
        elif outcome == ThreadInterrupter.AGAIN:
            runtime.schedule(runtime.config.cancel_grace_period, self._interrupt)

    def _drain_output(self) -> None:
        """Split what the task's code wrote into lines now (the publisher's sender calls this)."""
        with self._lock:
            self._log.split()

    def _output_waiting(self) -> None:
        """Output was written since the last split; called from the writing thread, never blocks."""
        self._report.output_waiting(self._drain_output)

    def _sample_driver(self, now: float | None = None) -> None:
        """Fold a driving loop's live position into the count; with ``now``, a pump visit (lock held)."""
        driver = self._driver
        if driver is None:
            return
        if now is not None:
            driver.nudge(now)
        count = driver.live_count()
        if count is not None and count > self._state.current:
            self._state.current = count

    def _elapsed(self) -> float | None:
        runtime = self._runtime
        if runtime is None or self._state.started is None:
            return None
        end = self._state.finished
        if end is not None:
            return max(end - self._state.started, 0.0)
        return max(runtime.clock() - self._t0, 0.0)

    def _view_key(self) -> tuple:
        """What a watcher would see change (lock held)."""
        s = self._state
        return (s.status, self._cancel_requested, s.current, s.total, s.message, s.rate, self._log.count, self._log.partial_raw)


def _outcome(exc: BaseException | None) -> tuple[str, str | None, dict | None]:
    """``(status, message, error)`` for a task that ended with ``exc``."""
    if exc is None:
        return "completed", None, None
    if isinstance(exc, (TaskCancelled, KeyboardInterrupt, asyncio.CancelledError)):
        return "cancelled", "interrupted" if isinstance(exc, KeyboardInterrupt) else "cancelled", None
    tb = exc.__traceback__
    # The user's code is what matters: drop the runtime's own frames from the top.
    while tb is not None and str(tb.tb_frame.f_globals.get("__name__", "")).startswith(_PACKAGE + "."):
        tb = tb.tb_next
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    error = {"type": type(exc).__name__, "message": str(exc), "traceback": text}
    return "failed", f"{type(exc).__name__}: {exc}", error
