"""The user-facing API (`task`, `progress`, `run`, ...) on the process's default runtime.

This is where the kernel side and the views meet: the default `Runtime` is created here, on
first use, with `views.auto.AutoView` as its view hook (widget in a notebook, text bar on a
terminal, nothing otherwise), so ``kernel/`` never imports a front end. Importing this
module registers `default_runtime` with `kernel.context`, which is how a `Task` made
without ``runtime=`` finds it. ``import jupyter_taskstream as ts`` loads it on first use of
``ts.task`` and friends.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any, Callable, Iterable, Iterator

from .kernel.config import RuntimeConfig
from . import integrations
from .kernel.context import current_task, provide_default_runtime
from .kernel.parentlink import child_runtime
from .kernel.progress import iterate
from .kernel.runtime import Runtime
from .kernel.task import Task
from .views.auto import AutoView

__all__ = [
    "Runtime",
    "RuntimeConfig",
    "Task",
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

#: Settings of the default runtime, e.g. ``jupyter_taskstream.config.cancel_grace_period = 5``.
config = RuntimeConfig()

_default: Runtime | None = None
#: The process whose library bridges `default_runtime` turned on for a child runtime.
_bridged_pid: int | None = None
_default_lock = threading.Lock()


def default_runtime() -> Runtime:
    """The process's runtime behind the module-level functions (made on first use).

    In a child process of a task (a pool work item it submitted, a process it started),
    `kernel.parentlink`'s runtime instead: its tasks become the submitting task's bars.
    """
    global _default
    global _bridged_pid
    child = child_runtime(config)
    if child is not None:
        if _bridged_pid != os.getpid():
            _bridged_pid = os.getpid()
            integrations.enable()  # a child's tqdm bars report too
        return child
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Runtime(config, view=AutoView(config))
                # tqdm and rich bars inside tasks become the tasks' bars (see integrations).
                integrations.enable()
    return _default


provide_default_runtime(default_runtime)


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


def progress(
    iterable: Iterable, total: float | None = None, desc: str | None = None, unit: str = "it", leave: bool = False
) -> Iterator:
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
    leave : bool
        For a child bar (a loop inside a task whose main bar something else drives): keep
        it, closed, in the views once the loop ends. By default it disappears.

    Returns
    -------
    iterator
        A generator. Inside a task whose main bar nothing drives yet, it drives the main
        bar (its count restarts at 0), unless the task has a different total of its own.
        Otherwise, inside a task, it counts on a child bar of the innermost open bar: one
        task, nested bars. Outside a task it makes a task of its own that ends when the
        loop does. Raises `TaskCancelled` at the next step after the task is cancelled.
    """
    return iterate(default_runtime(), iterable, total, desc, unit, sys._getframe(1), leave)


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
