"""Which task is running here: a context variable, carried into the threads a task starts.

asyncio tasks copy the context when they are created, so a coroutine a task starts sees
the task natively. Threads do not: before Python 3.14 a new `threading.Thread` starts
with an empty context, and `ThreadPoolExecutor` workers are shared by every caller.
`install_thread_propagation` therefore wraps `Thread.start` (the new thread runs in a copy
of the starter's context) and `ThreadPoolExecutor.submit` (each work item runs in a copy of
the submitter's context). Both wrappers do nothing unless the caller is inside a task, so
code outside tasks keeps the stdlib behaviour exactly.
"""

from __future__ import annotations

import contextvars
import functools
import threading
from concurrent.futures import thread as _futures_thread
from typing import TYPE_CHECKING, Any

from ._compat import is_executor_worker

if TYPE_CHECKING:
    from .task import Task

__all__ = ["current_task", "install_thread_propagation"]

#: The innermost task of the running code, or None outside any task.
current_task: contextvars.ContextVar[Task | None] = contextvars.ContextVar(
    "jupyter_taskstream.current_task", default=None
)

_install_lock = threading.Lock()
_installed = False


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
