"""Adapters for the private parts of other libraries the runtime relies on, one function each.

Every private attribute the kernel side reads lives here and nowhere else, with what it is
for, the plain path taken when it is missing, and a test in ``tests/kernel/test_compat.py``
that names it and fails loudly when an upgrade changes it:

- `is_executor_worker`: ``threading.Thread._target`` and ``concurrent.futures.thread._worker``
  tell a `ThreadPoolExecutor` worker thread apart from other threads (see `context`).
  Missing: every thread counts as an ordinary one, so an executor worker spawned inside a
  task would belong to that task for its whole life (work items still get the submitter's
  context from the ``submit`` wrapper).
- `response_socket`: httpcore's ``network_stream`` response extension gives the socket of
  a streaming response, so closing the command listener can wake a blocked read (see
  `commands`). Missing: the read wakes at its read timeout instead.

- `process_target` / `set_process_target`: ``multiprocessing.process.BaseProcess._target``
  is the callable a ``Process(target=...)`` runs, replaced by a wrapper that routes the
  child's output to the task that started it (see `integrations.processes`). Missing: a
  ``Process`` started in a task writes where it would without the extension.

- `publish_under`: ipykernel 6's display publisher has one shared ``parent_header`` (no
  ``set_thread_parent``, which ipykernel 7 added); its ``session``, ``pub_socket`` and
  ``topic`` let a view send a message under the header of the cell that showed it while
  another cell runs. Missing: the message goes out under the running cell's header.

Not here on purpose: ``sys._getframe`` and ``sys._current_frames`` are documented functions
of the `sys` module (CPython-specific, as the runtime is: see `interrupt`), used directly.
"""

from __future__ import annotations

import socket
import threading
from concurrent.futures import thread as _futures_thread
from typing import Any

__all__ = ["is_executor_worker", "process_target", "publish_under", "response_socket", "set_process_target"]

#: The function a `ThreadPoolExecutor` worker thread runs; None if the stdlib renamed it.
_EXECUTOR_WORKER = getattr(_futures_thread, "_worker", None)


def is_executor_worker(thread: threading.Thread) -> bool:
    """True for a thread a `ThreadPoolExecutor` started to run work items (before it starts)."""
    if _EXECUTOR_WORKER is None:
        return False
    return getattr(thread, "_target", None) is _EXECUTOR_WORKER


def response_socket(response: Any) -> socket.socket | None:
    """The socket under an open httpx streaming response, or None when it cannot be found."""
    stream = response.extensions.get("network_stream")
    if stream is None:
        return None
    try:
        sock = stream.get_extra_info("socket")
    except Exception:
        return None
    return sock if isinstance(sock, socket.socket) else None


def process_target(process: Any) -> Any:
    """The ``target`` a ``multiprocessing.Process`` was made with, or None (none, or unknown)."""
    return getattr(process, "_target", None)


def set_process_target(process: Any, target: Any) -> None:
    """Replace the ``target`` a ``multiprocessing.Process`` will run (if it has the attribute)."""
    if hasattr(process, "_target"):
        process._target = target


def publish_under(display_pub: Any, parent: dict, msg_type: str, content: dict) -> bool:
    """Send an IOPub message with ``parent`` as its parent header through an ipykernel display
    publisher; False when the publisher lacks the parts this needs (nothing was sent)."""
    session = getattr(display_pub, "session", None)
    pub_socket = getattr(display_pub, "pub_socket", None)
    if session is None or pub_socket is None or not parent:
        return False
    session.send(pub_socket, msg_type, content, parent=parent, ident=getattr(display_pub, "topic", None))
    return True
