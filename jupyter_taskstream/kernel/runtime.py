"""The kernel-side runtime: the public API (`task`, `progress`, `run`, ...) and its `Runtime`.

A `Runtime` holds this process's tasks, the pump thread that feeds views, and, when the
kernel was started by a Jupyter server with the extension, the `Publisher` and the
`CommandListener` that talk to the hub. The module-level functions use one default
runtime, created on first use; tests and embedders may make their own with injected
publisher, kernel id and clocks. Nothing starts (no thread, no stream patching, no
network) until the first task starts.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import linecache
import sys
import threading
import time
from collections import OrderedDict, deque
from typing import Any, Callable, Iterable, Iterator

from . import capture

from . import host
from .commands import CommandListener
from .context import current_task, install_thread_propagation
from ..errors import TaskCancelled, TaskNotFound
from .task import Task
from .progress import iterate
from .publisher import Publisher
from .sampler import ViewPump
from .config import RuntimeConfig
from ..integrations.activation import activate as activate_integrations

__all__ = [
    "Runtime",
    "cancelled",
    "config",
    "connect_hub",
    "current",
    "default_runtime",
    "get",
    "last",
    "progress",
    "run",
    "task",
    "tasks",
]

#: False while a caller (``%%taskstream --no-widget``) starts tasks that must not show a widget.
show_widgets: contextvars.ContextVar[bool] = contextvars.ContextVar("taskstream_show_widgets", default=True)

#: Settings of the default runtime, e.g. ``jupyter_taskstream.config.cancel_grace_period = 5``.
config = RuntimeConfig()

_AUTO = "auto"


class Runtime:
    """This process's tasks, view pump and hub connection.

    Parameters
    ----------
    config : RuntimeConfig, optional
        Settings; a fresh default one when omitted.
    publisher : Publisher, None or "auto"
        Where events go: ``"auto"`` builds one from ``JUPYTER_TASKSTREAM_URL``/``_SECRET``
        when the first task starts (none without them), None never publishes.
    kernel_id : str, None or "auto"
        Stamped on tasks; ``"auto"`` reads it from ipykernel's connection file.
    commands : bool
        Listen to the hub's commands (cancel, start) when there is a publisher and a kernel id.
    namespace : dict, optional
        Globals for code the hub starts; IPython's ``user_ns`` (or ``__main__``) by default.
    clock, wall : callable
        Monotonic seconds for intervals and rates, epoch seconds for timestamps.
    """

    def __init__(
        self,
        config: RuntimeConfig | None = None,
        *,
        publisher: Publisher | None | str = _AUTO,
        kernel_id: str | None = _AUTO,
        commands: bool = True,
        namespace: dict | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ):
        self.config = config if config is not None else RuntimeConfig()
        self.clock = clock
        self.wall = wall
        self._publisher_arg = publisher
        self._kernel_id_arg = kernel_id
        self._want_commands = commands
        self._namespace = namespace
        self._lock = threading.Lock()
        self._connected = False
        self.publisher: Publisher | None = None
        self.commands: CommandListener | None = None
        self._kernel_id: str | None = None
        self._tasks: OrderedDict[str, Task] = OrderedDict()
        self._finished: deque[str] = deque()
        self._last: Task | None = None
        self._pump = ViewPump(lambda: self.config.view_interval, clock)
        self._console: Any = None
        self._cell_tasks: list[Task] = []
        self._cell_hook = False

    # ---- the public API, bound to this runtime ------------------------------------------

    def task(self, name: str | Callable, total: float | None = None, unit: str = "it") -> Task:
        """A new pending task; use it with ``with`` or as a decorator (see `jupyter_taskstream.task`)."""
        if callable(name) and not isinstance(name, str):
            return Task(getattr(name, "__name__", "task"), runtime=self)(name)  # bare @task
        return Task(name, total, unit, runtime=self)

    def progress(
        self, iterable: Iterable, total: float | None = None, desc: str | None = None, unit: str = "it"
    ) -> Iterator:
        """Iterate ``iterable`` while counting into the current task (see `jupyter_taskstream.progress`)."""
        return iterate(self, iterable, total, desc, unit, sys._getframe(1))

    def run(self, fn: Callable, /, *args: Any, name: str | None = None, **kwargs: Any) -> Task:
        """Run ``fn(*args, **kwargs)`` as a task in a background thread (see `jupyter_taskstream.run`)."""
        if not callable(fn):
            raise TypeError(f"run() needs a callable, not {type(fn).__name__}")
        task = Task(name or getattr(fn, "__name__", None) or "task", runtime=self)
        self._launch(task, fn, args, kwargs)
        return task

    def start_code(
        self, task_id: str, name: str, code: str, namespace: dict | None = None, total: float | None = None
    ) -> Task:
        """Run ``code`` as the task ``task_id`` in the user namespace, in a background thread.

        This is what the hub's ``start`` command does; a repeated command for a task
        that exists already returns that task.
        """
        existing = self._tasks.get(task_id)
        if existing is not None:
            return existing
        if not isinstance(code, str):
            raise TypeError(f"code must be a str, not {type(code).__name__}")
        if namespace is None:
            namespace = host.user_namespace() if self._namespace is None else self._namespace
        ns = namespace
        filename = f"<taskstream-{task_id}>"
        # Registered so tracebacks of the started code show its source lines.
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)

        def execute() -> None:
            exec(compile(code, filename, "exec"), ns)

        task = Task(name, total, task_id=task_id, runtime=self)
        self._launch(task, execute, (), {})
        return task

    def cancelled(self) -> bool:
        """True if the current task was asked to stop (False outside tasks)."""
        t = current_task.get()
        return t is not None and t._cancel_requested

    def current(self) -> Task | None:
        """The task the calling code runs in, or None."""
        return current_task.get()

    def tasks(self) -> list[Task]:
        """This process's tasks, oldest first (finished ones beyond ``config.max_tasks`` are forgotten)."""
        with self._lock:
            return list(self._tasks.values())

    def last(self) -> Task | None:
        """The task started most recently, or None."""
        return self._last

    def get(self, task_id: str) -> Task:
        """The task with this id; raises `TaskNotFound`."""
        try:
            return self._tasks[task_id]
        except KeyError:
            raise TaskNotFound(task_id) from None

    def connect_hub(self) -> bool:
        """Connect to the hub now rather than at the first task; True if there is one."""
        self._connect()
        return self.publisher is not None

    @property
    def kernel_id(self) -> str | None:
        """The kernel's id, or None outside a kernel."""
        self._connect()
        return self._kernel_id

    def close(self, timeout: float = 5.0) -> None:
        """Stop the command listener, flush and stop the publisher, stop the pump."""
        if self.commands is not None:
            self.commands.close(timeout)
        self._pump.run_once()  # last progress values out before the publisher stops
        if self.publisher is not None:
            self.publisher.close(timeout)
        self._pump.stop(timeout)

    # ---- called by tasks ----------------------------------------------------------------

    def task_started(self, task: Task) -> None:
        """Register a task that just started and announce it to the hub."""
        capture.install()
        install_thread_propagation()
        activate_integrations()
        self._connect()
        task._state.kernel_id = self._kernel_id
        task._pub = pub = self.publisher
        with self._lock:
            self._tasks[task.id] = task
            self._last = task
        if pub is not None:
            state = task._state
            pub.task_spec(
                {"id": task.id, "name": state.name, "total": state.total, "unit": state.unit, "kernel_id": self._kernel_id}
            )
            pub.event(task.id, "status", {"status": "running"})
        if self._console is not None:
            task.watch(self._console.show)
        # Every task: the pump splits captured output into lines, hub or not (see capture).
        self._pump.add(task)
        if self._widget_wanted():
            from ..views.widget import display_task

            display_task(task, log_lines=self.config.widget_log_lines, has_hub=pub is not None)

    def task_finished(self, task: Task) -> None:
        """Forget the oldest finished tasks beyond ``config.max_tasks``; wake the views."""
        with self._lock:
            self._finished.append(task.id)
            while len(self._finished) > self.config.max_tasks:
                self._tasks.pop(self._finished.popleft(), None)
        self._pump.wake()

    def pump_task(self, task: Task) -> None:
        """Have the pump visit ``task`` (it has watchers, or a cancel to show)."""
        self._pump.add(task)

    def schedule(self, delay: float, fn: Callable[[], None]) -> None:
        """Call ``fn`` on a timer thread after ``delay`` seconds."""
        timer = threading.Timer(delay, fn)
        timer.daemon = True
        contextvars.Context().run(timer.start)

    def adopt_cell_task(self, task: Task) -> None:
        """A progress() loop's own task started by a cell: fail it if the cell raises."""
        if threading.current_thread() is not threading.main_thread():
            return
        if not self._cell_hook:
            self._cell_hook = True
            if not host.on_cell_error(self._cell_finished):
                return
        self._cell_tasks.append(task)

    def handle_command(self, event: str, data: dict) -> None:
        """Act on a hub command: ``cancel`` {task} or ``start`` {task, name, code}."""
        if event == "cancel":
            task = self._tasks.get(data.get("task", ""))
            if task is not None:
                task.cancel()
        elif event == "start":
            self.start_code(data["task"], data.get("name") or "task", data.get("code", ""), total=data.get("total"))

    # ---- internals ----------------------------------------------------------------------

    def _connect(self) -> None:
        """Resolve kernel id, publisher, command listener and console bar, once."""
        if self._connected:
            return
        with self._lock:
            if self._connected:
                return
            self._kernel_id = host.kernel_id() if self._kernel_id_arg == _AUTO else self._kernel_id_arg
            if self._publisher_arg == _AUTO:
                if self.config.publish:
                    c = self.config
                    self.publisher = Publisher.from_environment(
                        self._kernel_id,
                        max_buffered=c.max_buffered_events,
                        max_batch_events=c.max_batch_events,
                        backoff_max=c.max_backoff,
                        timeout=c.request_timeout,
                    )
            else:
                self.publisher = self._publisher_arg  # type: ignore[assignment]
            pub = self.publisher
            if pub is not None and self._kernel_id and self._want_commands:
                self.commands = CommandListener(
                    pub.url, pub.secret, self._kernel_id, self.handle_command, backoff_max=self.config.max_backoff
                )
                self.commands.start()
            if self._console_wanted():
                from ..views.console import ConsoleBar

                self._console = ConsoleBar(sys.__stderr__)
            self._connected = True

    def _widget_wanted(self) -> bool:
        """A widget for tasks a cell starts on the main thread, not for tasks inside tasks."""
        mode = self.config.widget
        if mode == "off" or not show_widgets.get():
            return False
        if threading.current_thread() is not threading.main_thread() or not host.in_kernel():
            return False
        if mode == "auto":
            import importlib.util

            return all(importlib.util.find_spec(m) is not None for m in ("ipywidgets", "anywidget"))
        return True

    def _console_wanted(self) -> bool:
        mode = self.config.console
        if mode != "auto":
            return mode == "on"
        stream = sys.__stderr__
        try:
            return stream is not None and stream.isatty() and not host.in_kernel()
        except (AttributeError, ValueError):
            return False

    def _launch(self, task: Task, fn: Callable, args: tuple, kwargs: dict) -> None:
        task._start()
        context = contextvars.copy_context()
        thread = threading.Thread(
            target=context.run, args=(_thread_main, task, fn, args, kwargs), name=f"taskstream-{task.id}", daemon=True
        )
        thread.start()

    def _cell_finished(self, error: BaseException | None) -> None:
        tasks, self._cell_tasks = self._cell_tasks, []
        if error is None:
            return
        for task in tasks:
            task._finish(error)


def _thread_main(task: Task, fn: Callable, args: tuple, kwargs: dict) -> None:
    """Body of a `run` thread: the task is current, its outcome is recorded, always."""
    current_task.set(task)
    task._bind(threading.get_ident(), sys._getframe())
    result: Any = None
    outcome: BaseException | None = None
    try:
        if task._cancel_requested:
            raise task._cancelled_error()
        result = fn(*args, **kwargs)
        if inspect.iscoroutine(result):
            result = asyncio.run(result)
    except BaseException as e:
        outcome = e
    while True:
        try:
            task._finish(outcome, result)
            return
        except TaskCancelled as late:
            # An interrupt landed after the body but before _finish closed the door; the
            # retry cannot be hit again since nothing is sent once the door is closed.
            outcome = outcome or late


# ---- module-level API on the default runtime ----------------------------------------------

_default: Runtime | None = None
_default_lock = threading.Lock()


def default_runtime() -> Runtime:
    """The process's runtime behind the module-level functions (made on first use)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Runtime(config)
    return _default


def task(name: str | Callable, total: float | None = None, unit: str = "it") -> Task:
    """Make a task: a context manager, and a decorator that makes a new task per call.

    Parameters
    ----------
    name : str
        Shown in every view (1-200 characters). ``@task`` without arguments uses the
        function's name.
    total : float, optional
        Expected number of items, for a percentage and an ETA.
    unit : str
        What is counted.

    Returns
    -------
    Task
        Pending until entered. Inside, ``t.update(n)``, ``t.set(current, total, message)``
        and ``t.log(text)`` report; print and logging output is captured into its log.
        A task entered inside another is a separate task (not a child).
    """
    return default_runtime().task(name, total, unit)


def progress(iterable: Iterable, total: float | None = None, desc: str | None = None, unit: str = "it") -> Iterator:
    """Iterate ``iterable``, counting each item into the current task (like tqdm).

    Parameters
    ----------
    iterable : iterable
        What to loop over.
    total : float, optional
        Expected number of items; taken from ``len(iterable)`` when it has one.
    desc : str, optional
        Name of the task this loop makes when there is none to drive; otherwise the
        driven task's message.
    unit : str
        What is counted.

    Returns
    -------
    iterator
        A generator. Inside a task that no other loop drives, it drives that task (its
        count restarts at 0). Outside a task, or nested in another progress() loop, it
        makes a task of its own that ends when the loop does. Raises `TaskCancelled` at
        the next step after the task is cancelled.
    """
    return iterate(default_runtime(), iterable, total, desc, unit, sys._getframe(1))


def run(fn: Callable, /, *args: Any, name: str | None = None, **kwargs: Any) -> Task:
    """Run ``fn(*args, **kwargs)`` as a task in a background daemon thread; return at once.

    Parameters
    ----------
    fn : callable
        The work; a coroutine function runs in its own event loop in that thread.
    name : str, optional
        The task's name; ``fn.__name__`` by default.

    Returns
    -------
    Task
        The handle: ``id``, ``status``, ``wait(timeout)``, ``result(timeout)`` (re-raises
        the task's exception), ``cancel()``, ``snapshot()``, ``watch(callback)``.
    """
    return default_runtime().run(fn, *args, name=name, **kwargs)


def connect_hub() -> bool:
    """Start talking to the hub (publisher and command stream) now; True if this kernel has one.

    Tasks connect by themselves when they start; the hub runs this in a kernel before it
    sends the kernel a task to start, so the command stream is open to receive it.
    """
    return default_runtime().connect_hub()


def cancelled() -> bool:
    """True if the current task was asked to stop, for code that checks by itself."""
    return default_runtime().cancelled()


def current() -> Task | None:
    """The task the calling code runs in (e.g. inside a decorated function), or None."""
    return current_task.get()


def tasks() -> list[Task]:
    """Handles of this kernel's tasks, oldest first."""
    return default_runtime().tasks()


def last() -> Task | None:
    """The most recently started task, or None."""
    return default_runtime().last()


def get(task_id: str) -> Task:
    """This kernel's task with id ``task_id``; raises `TaskNotFound`."""
    return default_runtime().get(task_id)
