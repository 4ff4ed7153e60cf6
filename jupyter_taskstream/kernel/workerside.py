"""The worker side of `workerlink`: what runs in a pool worker while it runs a task's item.

`InTask` is the picklable callable a task's work item is sent as. In the worker, while the
item runs, ``sys.stdout`` and ``sys.stderr`` are `WorkerStream` objects: complete lines pile
up without a lock and leave over one Unix socket per worker process (made on first use,
reused by later items) as one frame per run of a stream, at most `HOLD` seconds after they
were written (a flusher thread), at once past `HOLD_BYTES`, and always before the item
returns its result, so a task that ends on the result has every line. A partial line left
at the end of an item is a line of its own.

A frame is `FRAME` (stream 0/1, length of the task id, length of the text), the task id,
then the UTF-8 text; a connection starts with the worker's pid (``!I``). Stream `EVENTS`
carries one JSON message of a task the worker runs itself (`parentlink`: its bars and log
go to the submitting task). While an item runs, `parent` names where those go. This module
imports only the standard library and `context`, so a worker pays little to load it.
"""

from __future__ import annotations

import os
import socket
import struct
import sys
import contextvars
import threading
import time
from itertools import groupby
from operator import itemgetter
from typing import Any, Callable

from .context import current_task

__all__ = ["EVENTS", "FRAME", "HOLD", "HOLD_BYTES", "InTask", "WorkerStream", "parent", "send", "worker_socket"]

#: Frame header: stream (0 stdout, 1 stderr, `EVENTS`), length of the task id, length of the text.
FRAME = struct.Struct("!BBI")
#: The frame's "stream" for a JSON message about a task run in the worker (see `parentlink`).
EVENTS = 2

#: ``(address, task id)`` of the task whose item runs in this context (set by `InTask`).
parent: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("taskstream_parent", default=None)

_worker_sockets: dict[str, socket.socket | None] = {}
#: Frames from several threads (the flusher, a task's pump) must not interleave on one socket.
_send_lock = threading.Lock()


def send(sock: socket.socket, data: bytes) -> None:
    """Send whole frames on a worker's socket (raises OSError once the kernel is gone)."""
    with _send_lock:
        sock.sendall(data)


def worker_socket(address: str) -> socket.socket | None:
    """This worker's connection to the submitting process's `WorkerLink` (one, reused)."""
    sock = _worker_sockets.get(address, False)
    if sock is not False:
        return sock  # type: ignore[return-value]
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(address)
        sock.sendall(struct.pack("!I", os.getpid()))
    except OSError:
        sock = None  # the kernel is gone or not reachable: the worker's output stays its own
    _worker_sockets[address] = sock
    return sock


def _forked_child() -> None:
    # The child of a fork runs the forking thread's context: a task whose log nobody reads
    # here. Connections inherited from a parent worker are the parent's.
    current_task.set(None)
    _worker_sockets.clear()
    _active.clear()


os.register_at_fork(after_in_child=_forked_child)


#: Seconds a worker holds complete lines to send them together (a flusher thread sends them):
#: at 100,000 lines, one send per line would cost more than the lines.
HOLD = 0.02
#: Bytes a worker holds at most before it sends.
HOLD_BYTES = 64 * 1024

_active: set[_Outgoing] = set()
_flusher_pid: int | None = None
_flusher_lock = threading.Lock()


class _Outgoing:
    """What one work item's two streams wrote and the worker has not sent yet, in write order.

    Writers append to ``held`` without a lock (``list.append`` is atomic); `send` takes what
    it read and leaves what was appended meanwhile, as `capture.PendingOutput` does.
    """

    def __init__(self, sock: socket.socket, task_id: str, originals: tuple[Any, Any]):
        self.sock = sock
        self.prefix = task_id.encode("ascii")
        self.originals = originals
        self.held: list[tuple[int, str]] = []
        self.size = 0
        self.lock = threading.Lock()

    def add(self, stream: int, text: str) -> None:
        """Hold whole lines of one stream; send at once when enough piled up."""
        self.held.append((stream, text))
        self.size += len(text)
        if self.size >= HOLD_BYTES:
            self.send()

    def send(self) -> None:
        """Send everything held."""
        with self.lock:
            held = self.held
            n = len(held)
            if not n:
                return
            taken = held[:n]
            del held[:n]
            self.size = 0
            frames = []
            # One frame per run of one stream: the reader parses a few frames, not every line.
            for stream, run in groupby(taken, key=itemgetter(0)):
                data = "".join(text for _, text in run).encode("utf-8", "surrogateescape")
                frames.append(FRAME.pack(stream, len(self.prefix), len(data)) + self.prefix + data)
            try:
                send(self.sock, b"".join(frames))
            except OSError:
                for stream, text in taken:  # the kernel went away: the lines stay the worker's
                    self.originals[stream].write(text)


def _flush_held() -> None:
    while True:
        time.sleep(HOLD)
        for outgoing in list(_active):
            try:
                outgoing.send()
            except Exception:  # noqa: S110 - the flusher must outlive one item's bad text; its end sends again
                pass


def _start_flusher() -> None:
    global _flusher_pid
    with _flusher_lock:
        if _flusher_pid != os.getpid():
            _flusher_pid = os.getpid()
            threading.Thread(target=_flush_held, name="taskstream-worker-flush", daemon=True).start()


class WorkerStream:
    """``sys.stdout``/``sys.stderr`` of a worker while it runs a task's item: whole lines to the task.

    Complete lines leave within `HOLD` seconds, together with others written meanwhile; a
    partial line waits for its newline or the end of the item.
    """

    def __init__(self, outgoing: _Outgoing, stream: int, original: Any):
        self._outgoing = outgoing
        self._stream = stream
        self._original = original
        self._pending = ""

    def write(self, text: str) -> int:
        """Hold the complete lines of what was written so far for sending."""
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if "\n" not in text:
            self._pending += text
            return len(text)
        cut = text.rfind("\n") + 1
        whole, self._pending = self._pending + text[:cut], text[cut:]
        self._outgoing.add(self._stream, whole)
        return len(text)

    def writelines(self, lines: Any) -> None:
        """Write each string of ``lines``."""
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Nothing to do: complete lines leave within `HOLD`, a partial line waits for its end."""

    def finish(self) -> None:
        """The item ended: a partial line it left is a line of its own."""
        if self._pending:
            text, self._pending = self._pending + "\n", ""
            self._outgoing.add(self._stream, text)

    def isatty(self) -> bool:
        """What the worker's own stream answers."""
        return bool(getattr(self._original, "isatty", lambda: False)())

    def __getattr__(self, name: str) -> Any:
        # encoding, errors, fileno, buffer...: the worker's own stream's.
        return getattr(self._original, name)


_set_up: set[tuple[int, str]] = set()


def _setup(name: str) -> None:
    """Call ``"module:function"`` once per process (a spawned worker starts without the bridges)."""
    key = (os.getpid(), name)
    if key in _set_up:
        return
    _set_up.add(key)
    module, _, function = name.partition(":")
    try:
        getattr(importlib.import_module(module), function)()
    except Exception:  # noqa: S110 - without the bridges the item still runs, its prints still go
        pass


class InTask:
    """A work item sent to a worker: runs ``fn`` with its output going to the submitting task.

    ``setup`` (``"module:function"``) is called once per worker process before its first
    item: the caller's way to turn its library bridges on there (tqdm bars in a spawned worker).
    """

    def __init__(self, fn: Callable, address: str, task_id: str, setup: str | None = None):
        self.fn = fn
        self.address = address
        self.task_id = task_id
        self.setup = setup

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        sock = worker_socket(self.address)
        if sock is None:
            return self.fn(*args, **kwargs)
        if self.setup:
            _setup(self.setup)
        token = parent.set((self.address, self.task_id))
        stdout, stderr = sys.stdout, sys.stderr
        outgoing = _Outgoing(sock, self.task_id, (stdout, stderr))
        sys.stdout = out = WorkerStream(outgoing, 0, stdout)
        sys.stderr = err = WorkerStream(outgoing, 1, stderr)
        _start_flusher()
        _active.add(outgoing)
        try:
            return self.fn(*args, **kwargs)
        finally:
            parent.reset(token)
            sys.stdout, sys.stderr = stdout, stderr
            out.finish()
            err.finish()
            _active.discard(outgoing)
            outgoing.send()  # before the result: the task may end as soon as it has it

    def __repr__(self) -> str:
        return f"<InTask {self.fn!r} for task {self.task_id}>"
