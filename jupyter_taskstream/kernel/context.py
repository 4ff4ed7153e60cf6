"""Which task is running here (a context variable, carried into the threads a task starts),
and which runtime a task made without one uses.

asyncio tasks copy the context when they are created, so a coroutine a task starts sees
the task natively. Threads do not: before Python 3.14 a new `threading.Thread` starts
with an empty context, and `ThreadPoolExecutor` workers are shared by every caller.
`install_thread_propagation` therefore wraps `Thread.start` (the new thread runs in a copy
of the starter's context) and `ThreadPoolExecutor.submit` (each work item runs in a copy of
the submitter's context). Both wrappers do nothing unless the caller is inside a task, so
code outside tasks keeps the stdlib behaviour exactly.

`default_runtime` is a hook, not an import: whoever creates the process's default runtime
(`jupyter_taskstream.api`, which also chooses its views) registers it with
`provide_default_runtime`, so the task never imports the runtime that imports it.
"""

from __future__ import annotations

import contextvars
import functools
import threading
from concurrent.futures import thread as _futures_thread
from typing import TYPE_CHECKING, Any, Callable

from ._compat import is_executor_worker

if TYPE_CHECKING:
    from .runtime import Runtime
    from .task import Task

__all__ = ["current_task", "default_runtime", "install_thread_propagation", "provide_default_runtime"]

#: The innermost task of the running code, or None outside any task.
current_task: contextvars.ContextVar[Task | None] = contextvars.ContextVar(
    "jupyter_taskstream.current_task", default=None
)

_install_lock = threading.Lock()
_installed = False
_default_provider: Callable[[], Runtime] | None = None


def provide_default_runtime(provider: Callable[[], Runtime]) -> None:
    """Register what `default_runtime` calls (the package's `api` module does, on import)."""
    global _default_provider
    _default_provider = provider


def default_runtime() -> Runtime:
    """The process's default runtime, for a task made without ``runtime=``."""
    if _default_provider is None:
        raise RuntimeError(
            "no default runtime: use jupyter_taskstream.task()/run()/progress() or pass runtime= to Task"
        )
    return _default_provider()


def install_thread_propagation() -> None:
    """Make threads and executor work items started inside a task belong to it (idempotent)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        _installed = True
        original_start = threading.Thread.start
        original_submit = _futures_thread.ThreadPoolExecutor.submit

        @functools.wraps(original_start)
        def start(self: threading.Thread) -> None:
            # Executor workers outlive the work item that made them start; their context is
            # set per item by `submit` below, never inherited from whoever caused the spawn.
            if current_task.get() is not None and not is_executor_worker(self):
                context = contextvars.copy_context()
                run = self.run
                # An instance attribute shadows `run` for subclasses that override it, too.
                self.run = functools.partial(context.run, run)  # type: ignore[method-assign]
            original_start(self)

        @functools.wraps(original_submit)
        def submit(self: Any, fn: Any, /, *args: Any, **kwargs: Any):
            if current_task.get() is None:
                return original_submit(self, fn, *args, **kwargs)
            return original_submit(self, contextvars.copy_context().run, fn, *args, **kwargs)

        threading.Thread.start = start  # type: ignore[method-assign]
        _futures_thread.ThreadPoolExecutor.submit = submit  # type: ignore[method-assign]
