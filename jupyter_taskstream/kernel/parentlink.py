"""Tasks run in a child process of a task report into that task, not to the hub.

A process is a *child of a task* while it runs a pool work item the task submitted
(`workerside.parent`, set by `workerside.InTask`), or when a task started it with
``subprocess`` (`protocol.ENV_PARENT` in its environment: the kernel's `workerlink`
address and the task's id; see `integrations.processes`). There, the default runtime is
`child_runtime`: a `Runtime` of this process whose publisher is a `ParentPublisher`. Tasks
it runs (``ts.task``, a ``ts.progress`` loop or a tqdm bar with no task around it) are sent,
spec, statuses, progress with their child bars and captured lines, as JSON messages
(`workerside.EVENTS` frames) over the worker's one socket to the kernel, where
`childtasks` turns each into a child bar of the submitting task and its lines into the
task's log. The hub's address and secret are never used here: one channel, the one the
worker's output already takes.

Which task a child task reports into is decided when it starts: the item running then (a
pool worker serves several tasks over its life), else the environment. A task started in
a child process outside any item (a worker's initializer) has no parent and reports as
it would without the extension, and so does one whose kernel cannot be reached (a process
left running after its kernel exited).
"""

from __future__ import annotations

import json
import os
import threading
from typing import TYPE_CHECKING, Any, Callable

from ..protocol import ENV_PARENT
from ..protocol.batchbody import Lines
from .workerside import EVENTS, FRAME, parent, send, worker_socket

if TYPE_CHECKING:
    from .runtime import Runtime

__all__ = ["ParentPublisher", "child_runtime", "current_parent", "own_task"]

_lock = threading.Lock()
_runtime: tuple[int, Runtime] | None = None


def current_parent() -> tuple[str, str] | None:
    """``(workerlink address, task id)`` of the task this code reports into, or None."""
    item = parent.get()
    if item is not None:
        return item
    value = os.environ.get(ENV_PARENT, "")
    address, _, task_id = value.rpartition("|")
    return (address, task_id) if address and task_id else None


def child_runtime(config: Any = None) -> Runtime | None:
    """This process's runtime for tasks of a child of a task; None when it is no such child."""
    global _runtime
    where = current_parent()
    if where is None or worker_socket(where[0]) is None:
        return None  # not a child, or its kernel is gone: the process's own runtime, as without us
    pid = os.getpid()
    held = _runtime
    if held is not None and held[0] == pid:
        return held[1]
    with _lock:
        if _runtime is None or _runtime[0] != pid:  # a fork's copy belongs to its parent process
            from .runtime import Runtime

            runtime = Runtime(config, publisher=ParentPublisher(), kernel_id=None, commands=False, view=None)
            _runtime = (pid, runtime)
        return _runtime[1]


def own_task(name: str, config: Any = None) -> Any:
    """A started task of `child_runtime` for a library bar with no task around it, or None."""
    runtime = child_runtime(config)
    if runtime is None:
        return None
    from .task import Task

    task = Task(name.strip()[:200] or "progress", runtime=runtime)
    task.begin()
    return task


class ParentPublisher:
    """A `publisher.Publisher` stand-in that sends a child process's tasks to the submitting task.

    Each message goes out at once, synchronously (the runtime's pump sends progress at most
    10 times a second, lines in its batches), so everything a task sent before its item
    returned is in the socket before the result: the submitting task collects it when it
    ends (`childpipes.settle`).
    """

    url = ""
    secret = ""
    dropped_lines = 0

    def __init__(self) -> None:
        #: Child task id -> (socket, submitting task id), fixed when the task starts.
        self._routes: dict[str, tuple[Any, bytes]] = {}
        self.on_problem: Callable[[str], None] | None = None

    def task_spec(self, spec: dict[str, Any]) -> None:
        """Route the task by the item (or environment) of the moment, and announce it."""
        where = current_parent()
        sock = None if where is None else worker_socket(where[0])
        if sock is None:
            return  # no parent reachable: this task's reports are dropped, its output is the process's
        self._routes[spec["id"]] = (sock, where[1].encode("ascii"))  # type: ignore[index]
        self._send(spec["id"], {"spec": spec})

    def event(self, task_id: str, etype: str, data: dict[str, Any]) -> None:
        """Send one event of a routed task."""
        self._send(task_id, {"event": {"task": task_id, "type": etype, "data": data}})
        if etype == "status" and data.get("status") in ("completed", "failed", "cancelled"):
            self._routes.pop(task_id, None)

    def log_lines(self, task_id: str, stream: str, lines: Lines) -> None:
        """Send captured lines of a routed task (as a JSON list: the parent may be another version)."""
        listed = lines if isinstance(lines, list) else list(lines)
        self._send(task_id, {"lines": {"task": task_id, "stream": stream, "lines": listed}})

    def output_waiting(self, drain: Callable[[], None]) -> None:
        """Nothing: the runtime's pump splits output into lines 10 times a second, and at the end."""

    def flush(self, timeout: float = 10.0) -> bool:
        """Everything is sent synchronously: nothing waits."""
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Nothing to stop."""

    def flush_at_exit(self) -> None:
        """Nothing waits to be sent."""

    def _send(self, task_id: str, message: dict[str, Any]) -> None:
        route = self._routes.get(task_id)
        if route is None:
            return
        sock, prefix = route
        data = json.dumps(message, ensure_ascii=False).encode("utf-8", "surrogateescape")
        try:
            send(sock, FRAME.pack(EVENTS, len(prefix), len(data)) + prefix + data)
        except OSError:
            self._routes.pop(task_id, None)  # the kernel went away: nobody left to report to
