"""Raising `TaskCancelled` inside a thread that never calls into the runtime.

CPython can schedule an exception in another thread with
``ctypes.pythonapi.PyThreadState_SetAsyncExc``; it is raised at that thread's next bytecode
boundary. It cannot break a blocking C call (``time.sleep``, a socket read): the exception
lands when the call returns. Because it lands wherever the thread happens to be, we only
send it while the task's own frame is on the thread's stack and the innermost frame is not
the runtime's own code (a cooperative check is about to raise anyway there).
"""

from __future__ import annotations

import ctypes
import inspect
import sys
from types import FrameType

from ..errors import TaskCancelled

__all__ = ["clear_pending", "frame_is_running", "is_suspendable", "raise_in_thread"]

_PACKAGE = __name__.rpartition(".")[0]
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
