"""Output of process-pool workers, sent back to the task that submitted the work.

Work a task hands to a pool (``multiprocessing``, ``concurrent.futures.ProcessPoolExecutor``,
joblib's loky; see `integrations.processes`) is wrapped in `InTask`: a small picklable
callable that carries the address of this process's `WorkerLink` and the submitting task's
id. In the worker, while the work item runs, ``sys.stdout`` and ``sys.stderr`` are
`WorkerStream` objects that send whole lines over one Unix socket per worker process (made
on first use, reused by later items). Here, one reader thread per worker connection adds them
to the task's log, each line tagged ``[pid N] `` (several workers write at once).

Why per work item and not per worker: pools outlive tasks and are shared (loky reuses its
workers, a forkserver forks from a server started once, a pool made before the task is used
inside it). Routing by the item makes the rule simple: a worker's line belongs to the task
that submitted the item it was running, whichever start method or pool; output of a worker
outside items (an initializer, a library's own threads) goes where it would without the
extension. Only what the item writes through ``sys.stdout``/``sys.stderr`` is captured,
not writes to the file descriptors (C code, the worker's own subprocesses).

The same connection carries the worker's own tasks (``ts.progress``, tqdm, ``ts.task`` in an
item, or in a Python child process told the address by `child_environment`): `EVENTS`
frames, which `childtasks` turns into child bars of the submitting task (see `parentlink`).

The worker side is `workerside` (`InTask`, `WorkerStream`, the frame format). A worker
forked from a task's thread inherits that task as its context; an at-fork hook there clears
it, so the child never appends to a copy of the task nobody reads.
"""

from __future__ import annotations

import atexit
import codecs
import contextvars
import os
import select
import shutil
import socket
import struct
import tempfile
import threading
import weakref
from typing import TYPE_CHECKING, Any, Callable

from .lines import LineBuffer
from .childpipes import TAG, add_settler, child_ended, child_started, deliver
from .childtasks import ChildTasks
from .workerside import EVENTS, FRAME, InTask

if TYPE_CHECKING:
    from .taskcore import TaskCore

__all__ = ["WorkerLink", "child_environment", "link", "wrap"]

_STREAMS = ("stdout", "stderr")

_link_lock = threading.Lock()
_link: WorkerLink | None = None


def link() -> WorkerLink:
    """This process's `WorkerLink`, made and started on first use."""
    global _link
    with _link_lock:
        if _link is None or _link.pid != os.getpid():
            _link = WorkerLink()
        return _link


def wrap(fn: Callable, task: TaskCore, setup: str | None = None) -> InTask:
    """``fn`` as a work item whose output goes to ``task`` (``setup``: see `InTask`)."""
    server = link()
    server.register(task)
    return InTask(fn, server.address, task.id, setup)


def child_environment(task: TaskCore) -> str:
    """The value of `protocol.ENV_PARENT` for a child process ``task`` starts (see `parentlink`)."""
    server = link()
    server.register(task)
    return f"{server.address}|{task.id}"


class WorkerLink:
    """The listening socket workers send lines to, and a reader thread per worker connection."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        # A private directory (0700): no other user can connect and write into a task.
        self.directory = tempfile.mkdtemp(prefix="taskstream-")
        self.address = os.path.join(self.directory, "workers.sock")
        self._tasks: weakref.WeakValueDictionary[str, TaskCore] = weakref.WeakValueDictionary()
        self._connections: list[_Connection] = []
        self._lock = threading.Lock()
        self._accept_lock = threading.Lock()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(self.address)
        self._server.listen(128)
        self._server.setblocking(False)
        thread = threading.Thread(target=self._accept, name="taskstream-workers", daemon=True)
        contextvars.Context().run(thread.start)
        add_settler(self.settle)
        atexit.register(self.close)  # no socket directory left behind in /tmp

    def register(self, task: TaskCore) -> None:
        """Lines tagged with ``task``'s id go to it."""
        self._tasks[task.id] = task

    def task(self, task_id: str) -> TaskCore | None:
        """The registered task with this id, if it is still held anywhere."""
        return self._tasks.get(task_id)

    def settle(self, task: TaskCore) -> None:
        """Deliver what every worker has sent so far (the finishing task's lines among it)."""
        if self.pid != os.getpid():
            # A forked worker's copy: its sockets are the kernel's, and reading them would
            # take other workers' lines (and a lock a kernel thread held at the fork).
            return
        self._accept_pending()  # a worker that connected and wrote, not accepted yet
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            connection.read_available()

    def close(self) -> None:
        """Stop listening and remove the socket's directory (in the process that made them)."""
        if self.pid != os.getpid():
            return  # a forked child exiting: the kernel still listens there
        try:
            self._server.close()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def _accept(self) -> None:
        poller = select.poll()
        poller.register(self._server, select.POLLIN)
        while True:
            try:
                poller.poll()
            except OSError:
                return
            if not self._accept_pending():
                return

    def _accept_pending(self) -> bool:
        """Accept every waiting worker connection; False once the socket was closed."""
        with self._accept_lock:
            while True:
                try:
                    sock, _ = self._server.accept()
                except (BlockingIOError, InterruptedError):
                    return True
                except OSError:
                    return False
                connection = _Connection(self, sock)
                with self._lock:
                    self._connections.append(connection)
                reader = threading.Thread(target=connection.run, name="taskstream-worker-reader", daemon=True)
                contextvars.Context().run(reader.start)

    def _forget(self, connection: _Connection) -> None:
        with self._lock:
            if connection in self._connections:
                self._connections.remove(connection)


class _Connection:
    """One worker process's socket: frames in, whole lines out to their tasks."""

    def __init__(self, server: WorkerLink, sock: socket.socket):
        self.server = server
        self.sock = sock
        self.pid: int | None = None
        self.data = b""
        self.lock = threading.Lock()  # reader thread and `settle` take turns parsing
        self.buffers: dict[tuple[str, int], tuple[Any, LineBuffer]] = {}
        self.counted: set[str] = set()
        self.closed = False
        #: Pool workers are several processes by design: their lines always carry the tag.
        self.tagged = True
        #: The tasks this process ran itself (made on their first message).
        self.children: ChildTasks | None = None

    def run(self) -> None:
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        try:
            while not self.closed:
                poller.poll()
                if not self.read_available():
                    break
        finally:
            with self.lock:
                self._close()

    def read_available(self) -> bool:
        """Parse and deliver everything readable now; False once the worker hung up."""
        with self.lock:
            if self.closed:
                return False
            while True:
                try:
                    chunk = self.sock.recv(256 * 1024, socket.MSG_DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    return True
                except OSError:
                    chunk = b""
                if not chunk:
                    self._close()
                    return False
                self.data += chunk
                self._parse()

    def _parse(self) -> None:
        data, pos = self.data, 0
        if self.pid is None:
            if len(data) < 4:
                return
            (self.pid,) = struct.unpack_from("!I", data)
            pos = 4
        runs: list[tuple[tuple[str, int], list[str]]] = []  # in frame order: stdout and stderr interleave
        while len(data) - pos >= FRAME.size:
            stream, id_len, text_len = FRAME.unpack_from(data, pos)
            end = pos + FRAME.size + id_len + text_len
            if len(data) < end:
                break
            start = pos + FRAME.size
            task_id = data[start : start + id_len].decode("ascii", "replace")
            if stream == EVENTS:  # a task the worker ran itself (see `childtasks`)
                for (run_task, run_stream), lines in runs:
                    self._deliver(run_task, run_stream, lines)
                runs = []
                self._receive(task_id, data[start + id_len : end].decode("utf-8", "replace"))
                pos = end
                continue
            key = (task_id, stream)
            entry = self.buffers.get(key)
            if entry is None:
                entry = self.buffers[key] = (codecs.getincrementaldecoder("utf-8")("replace"), LineBuffer())
            decoder, buffer = entry
            lines = buffer.feed(decoder.decode(data[start + id_len : end]))
            if lines:
                if runs and runs[-1][0] == key:
                    runs[-1][1].extend(lines)
                else:
                    runs.append((key, lines))
            pos = end
        self.data = data[pos:]
        for (task_id, stream), lines in runs:
            self._deliver(task_id, stream, lines)

    def _deliver(self, task_id: str, stream: int, lines: list[str]) -> None:
        task = self.server.task(task_id)
        if task is None:
            return  # the task is gone from memory: nobody can see its lines anyway
        if task_id not in self.counted:
            self.counted.add(task_id)
            child_started(task, self)
        deliver(task, _STREAMS[stream & 1], lines, TAG.format(pid=self.pid))

    def _receive(self, task_id: str, text: str) -> None:
        task = self.server.task(task_id)
        if task is not None:
            if self.children is None:
                self.children = ChildTasks(self.pid)
            self.children.receive(task, text)

    def _close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.children is not None:
            self.children.close()
        for (task_id, stream), (decoder, buffer) in self.buffers.items():
            lines = buffer.feed(decoder.decode(b"", final=True))
            last = buffer.flush()
            if last is not None:
                lines.append(last)
            if lines:
                self._deliver(task_id, stream, lines)
        for task_id in self.counted:
            task = self.server.task(task_id)
            if task is not None:
                child_ended(task, self)
        self.sock.close()
        self.server._forget(self)
