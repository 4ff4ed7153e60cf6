"""`TaskCore`: a task's state and lifecycle as the runtime drives it (the runtime interface).

`Task` (in `task`) is what users hold; this base class is what the runtime, progress loops,
capture and the view pump use, and nothing else reaches into a task. It holds the task's
`TaskState` under one lock, and one part per concern, each in a module of its own:
`tasklog.TaskLog` (captured output as lines), `reporting.Reporter` (rate, ETA and what the
hub is told), `watchers.Watchers` (``watch()`` callbacks) and `interrupt.ThreadInterrupter`
(the grace-period interrupt of a cancel).

Users and the runtime share `snapshot` and `cancel`. The runtime interface: `begin`,
`bind_thread` and `finish` (lifecycle); `drive`, `count_to`, `release` and `add_child`
(progress loops); `open_bar`, `close_bar` and `bars` (child bars, and library bars such as
tqdm's); `tick` and `needs_visits` (the view pump); `pending_output` (where `capture`
appends writes); `add_lines` (children's lines, see `childpipes`); `notice` (the runtime's
own problems, shown in the task); `cancelled_error`.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from types import FrameType
from typing import TYPE_CHECKING, Any, Callable

from ..errors import TaskCancelled, TaskFinished, TaskRunning
from ..protocol import TaskState, check_count, check_unit, new_task_id, validate_name, validate_task_id
from .bars import Bar, BarSet, MainBar
from .childpipes import settle
from .context import default_runtime
from .hooks import TaskHooks, run_hooks
from .interrupt import ThreadInterrupter
from .reporting import Reporter, detached, outcome
from .tasklog import TaskLog
from .watchers import Watcher, Watchers

if TYPE_CHECKING:
    from .runtime import Runtime
    from .task import Task

__all__ = ["TaskCore"]


class TaskCore(TaskHooks):
    """A task's state and parts, and the methods the runtime drives it with (see the module)."""

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
        self._children: list[Task] = []  # nested loops' own tasks: cancelled and ended with this one
        self._driver: Any = None  # what drives the main bar: a progress loop or a library's bar
        #: True once the task's code counted itself (update/set): later loops are child bars.
        self._main_touched = False
        #: True once a loop or bar has driven the main bar (a later one may bring a new total).
        self._driven = False
        self._bars: BarSet | None = None
        self._cancel_callbacks: list[Callable[[Any], Any]] = []  # see `hooks.TaskHooks`
        self._ending_callbacks: list[Callable[[Any], Any]] = []
        self._token: Any = None
        #: What `capture.claim` returned for a `with` block (see `capture.release`).
        self._claim: Any = None
        self._result: Any = None
        self._exception: BaseException | None = None

    # ---- shared by users and the runtime: the state, and a request to stop -------------

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
        bars = self._bars
        if bars is not None:
            bars.refresh()
            snap["bars"] = bars.visible()
        return snap

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
            callbacks, self._cancel_callbacks = self._cancel_callbacks, []
        run_hooks(callbacks, self)
        for child in children:
            child.cancel()
        if first and not self._state.terminal:
            self._report.cancel_requested(self._state.status)
        if first and self._state.status != "pending":
            runtime = self._resolve_runtime()
            self._interrupter.after_grace(runtime, lambda: self._state.terminal, self._abandoned)
            runtime.pump_task(self)
        return True

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
            self._log.echo = runtime.echo()
        self._report.announce(self._state)
        runtime.task_started(self)

    def bind_thread(self, thread_id: int, frame: FrameType | None) -> None:
        """Record the thread and frame the task's code runs in, for the grace-period interrupt."""
        self._interrupter.bind(thread_id, frame)

    def finish(self, exc: BaseException | None = None, result: Any = None, *, owned: bool = False) -> bool:
        """Enter the terminal status for ``exc`` (None: completed); False if it had ended already.

        ``owned``: the exception reached no one but the runtime (a `run` thread caught it), so
        its frames may be cleared; otherwise the task keeps a copy without a traceback.
        Either way the formatted traceback is in the task's error, and no frame of the failed
        code (nor the objects its locals held) outlives the user's own references.
        """
        self._interrupter.close()
        runtime = self._resolve_runtime()
        with self._lock:
            ending, self._ending_callbacks = self._ending_callbacks, []
        run_hooks(ending, self)
        status, message, error = outcome(exc)
        if status == "failed" and self._cancel_requested and isinstance(exc, concurrent.futures.CancelledError):
            # Work the cancel stopped elsewhere (Dask futures, executor items) ends the task as cancelled.
            status, message, error = "cancelled", "cancelled", None
        if not self._closed:
            settle(self)  # lines its children wrote already belong before the end
        if self._bars is not None and not self._closed:
            self._bars.close_all()  # loops left by an exception: their last counts go out below
        with self._lock:
            if self._closed:
                return False
            self._sample_driver()  # a library's main bar: its final count
            self._closed = True  # from here on, writes in this context go to the real streams
            self._log.close()
            state = self._state
            elapsed = self._elapsed()
            if elapsed and state.current:
                state.rate = state.current / elapsed  # the final figure is the whole run's average
            state.eta = None
            self._report.progress(state, force=True, bars=self._bar_changes())
            data: dict[str, Any] = {"status": status}
            if message:
                data["message"] = message
            if error is not None:
                data["error"] = error
            state.apply("status", data, runtime.wall())
            self._report.status(data)
            self._result, self._exception = result, detached(exc, owned)
            children = list(self._children)
            self._children.clear()
            self._driver = None
        for child in children:
            child.finish(exc)
        self._done.set()
        runtime.task_finished(self)
        return True

    def add_lines(self, stream: str, lines: list[str]) -> bool:
        """Add whole lines written elsewhere (a child process) to the log; False once it ended."""
        with self._lock:
            if self._closed:
                return False
            self._log.split()  # what the task's own code wrote before stays before
            self._log.add(stream, lines)
        return True

    def notice(self, message: str) -> None:
        """Show one of the runtime's own problems in the task (a stderr line in its log)."""
        self.add_lines("stderr", [f"[jupyter_taskstream] {message}"])

    def cancelled_error(self) -> TaskCancelled:
        """The `TaskCancelled` this task raises in its code."""
        return TaskCancelled(f"task {self._state.name!r} ({self.id}) was cancelled")

    # ---- runtime interface: progress loops -----------------------------------------------

    def drive(self, loop: Any, *, total: float | None = None, unit: str | None = None, message: str | None = None) -> bool:
        """Let ``loop`` drive the main bar (its count restarts at 0); False when it should be a
        child bar instead: something drives the main bar, the task's code counts it itself
        (update/set), or the task has a total of its own that differs (``ts.task("files",
        total=n)`` around a chunk loop); also False once the task ended."""
        with self._lock:
            if self._driver is not None or self._closed or self._main_touched:
                return False
            if not (self._driven or self._state.total is None or self._state.total == total):
                return False
            self._driver = loop
            self._driven = True
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

    @property
    def bars(self) -> BarSet:
        """The task's child bars (nested loops, tqdm and rich bars inside the task)."""
        with self._lock:
            if self._bars is None:
                self._bars = BarSet(self)
            return self._bars

    def open_bar(
        self, desc: str | None = None, total: float | None = None, unit: str = "it", leave: bool = True, source: Any = None
    ) -> Bar | MainBar:
        """A bar for a library's progress object: the main bar if it may drive it, else a child.

        ``source(bar)`` copies the library object's ``current``, ``total``, ``desc``, ``unit`` and
        ``postfix`` into the bar; the pump calls it when it samples (10/s) and `close_bar` once
        more, so the library's own update batching costs nothing and the final count is exact.
        """
        main = MainBar(source)
        if self.drive(main, total=total, unit=unit, message=desc):
            return main
        bar = self.bars.open(desc or "", total, unit, leave)
        bar.source = source
        bar.enter()
        return bar

    def close_bar(self, bar: Bar | MainBar) -> None:
        """End a bar from `open_bar`: the main bar keeps its final count, a child closes."""
        if isinstance(bar, MainBar):
            with self._lock:
                if self._driver is bar:
                    bar.sample_into(self._state)
                    self._driver = None
            return
        self.bars.close(bar)

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
                if self._bars is not None:
                    self._bars.sample(now)
                self._report.measure(self._state, now)
                if now - self._report.published_at >= min_gap:
                    self._report.published_at = now
                    self._report.progress(self._state, bars=self._bar_changes())
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

    def _abandoned(self) -> None:
        # The task's block was left without reaching finish (an interrupt landed in the
        # runtime's exit path): end it here so it does not look like it runs forever.
        self.finish(TaskCancelled(f"task {self._state.name!r} was cancelled"))

    def _drain_output(self) -> None:
        """Split what the task's code wrote into lines now (the publisher's sender calls this)."""
        with self._lock:
            self._log.split()

    def _output_waiting(self) -> None:
        """Output was written since the last split; called from the writing thread, never blocks."""
        self._report.output_waiting(self._drain_output)

    def _bar_changes(self) -> list[dict] | None:
        """Child bars changed since the hub was last told (lock held); None without a hub."""
        if self._bars is None or not self._report.connected:
            return None
        return self._bars.changes()

    def _sample_driver(self, now: float | None = None) -> None:
        """Fold a driving loop's live position into the count; with ``now``, a pump visit (lock held)."""
        driver = self._driver
        if driver is None:
            return
        if isinstance(driver, MainBar):
            driver.sample_into(self._state)
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
        bars = None if self._bars is None else self._bars.key()
        return (s.status, self._cancel_requested, s.current, s.total, s.message, s.rate, self._log.count, self._log.partial_raw, bars)
