"""`Task`: one unit of observable work in the kernel, its state, output, cancel and views.

A task is made by `jupyter_taskstream.task` (context manager or decorator), by
`jupyter_taskstream.run` (a background thread) or by `jupyter_taskstream.progress` (a loop
with no task around it). The counting paths (`Task.update`, the progress loop) only add
to a number and read a flag; clocks, snapshots, the hub and the watchers are the job of
the runtime's one pump thread (`pump.ViewPump`), which samples tasks at most 10 times a
second. That is what keeps per-item cost low and the views coalesced.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import math
import sys
import threading
import time
import traceback
from collections import deque
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, Callable

from . import interrupt
from .capture import MAX_PARTIAL_CHARS, LineBuffer, PendingOutput, no_run_over, split_runs
from .context import current_task
from ..errors import TaskCancelled, TaskFinished, TaskRunning, ValidationError
from ..protocol import TaskState, new_task_id, validate_name, validate_task_id

if TYPE_CHECKING:
    from .runtime import Runtime

__all__ = ["Task", "check_count", "check_unit"]

_PACKAGE = __name__.rpartition(".")[0]
#: Seconds between two rate samples at least; closer samples are too noisy to use.
_MIN_RATE_INTERVAL = 0.05
#: Weight of the newest sample in the moving average of the rate (tqdm's default smoothing).
_RATE_SMOOTHING = 0.3
#: When an interrupt would land in the runtime's own code, try again this much later.
_INTERRUPT_RETRY = 0.05


def check_count(value: Any, field: str, *, nullable: bool = False) -> Any:
    """A finite number >= 0 (or None when ``nullable``); `ValidationError` naming ``field``."""
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(field, f"must be a number, not {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValidationError(field, f"must be a finite number >= 0, not {value!r}")
    return value


def check_unit(unit: Any) -> str:
    """A unit name: a non-empty string of at most 50 characters."""
    if not isinstance(unit, str) or not unit or len(unit) > 50:
        raise ValidationError("unit", "must be a non-empty string of at most 50 characters")
    return unit


class _Watcher:
    __slots__ = ("callback", "key", "final", "called_at")

    def __init__(self, callback: Callable[[dict], Any]):
        self.callback = callback
        self.key: tuple | None = None
        self.final = False
        self.called_at = float("-inf")


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
        self._interrupt_lock = threading.Lock()
        self._done = threading.Event()
        self._cancel_requested = False
        self._closed = False
        self._pub: Any = None
        self._t0 = 0.0
        self._rate_sample: tuple[float, float] | None = None
        self._published: tuple | None = None
        self._published_at = float("-inf")
        #: The latest captured lines as ``(stream, lines)`` batches, at least ``_log_keep``
        #: lines when there are that many; `snapshot` makes them dicts (not every line pays).
        self._log: deque[tuple[str, list[str]]] = deque()
        self._log_keep = 100
        self._log_held = 0
        self._log_count = 0
        self._buffers = {"stdout": LineBuffer(), "stderr": LineBuffer()}
        self._output = PendingOutput(self._lock, self._output_waiting)
        self._last_stream = "stdout"
        self._watchers: list[_Watcher] = []
        self._children: list[Task] = []
        self._driver: Any = None  # the progress loop counting for this task, if any
        self._cancel_callbacks: list[Callable[[Task], Any]] = []
        self._ending_callbacks: list[Callable[[Task], Any]] = []
        self._thread_id: int | None = None
        self._entry_frame: FrameType | None = None
        self._asyncio_task: Any = None
        self._interruptible = False
        self._interrupt_sent = False
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
        """``pending``, ``running``, ``cancelling`` (local only), ``completed``, ``failed`` or ``cancelled``."""
        status = self._state.status
        if self._cancel_requested and status == "running":
            return "cancelling"
        return status

    @property
    def current(self) -> float:
        """Items done so far."""
        driver = self._driver
        if driver is not None and driver.left is not None:
            with self._lock:
                if self._driver is driver:
                    driver.sample()
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
            self._split_output()
            if runtime is not None and self._state.status == "running":
                if self._driver is not None:
                    self._driver.sample()
                self._measure(runtime.clock())
            snap = self._state.snapshot()
            snap["last_event_id"] = None  # only the hub numbers events
            snap["cancelling"] = self._cancel_requested and not self._state.terminal
            snap["log"] = self._log_tail()
            snap["partial"] = self._buffers[self._last_stream].peek()
            snap["elapsed"] = self._elapsed()
        return snap

    def watch(self, callback: Callable[[dict], Any]) -> Callable[[], None]:
        """Call ``callback(snapshot)`` on changes, at most 10/s, from the runtime's pump thread.

        The callback is always called once more with the final state after the task ends
        (at once if it has ended already). Returns a function that stops watching.
        """
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        watcher = _Watcher(callback)
        with self._lock:
            self._watchers.append(watcher)
        self._resolve_runtime().pump_task(self)

        def unwatch() -> None:
            with self._lock:
                if watcher in self._watchers:
                    self._watchers.remove(watcher)

        return unwatch

    # ---- what the task's code calls ----------------------------------------------------

    def update(self, n: float = 1) -> None:
        """Add ``n`` items done; raises `TaskCancelled` once the task was cancelled."""
        if self._cancel_requested:
            raise self._cancelled_error()
        if type(n) is not int or n < 0:
            check_count(n, "n")
        with self._lock:
            self._state.current += n

    def set(self, current: float | None = None, total: float | None = None, message: str | None = None) -> None:
        """Set the count, the expected total and/or a status message; None leaves a field as it is."""
        if self._cancel_requested:
            raise self._cancelled_error()
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
            self._split_output()  # lines printed before stay before
            self._add_lines("stdout", text.rstrip("\n").split("\n"))

    def on_cancel(self, callback: Callable[[Task], Any]) -> None:
        """Call ``callback(task)`` once when the task is asked to stop (at once if it was already).

        For work the task started elsewhere (an integration cancels its Dask futures here).
        It runs in the thread that calls `cancel` and must not block; errors are ignored.
        """
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        with self._lock:
            if not self._cancel_requested:
                self._cancel_callbacks.append(callback)
                return
        _call_quietly(callback, self)

    def on_ending(self, callback: Callable[[Task], Any]) -> None:
        """Call ``callback(task)`` once as the task ends, before its final state is fixed.

        It runs in the task's thread and may still `log` and `set` (an integration settles
        work that finished elsewhere here); errors are ignored.
        """
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        with self._lock:
            self._ending_callbacks.append(callback)

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
            callbacks, self._cancel_callbacks = self._cancel_callbacks, []
            self._split_output()  # lines printed before the request reach the hub before it
        for child in children:
            child.cancel()
        for callback in callbacks:
            _call_quietly(callback, self)
        if first and self._pub is not None and not self._state.terminal:
            # Let every viewer of the hub see the request, wherever it came from.
            self._pub.event(self.id, "status", {"status": self._state.status, "cancel_requested": True})
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
                raise self._cancelled_error() from self._exception
            raise self._exception
        return self._result

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """The exception the task ended with, or None; waits like `result`."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"task {self.name!r} is still {self.status} after {timeout} s")
        return self._exception

    # ---- context manager and decorator -------------------------------------------------

    def __enter__(self) -> Task:
        self._start()
        self._bind(threading.get_ident(), sys._getframe(1))
        self._token = current_task.set(self)
        return self

    def __exit__(
        self, etype: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        try:
            self._finish(exc)
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

    # ---- lifecycle (runtime internals) -------------------------------------------------

    def _resolve_runtime(self) -> Runtime:
        if self._runtime is None:
            from .runtime import default_runtime

            self._runtime = default_runtime()
        return self._runtime

    def _start(self) -> None:
        """pending -> running: register with the runtime, tell the hub."""
        runtime = self._resolve_runtime()
        with self._lock:
            status = self._state.status
            if status != "pending":
                if self._state.terminal:
                    raise TaskFinished(self.id, status)
                raise TaskRunning(self.id, status)
            self._t0 = runtime.clock()
            self._state.apply("status", {"status": "running"}, runtime.wall())
            self._log_keep = runtime.config.log_lines
        runtime.task_started(self)

    def _bind(self, thread_id: int, frame: FrameType | None) -> None:
        """Record where the task's code runs, for the grace-period interrupt."""
        self._thread_id = thread_id
        self._entry_frame = frame
        if frame is not None and interrupt.is_suspendable(frame) and "asyncio" in sys.modules:
            try:
                self._asyncio_task = asyncio.current_task()
            except RuntimeError:
                self._asyncio_task = None
        self._interruptible = True

    def _finish(self, exc: BaseException | None = None, result: Any = None) -> bool:
        """Enter the terminal status for ``exc``; False if the task had already ended."""
        self._close_interrupts()
        with self._lock:
            ending, self._ending_callbacks = self._ending_callbacks, []
        for callback in ending:
            _call_quietly(callback, self)
        runtime = self._resolve_runtime()
        status, message, error = _outcome(exc)
        if status == "failed" and self._cancel_requested and isinstance(exc, concurrent.futures.CancelledError):
            # Work the cancel stopped elsewhere (Dask futures, executor items) ends the task as cancelled.
            status, message, error = "cancelled", "cancelled", None
        with self._lock:
            if self._closed:
                return False
            self._closed = True  # from here on, writes in this context go to the real streams
            self._output.open = False
            self._split_output()
            for stream, buffer in self._buffers.items():
                line = buffer.flush()
                if line is not None:
                    self._add_lines(stream, [line])
            state = self._state
            elapsed = self._elapsed()
            if elapsed and state.current:
                state.rate = state.current / elapsed
            state.eta = None
            self._publish_progress(force=True)
            data: dict[str, Any] = {"status": status}
            if message:
                data["message"] = message
            if error is not None:
                data["error"] = error
            state.apply("status", data, runtime.wall())
            if self._pub is not None:
                self._pub.event(self.id, "status", data)
            self._result, self._exception = result, exc
            children = [c for c in self._children if not c._closed]
            self._children.clear()
            self._driver = None
            self._entry_frame = None
        for child in children:
            child._finish(exc)
        self._done.set()
        runtime.task_finished(self)
        return True

    def _close_interrupts(self) -> None:
        """No asynchronous TaskCancelled may reach the thread after this returns."""
        with self._interrupt_lock:
            self._interruptible = False
            if self._interrupt_sent and self._thread_id is not None:
                interrupt.clear_pending(self._thread_id)

    def _interrupt(self) -> None:
        """Grace period over: raise TaskCancelled in the task's thread (runs on a timer thread)."""
        runtime = self._resolve_runtime()
        abandoned = False
        with self._interrupt_lock:
            if self._state.terminal or not self._interruptible:
                return
            frame, thread_id = self._entry_frame, self._thread_id
            if frame is None or thread_id is None:
                return
            if interrupt.is_suspendable(frame):
                # A coroutine leaves the stack at every await: cancel its asyncio task instead.
                atask = self._asyncio_task
                if atask is not None and not atask.done():
                    atask.get_loop().call_soon_threadsafe(atask.cancel)
                return
            on_stack, in_runtime = interrupt.frame_is_running(thread_id, frame)
            if not on_stack:
                abandoned = True
            elif in_runtime:
                runtime.schedule(_INTERRUPT_RETRY, self._interrupt)
                return
            elif interrupt.raise_in_thread(thread_id):
                self._interrupt_sent = True
        if abandoned:
            # The task's block was left without reaching _finish (an interrupt landed in the
            # runtime's exit path): end it here so it does not look like it runs forever.
            self._finish(TaskCancelled(f"task {self.name!r} was cancelled"))
            return
        # Code that catches Exception swallows TaskCancelled: keep asking while it runs.
        runtime.schedule(runtime.config.cancel_grace_period, self._interrupt)

    # ---- internals used by capture, progress and the pump -------------------------------

    def _cancelled_error(self) -> TaskCancelled:
        return TaskCancelled(f"task {self.name!r} ({self.id}) was cancelled")

    def _drain_output(self) -> None:
        """Split what the task's code wrote into lines now (the publisher's sender calls this)."""
        with self._lock:
            self._split_output()

    def _output_waiting(self) -> None:
        """Output was written since the last split: have the hub's sender split and send it now.

        Called from the writing thread, so it must not block. Without a hub the pump splits
        at its next pass (it visits every running task), which also bounds what piles up.
        """
        pub = self._pub
        if pub is not None:
            pub.output_waiting(self._drain_output)

    def _split_output(self) -> None:
        """Turn the pending writes into log lines, in write order (lock held)."""
        for stream, text in split_runs(self._output.take()):
            lines = self._buffers[stream].feed(text)
            if lines:
                # Only the first line holds text from before this run (the pending partial).
                short = len(lines[0]) <= MAX_PARTIAL_CHARS and no_run_over(text, MAX_PARTIAL_CHARS)
                self._add_lines(stream, lines, short)
            self._last_stream = stream

    def _add_lines(self, stream: str, lines: list[str], short: bool = False) -> None:
        # Called with the lock held, so the local log and the hub get lines in one order.
        if not short and max(map(len, lines)) > MAX_PARTIAL_CHARS:
            # One huge line would make one huge request (the hub refuses bodies over 4 MB).
            lines = [
                line[start : start + MAX_PARTIAL_CHARS]
                for line in lines
                for start in range(0, max(len(line), 1), MAX_PARTIAL_CHARS)
            ]
        keep = self._log_keep
        if keep:
            log = self._log
            log.append((stream, lines))
            self._log_held += len(lines)
            while self._log_held - len(log[0][1]) >= keep:
                self._log_held -= len(log.popleft()[1])
        self._log_count += len(lines)
        if self._pub is not None:
            self._pub.log_lines(self.id, stream, lines)

    def _log_tail(self) -> list[dict]:
        """The last ``_log_keep`` lines as ``{"stream", "text"}`` (lock held)."""
        out: list[dict] = []
        left = self._log_keep
        for stream, lines in reversed(self._log):
            if left <= 0:
                break
            part = lines[-left:]
            out.extend({"stream": stream, "text": text} for text in reversed(part))
            left -= len(part)
        out.reverse()
        return out

    def _elapsed(self) -> float | None:
        runtime = self._runtime
        if runtime is None or self._state.started is None:
            return None
        end = self._state.finished
        if end is not None:
            return max(end - self._state.started, 0.0)
        return max(runtime.clock() - self._t0, 0.0)

    def _measure(self, now: float) -> None:
        """Fold the current count into the rate and eta (lock held)."""
        state = self._state
        current = state.current
        sample = self._rate_sample
        if sample is None or current < sample[1]:
            self._rate_sample = (now, current)
            if sample is not None:
                state.rate = None  # the counter restarted (a new progress loop)
        elif now - sample[0] >= _MIN_RATE_INTERVAL:
            instant = (current - sample[1]) / (now - sample[0])
            state.rate = instant if state.rate is None else _RATE_SMOOTHING * instant + (1 - _RATE_SMOOTHING) * state.rate
            self._rate_sample = (now, current)
        if state.rate and state.total is not None:
            state.eta = max(state.total - current, 0) / state.rate
        else:
            state.eta = None

    def _publish_progress(self, force: bool = False) -> None:
        """Send progress to the hub if it changed since last time (lock held)."""
        state = self._state
        key = (state.current, state.total, state.message, state.unit)
        if self._pub is None or (key == self._published and not force):
            return
        self._published = key
        data: dict[str, Any] = {"current": max(state.current, 0), "total": state.total, "unit": state.unit}
        if state.message:
            data["message"] = state.message
        if state.rate is not None:
            data["rate"] = state.rate
        if state.eta is not None:
            data["eta"] = state.eta
        self._pub.event(self.id, "progress", data)

    def _view_key(self) -> tuple:
        """What a watcher would see change (lock held)."""
        s = self._state
        return (
            s.status, self._cancel_requested, s.current, s.total, s.message, s.rate,
            self._log_count, self._buffers[self._last_stream].partial,
        )  # fmt: skip

    def _tick(self, now: float, min_gap: float) -> list[tuple[_Watcher, dict]]:
        """One pump step: sample rate, publish progress, say which watchers to call.

        ``min_gap`` keeps every view at most 1/min_gap per second even when the pump is
        woken more often; the final call after the end is never held back.
        """
        with self._lock:
            self._split_output()
            terminal = self._state.terminal
            if not terminal:
                driver = self._driver
                if driver is not None:
                    driver.nudge(now)  # first: a strided loop's live count goes into this sample
                self._measure(now)
                if now - self._published_at >= min_gap:
                    self._published_at = now
                    self._publish_progress()
            if not self._watchers:
                return []
            key = self._view_key()
            due = [
                w for w in self._watchers
                if not w.final and (terminal or (w.key != key and now - w.called_at >= min_gap))
            ]  # fmt: skip
        if not due:
            return []
        snap = self.snapshot()
        for w in due:
            w.key, w.final, w.called_at = key, terminal, now
        return [(w, snap) for w in due]

    def _needs_pump(self) -> bool:
        """True while the pump has something to do for this task."""
        if not self._state.terminal:
            return True
        return any(not w.final for w in self._watchers)


def _call_quietly(callback: Callable[[Task], Any], task: Task) -> None:
    try:
        callback(task)
    except Exception:  # a broken hook must not keep the cancel from reaching the task's code
        pass


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
