"""`Runtime`: this process's tasks, the view thread, the hub connection, and the API bound to them.

A `Runtime` holds this process's tasks, the pump thread that feeds views, and, when the
kernel was started by a Jupyter server with the extension, the `Publisher` and the
`CommandListener` that talk to the hub. It knows no front end: a ``view`` hook, given by
whoever creates it, shows each task (`jupyter_taskstream.api` makes the default runtime
behind ``ts.task``/``ts.run``/``ts.progress`` with `views.auto`). Tests and embedders may make
their own with injected publisher, kernel id and clocks. Nothing starts (no thread, no
stream patching, no network) until the first task starts.
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import inspect
import linecache
import sys
import threading
import time
from collections import OrderedDict, deque
from typing import Any, Callable, Iterable, Iterator

from ..errors import TaskCancelled, TaskNotFound
from ..protocol.batchbody import Lines
from . import capture, host
from .commands import CommandListener
from .config import RuntimeConfig
from .context import current_task, install_thread_propagation
from .progress import iterate
from .publisher import Publisher
from .sampler import ViewPump
from .task import Task

__all__ = ["Runtime", "View"]

#: Shows a task somewhere: called as ``view(task, has_hub)`` on the thread that starts it.
View = Callable[[Task, bool], Any]

_AUTO = "auto"


class Runtime:
    """This process's tasks, view pump and hub connection.

    Parameters
    ----------
    config : RuntimeConfig, optional
        Settings; a fresh default one when omitted.
    publisher : Publisher, None or "auto"
        Where events go: ``"auto"`` builds one from the environment when the first task
        starts (`Publisher.from_environment`: a kernel's secret, or a user's token for a
        script), none without them; None never publishes.
    kernel_id : str, None or "auto"
        Stamped on tasks; ``"auto"`` reads it from ipykernel's connection file.
    commands : bool
        Listen to the hub's commands (cancel, start) when there is a publisher and a kernel id.
    namespace : dict, optional
        Globals for code the hub starts; IPython's ``user_ns`` (or ``__main__``) by default.
    view : callable, optional
        ``view(task, has_hub)``, called when a task starts, to show it (a widget, a console
        bar); None shows nothing. `jupyter_taskstream.views.auto.AutoView` chooses like
        ``tqdm.auto``.
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
        view: View | None = None,
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
        self._view = view
        self._lock = threading.Lock()
        self._connected = False
        self.publisher: Publisher | None = None
        self.commands: CommandListener | None = None
        self._kernel_id: str | None = None
        self._tasks: OrderedDict[str, Task] = OrderedDict()
        self._finished: deque[str] = deque()
        self._last: Task | None = None
        self._pump = ViewPump(lambda: self.config.view_interval, clock)
        self._cell_tasks: list[Task] = []
        #: Whether `_cell_finished` runs after each cell: None until first asked.
        self._cell_hook: bool | None = None
        #: A task ended in the cell's thread: its views' final calls come before the cell ends.
        self._settle_views = False

    # ---- the public API, bound to this runtime ------------------------------------------

    def task(self, name: str | Callable, total: float | None = None, unit: str = "it") -> Task:
        """A new pending task; use it with ``with`` or as a decorator (see `jupyter_taskstream.task`)."""
        if callable(name) and not isinstance(name, str):
            return Task(getattr(name, "__name__", "task"), runtime=self)(name)  # bare @task
        return Task(name, total, unit, runtime=self)

    def progress(
        self, iterable: Iterable, total: float | None = None, desc: str | None = None, unit: str = "it", leave: bool = False
    ) -> Iterator:
        """Iterate ``iterable`` while counting into the current task (see `jupyter_taskstream.progress`)."""
        return iterate(self, iterable, total, desc, unit, sys._getframe(1), leave)

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
        return t is not None and t.cancel_requested

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

    def _at_exit(self, publisher: Publisher) -> None:
        """Interpreter exit (a script, papermill, nbclient): the last lines and statuses out,
        within the publisher's ``exit_timeout``; the sender is a daemon thread nothing waits for."""
        self._pump.run_once()
        publisher.flush_at_exit()

    # ---- called by tasks ----------------------------------------------------------------

    def task_started(self, task: Task) -> None:
        """Register a task that just started (connected, announced) and show it."""
        capture.install()
        install_thread_propagation()
        with self._lock:
            self._tasks[task.id] = task
            self._last = task
        # Every task: the pump splits captured output into lines, hub or not (see capture).
        self._pump.add(task)
        if self._view is not None:
            self._view(task, self.publisher is not None)

    def echo(self) -> Callable[[str, Lines], None] | None:
        """What also writes a task's lines to this process's own streams, or None (``config.echo``).

        'auto' echoes in a runtime that shows its tasks (the default one) outside a kernel: a
        script's prints still reach its terminal or pipe. A kernel shows them in the widget, and
        a child of a task (no view) has its lines carried to the submitting task instead.
        """
        mode = self.config.echo
        if mode == "off" or (mode == "auto" and (self._view is None or host.in_kernel())):
            return None
        return capture.echo

    def task_finished(self, task: Task) -> None:
        """Forget the oldest finished tasks beyond ``config.max_tasks``; wake the views.

        A task that ends in a cell's own thread has its final state shown before the cell
        ends (see `_cell_finished`): nbclient and papermill save what arrived by then.
        """
        with self._lock:
            self._finished.append(task.id)
            while len(self._finished) > self.config.max_tasks:
                self._tasks.pop(self._finished.popleft(), None)
        self._pump.wake()
        if threading.current_thread() is threading.main_thread() and self._cell_hooked():
            self._settle_views = True

    def pump_task(self, task: Task) -> None:
        """Have the pump visit ``task`` (it has watchers, or a cancel to show)."""
        self._pump.add(task)

    def schedule(self, delay: float, fn: Callable[[], None]) -> None:
        """Call ``fn`` on a timer thread after ``delay`` seconds."""
        timer = threading.Timer(delay, fn)
        timer.daemon = True
        contextvars.Context().run(timer.start)

    def show_problem(self, message: str) -> None:
        """Show one of the runtime's own problems in every running task (once per problem).

        Called from wherever the problem was met, possibly under a task's lock: the tasks
        are told from a timer thread.
        """

        def tell() -> None:
            for task in self.tasks():
                if not task.done:
                    task.notice(message)

        self.schedule(0, tell)

    def adopt_cell_task(self, task: Task) -> None:
        """A progress() loop's own task started by a cell: fail it if the cell raises."""
        if threading.current_thread() is threading.main_thread() and self._cell_hooked():
            self._cell_tasks.append(task)

    def _cell_hooked(self) -> bool:
        """`_cell_finished` runs after each IPython cell (registered once); False outside IPython."""
        if self._cell_hook is None:
            self._cell_hook = host.on_cell_error(self._cell_finished)
        return self._cell_hook

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
        """Resolve kernel id, publisher and command listener, once."""
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
                        flush_at_exit=False,  # `_at_exit` below: captured lines first, then the flush
                    )
            else:
                self.publisher = self._publisher_arg  # type: ignore[assignment]
            pub = self.publisher
            if pub is not None:
                pub.on_problem = self.show_problem
                atexit.register(self._at_exit, pub)
            # Commands come to a kernel the server launched (its secret names it); a process
            # publishing with a user's token has no kernel the hub may address.
            if pub is not None and pub.secret and self._kernel_id and self._want_commands:
                self.commands = CommandListener(
                    pub.url, pub.secret, self._kernel_id, self.handle_command, backoff_max=self.config.max_backoff
                )
                self.commands.start()
            self._connected = True

    def _launch(self, task: Task, fn: Callable, args: tuple, kwargs: dict) -> None:
        task.begin()
        context = contextvars.copy_context()
        thread = threading.Thread(
            target=context.run, args=(_thread_main, task, fn, args, kwargs), name=f"taskstream-{task.id}", daemon=True
        )
        thread.start()

    def _cell_finished(self, error: BaseException | None) -> None:
        if self._settle_views:
            self._settle_views = False
            self._pump.settle(1.0)
        tasks, self._cell_tasks = self._cell_tasks, []
        if error is None:
            return
        for task in tasks:
            task.finish(error)


def _thread_main(task: Task, fn: Callable, args: tuple, kwargs: dict) -> None:
    """Body of a `run` thread: the task is current, its outcome is recorded, always."""
    current_task.set(task)
    frame = sys._getframe()
    task.bind_thread(threading.get_ident(), frame)
    result: Any = None
    outcome: BaseException | None = None
    claim = capture.claim(task.pending_output, frame)
    try:
        task.raise_if_cancelled()
        result = fn(*args, **kwargs)
        if inspect.iscoroutine(result):
            capture.release(task.pending_output, claim)  # an event loop runs other contexts
            result = asyncio.run(result)
    except BaseException as e:
        outcome = e
    capture.release(task.pending_output, claim)
    while True:
        try:
            task.finish(outcome, result, owned=True)
            return
        except TaskCancelled as late:
            # An interrupt landed after the body but before finish closed the door; the
            # retry cannot be hit again since nothing is sent once the door is closed.
            outcome = outcome or late
