"""Raising `TaskCancelled` inside a thread that never calls into the runtime.

CPython can schedule an exception in another thread with
``ctypes.pythonapi.PyThreadState_SetAsyncExc``; it is raised at that thread's next bytecode
boundary. It cannot break a blocking C call (``time.sleep``, a socket read): the exception
lands when the call returns. Because it lands wherever the thread happens to be, we only
send it while the task's own frame is on the thread's stack and the innermost frame is not
the runtime's own code (a cooperative check is about to raise anyway there).
`ThreadInterrupter` holds one task's side of this: where its code runs, and whether an
interrupt may still be sent.
"""

from __future__ import annotations

import ctypes
import inspect
import sys
import threading
from types import FrameType
from typing import Any, Callable

from ..errors import TaskCancelled

__all__ = ["ThreadInterrupter", "clear_pending", "frame_is_running", "is_suspendable", "raise_in_thread"]

_PACKAGE = __name__.rpartition(".")[0]
#: When an interrupt would land in the runtime's own code, try again this much later.
_INTERRUPT_RETRY = 0.05
_SUSPENDABLE = inspect.CO_COROUTINE | inspect.CO_ITERABLE_COROUTINE | inspect.CO_ASYNC_GENERATOR | inspect.CO_GENERATOR


def is_suspendable(frame: FrameType) -> bool:
    """True for coroutine and generator frames, which leave the stack while suspended."""
    return bool(frame.f_code.co_flags & _SUSPENDABLE)


def frame_is_running(thread_id: int, frame: FrameType) -> tuple[bool, bool]:
    """``(on_stack, in_runtime)``: is ``frame`` on the thread's stack, is its top frame ours."""
    top = sys._current_frames().get(thread_id)
    in_runtime = top is not None and str(top.f_globals.get("__name__", "")).startswith(_PACKAGE + ".")
    walker = top
    while walker is not None:
        if walker is frame:
            return True, in_runtime
        walker = walker.f_back
    return False, in_runtime


def raise_in_thread(thread_id: int, exc_type: type[BaseException] = TaskCancelled) -> bool:
    """Schedule ``exc_type`` in the thread; True if exactly one thread state took it."""
    count = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exc_type))
    if count > 1:  # cannot happen with a valid ident; the C API asks callers to undo it
        clear_pending(thread_id)
        return False
    return count == 1


def clear_pending(thread_id: int) -> None:
    """Withdraw an exception scheduled with `raise_in_thread` that has not landed yet."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), None)


class ThreadInterrupter:
    """Where one task's code runs, and the grace-period interrupt that may be sent there.

    `bind` records the thread and the task's entry frame; `fire` (on a timer thread) raises
    `TaskCancelled` there when that is safe and says what should happen next; `close` (when
    the task ends) makes sure no interrupt can land afterwards.
    """

    #: What `fire` asks of its caller.
    STOP, RETRY_SOON, ABANDONED, AGAIN = "stop", "retry-soon", "abandoned", "again"

    __slots__ = ("_lock", "thread_id", "frame", "_asyncio_task", "_armed", "_sent")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.thread_id: int | None = None
        self.frame: FrameType | None = None
        self._asyncio_task: Any = None
        self._armed = False
        self._sent = False

    def bind(self, thread_id: int, frame: FrameType | None) -> None:
        """Record where the task's code runs, for the grace-period interrupt."""
        self.thread_id = thread_id
        self.frame = frame
        if frame is not None and is_suspendable(frame) and "asyncio" in sys.modules:
            import asyncio  # already loaded: only asyncio code has coroutine frames to cancel

            try:
                self._asyncio_task = asyncio.current_task()
            except RuntimeError:
                self._asyncio_task = None
        self._armed = True

    def close(self) -> None:
        """No asynchronous TaskCancelled may reach the thread after this returns."""
        with self._lock:
            self._armed = False
            self.frame = None
            if self._sent and self.thread_id is not None:
                clear_pending(self.thread_id)

    def fire(self) -> str:
        """Interrupt the task's code if it is safe now; returns `STOP`, `RETRY_SOON`, `ABANDONED` or `AGAIN`.

        `ABANDONED`: the task's frame left the stack without the task ending (an interrupt
        landed in the runtime's exit path). `AGAIN`: ask again after the grace period, since
        code that catches Exception swallows TaskCancelled.
        """
        with self._lock:
            frame, thread_id = self.frame, self.thread_id
            if not self._armed or frame is None or thread_id is None:
                return self.STOP
            if is_suspendable(frame):
                # A coroutine leaves the stack at every await: cancel its asyncio task instead.
                atask = self._asyncio_task
                if atask is not None and not atask.done():
                    atask.get_loop().call_soon_threadsafe(atask.cancel)
                return self.STOP
            on_stack, in_runtime = frame_is_running(thread_id, frame)
            if not on_stack:
                return self.ABANDONED
            if in_runtime:
                return self.RETRY_SOON
            if raise_in_thread(thread_id):
                self._sent = True
            return self.AGAIN

    def after_grace(self, runtime: Any, ended: Callable[[], bool], abandoned: Callable[[], None]) -> None:
        """Interrupt once ``runtime.config.cancel_grace_period`` has passed, and again while it is ignored.

        ``ended()`` says the task is over (nothing to do); ``abandoned()`` ends a task whose
        code left its frame without ending it.
        """

        def attempt() -> None:
            if ended():
                return
            outcome = self.fire()
            if outcome == self.RETRY_SOON:
                runtime.schedule(_INTERRUPT_RETRY, attempt)
            elif outcome == self.ABANDONED:
                abandoned()
            elif outcome == self.AGAIN:
                runtime.schedule(runtime.config.cancel_grace_period, attempt)

        runtime.schedule(runtime.config.cancel_grace_period, attempt)
