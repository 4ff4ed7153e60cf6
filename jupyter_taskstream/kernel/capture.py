"""Captured output: ``sys.stdout``/``sys.stderr`` routed by task context, split into lines.

Once the runtime is first used, `install` puts a `StreamRouter` in front of each stream and
leaves it there for good. A write from code whose context has a running task (see
`context.current_task`) goes to that task's log; any other write goes to the stream that
was there before, unchanged. Keeping the router installed permanently matters because a
`logging.StreamHandler` stores the stream object it was given: handlers created after
`install` hold the router and are routed too. Handlers created *before* whose stream is the
replaced ``sys.stdout``/``sys.stderr`` are re-pointed at the router by `install`; handlers
holding any other object (e.g. ``sys.__stderr__``, a file) are left alone and not captured.
Output written to file descriptors directly (C extensions, subprocesses) is not captured.

A write in a task only appends the text to the task's `PendingOutput` (a print() is six
writes, so this path is kept to a context lookup and a list append, with no lock). Inside a
plain ``with task:`` block (and a `run` thread's body) it is cheaper still: the block *owns*
its thread (`claim`), and once a write has told the sender that output is waiting, this
thread's ``sys.stdout.write`` *is* the C ``append`` of the task's chunk list, found without
running any Python code (see `StreamRouter`), so print() costs about what it costs on a
file; each `PendingOutput.take` puts the routing function back, so the next write tells the
sender again. Blocks whose frame can suspend (generators, coroutines) never own a thread:
code of other contexts could run in it meanwhile. On that path ``sys.stdout.write``
returns None instead of the length (print() ignores it). The
task splits what piled up into lines in batches: when its publisher's sender asks (the
first write after a batch pokes it, so a lone line still leaves at once), at every pass of
the runtime's view pump (10/s, which bounds what a task can pile up even when the hub is
slow), when a snapshot needs it and when the task ends. `lines.LineBuffer` turns text into
complete lines the way a terminal shows them: a carriage return rewrites the pending line,
so a tqdm text bar stays one line.
"""

from __future__ import annotations

import inspect
import logging
import operator
import sys
import threading
from itertools import groupby
from types import FrameType
from typing import Any, Callable, TextIO

from ..protocol.batchbody import Lines, joined
from .context import current_task

__all__ = [
    "PendingOutput", "StreamRouter", "claim", "echo", "install", "release", "split_runs", "thread_entries",
]  # fmt: skip

STREAMS = ("stdout", "stderr")

_install_lock = threading.Lock()
#: The installed routers by stream name, for output written after its task ended.
_routers: dict[str, StreamRouter] = {}
#: Frames that can suspend mid-block and let other contexts run in their thread.
_SUSPENDS = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ITERABLE_COROUTINE | inspect.CO_ASYNC_GENERATOR


class PendingOutput:
    """What a task's code wrote and the task has not split into lines yet, in write order.

    ``chunks`` holds stdout text as ``str`` and stderr text as a 1-tuple ``(str,)``: one list
    keeps the two streams' order exactly without a lock, and print()'s stream costs nothing
    to tag. Writers append without a lock (``list.append`` is atomic); readers take chunks
    under ``lock`` with `take`, which removes only what it read.
    """

    __slots__ = ("chunks", "open", "waiting", "lock", "notify", "fast")

    def __init__(self, lock: Any, notify: Callable[[], None]):
        self.chunks: list[str | tuple[str]] = []
        #: False once the task ended: a write that finds it so takes its text back (`late`).
        self.open = True
        #: True once a write called `notify` since the last `take`: one call per batch.
        self.waiting = False
        self.lock = lock
        #: Someone should come and take the chunks (the first write after a `take`).
        self.notify = notify
        #: The `thread_entries` of the thread whose block owns this task (see `claim`).
        self.fast: dict[str, Any] | None = None

    def take(self) -> list[tuple[str, str]]:
        """Remove what was written so far, as ``(stream, text)`` runs in order (``lock`` held)."""
        # Cleared before reading, and the owner thread's writes routed again: a write after
        # this point notifies again, so none is stranded.
        self.waiting = False
        self._route_owner(self.fast)
        chunks = self.chunks
        n = len(chunks)
        if not n:
            return []
        try:
            # The usual case, stdout alone: joined in place. join runs no Python code, so no
            # other thread appends during it; one that appended since ``n`` was read shows in
            # the length, and then the copy below is taken instead. A copy of the list costs
            # ~6 ms of the interpreter lock per 100,000 print() lines (a reference count
            # touched twice on each of ~600,000 chunks).
            text = "".join(chunks)  # type: ignore[arg-type]
        except TypeError:  # stderr's 1-tuples among them
            text = None
        if text is not None and len(chunks) == n:
            del chunks[:n]
            return [("stdout", text)]
        taken = chunks[:n]
        del chunks[:n]  # not clear(): a chunk appended meanwhile stays for the next taker
        return split_runs(taken)

    def end(self) -> None:
        """The task ended: writes go back to routing (then to `late`), from any thread."""
        fast, self.fast = self.fast, None
        self._route_owner(fast)
        self.open = False

    @staticmethod
    def _route_owner(fast: dict[str, Any] | None) -> None:
        """The owner thread's stdout writes go through the routing function again."""
        if fast is not None:
            fast["write"] = fast["route"]

    def late(self, router: StreamRouter) -> None:
        """After the end, send chunks nobody took to the streams they would have gone to."""
        with self.lock:
            taken = self.take()
        for stream, text in taken:
            through = router if stream == router.name else _routers.get(stream)
            if through is not None and through.target is not None:
                through.target.write(text)


def split_runs(chunks: list[str | tuple[str]]) -> list[tuple[str, str]]:
    """``(stream, text)`` for each run of consecutive chunks of one stream, in order."""
    if not chunks:
        return []
    try:
        return [("stdout", "".join(chunks))]  # no stderr among them: the usual print() case
    except TypeError:
        pass
    return [
        (stream, "".join(c if stream == "stdout" else c[0] for c in run))  # type: ignore[misc]
        for stream, run in groupby(chunks, key=lambda c: "stdout" if type(c) is str else "stderr")
    ]


class StreamRouter(threading.local):
    """Stands in for ``sys.stdout`` or ``sys.stderr``: task output to the task, the rest through.

    A `threading.local`: each thread's attributes are its entries (see `thread_entries`), so
    print()'s lookup of ``write``, once per piece it writes, is one lookup in the thread's
    dict with no Python code run, and in a thread a task's block owns it finds the chunk
    list's C ``append``. What the threads share (the name, the original stream, an assigned
    ``write``, any attribute set on the router) lives on the router's own class, which
    `_router` makes; so do the original stream's other attributes (``encoding``, ``fileno``,
    ipykernel's ``set_parent``...), as properties. A ``__getattr__`` would pass those on
    more simply, but it sends every lookup, ``write`` included, through a Python-level
    hook (``python -m benchmarks.write_lookup`` compares the designs).
    """

    #: Shared by all threads: on the class `_router` makes.
    name: str
    #: The stream that was installed before; output outside tasks goes there.
    target: TextIO | None
    #: A ``write`` somebody assigned to the stream (IPython 9 tees each cell's output into
    #: its history this way): output outside tasks goes through it. Task output does not:
    #: it is the task's, not the cell's.
    outside: Callable[[str], Any] | None = None
    #: The routing function of `_router_write`, the same in every thread.
    _route: Callable[[str], Any]

    def __init__(self) -> None:
        # threading.local runs this once in each thread, at the thread's first use.
        route = self._route
        self.__dict__.update(write=route, route=route, owner=None, teeing=False, thread=threading.get_ident())

    def __setattr__(self, name: str, value: Any) -> None:
        # ``stream.write = f`` is `_assign_write`; any other attribute is shared, as on any object.
        if name == "write":
            self._assign_write(value)
        else:
            setattr(type(self), name, property(lambda _: value))  # as set: a function stays unbound

    def __delattr__(self, name: str) -> None:
        delattr(type(self), name)

    def _assign_write(self, value: Callable[[str], Any]) -> None:
        """``stream.write = f``: ``f`` sees output outside tasks; assigning back one of this
        router's own writes (what ``stream.write`` read before) undoes it."""
        if not callable(value):
            raise TypeError(f"write must be callable, not {type(value).__name__}")
        owner = thread_entries(self)["owner"]
        ours = value is self._route or (owner is not None and getattr(value, "__self__", None) is owner.chunks)
        self.outside = None if ours else value

    def writelines(self, lines: Any) -> None:
        """Write each string of ``lines``."""
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Flush the original stream; captured lines need no flushing.

        ipykernel's flush waits for its IOPub thread even with nothing buffered (~1 ms; IPython
        flushes both streams before every display, a task's widget included, and print(...,
        flush=True) in a task flushes each line). When its own flags say nothing waits to be
        sent, that wait orders nothing: sends leave that thread in the order they reach it.
        """
        target = self.target
        if target is not None and (
            getattr(target, "_flush_pending", True) or getattr(target, "_subprocess_flush_pending", True)
        ):
            target.flush()

    def __repr__(self) -> str:
        return f"<StreamRouter {self.name} -> {self.target!r}>"


def _router(name: str, target: TextIO | None) -> StreamRouter:
    """A router for ``sys.<name>`` in front of ``target``, with a class of its own (see `StreamRouter`).

    The original's attributes are those it has now: one it gains later is not seen through
    the router (ipykernel's and io's streams set theirs when made).
    """
    own = {*dir(StreamRouter), "write"}  # ``write`` is each thread's own
    passed = {
        attr: property(operator.attrgetter(f"target.{attr}"))
        for attr in (dir(target) if target is not None else ())
        if attr not in own and not (attr.startswith("__") and attr.endswith("__"))
    }
    cls = type("StreamRouter", (StreamRouter,), {**passed, "name": name, "target": target})
    router = cls.__new__(cls)  # `_router_write` needs the router; `__init__` needs its write
    cls._route = staticmethod(_router_write(router, name == "stdout"))
    router.__init__()
    return router


def thread_entries(router: StreamRouter) -> dict[str, Any]:
    """The calling thread's entries of ``router``: ``write`` (what the stream's ``write`` is
    in this thread: ``route``, or the C ``append`` of the chunk list of ``owner``, the
    `PendingOutput` whose block owns the thread), ``teeing`` (inside `StreamRouter.outside`)
    and ``thread`` (the thread's ident)."""
    return router.__dict__


def claim(out: PendingOutput, frame: FrameType | None) -> tuple | None:
    """The calling thread runs ``out``'s task block from ``frame`` on: let its stdout writes
    take the fast path (see the module docstring). Returns the token for `release`, or None
    when the frame can suspend (a generator or coroutine) or stdout is not routed."""
    router = _routers.get("stdout")
    if router is None or frame is None or frame.f_code.co_flags & _SUSPENDS:
        return None
    entries = thread_entries(router)
    outer = entries["owner"]
    if outer is not None:
        outer.fast = None  # a nested block: the outer task gets the thread back at `release`
    entries["write"] = entries["route"]
    entries["owner"] = out
    out.fast = entries
    return entries, outer


def release(out: PendingOutput, token: tuple | None) -> None:
    """``out``'s block ends in the thread that claimed it: writes are routed again."""
    if token is None:
        return
    entries, outer = token
    entries["write"] = entries["route"]  # first: whatever happens next, nothing lands in a closed list
    if entries["owner"] is not out:
        return
    out.fast = None
    entries["owner"] = outer if outer is not None and outer.open else None
    if entries["owner"] is not None:
        outer.fast = entries


def _router_write(router: StreamRouter, plain: bool) -> Callable[[str], int]:
    """The ``write`` of one router: a closure, because it runs several times per print().

    Attribute lookups on a `threading.local` are never specialized by CPython; closure
    variables cost nothing. In a task, the usual write is a type check, one list append and one test of
    two flags (see `PendingOutput`); stdout and stderr get a function each, so neither
    tests which one it is.
    """
    get_task = current_task.get
    get_ident = threading.get_ident

    def outside(text: str) -> int:
        # Through a ``write`` someone assigned (see `StreamRouter.outside`), once: when it
        # calls the write it replaced (this router's), the text goes on to the target.
        wrapper = router.outside
        if wrapper is not None:
            entries = thread_entries(router)
            if not entries["teeing"]:
                entries["teeing"] = True
                try:
                    return wrapper(text)
                finally:
                    entries["teeing"] = False
        target = router.target
        if target is None:  # pythonw and friends have no stdout
            return len(text)
        return target.write(text)

    def settle(out: PendingOutput, text: str) -> int:
        # Checked after the append: a task that ends meanwhile either took the chunk into
        # its log or left it for `late`, never neither.
        if not out.open:
            out.late(router)
        elif not out.waiting:
            out.waiting = True
            fast = out.fast
            if plain and fast is not None and fast["thread"] == get_ident():
                # Only the owner thread switches itself; `take` and `end` switch it back. A take
                # clears ``waiting`` before it switches back: if one came between the two lines
                # above and here, undo, or later writes would wait for the pump's next pass.
                fast["write"] = out.chunks.append
                if not out.waiting or not out.open or out.fast is not fast:
                    fast["write"] = fast["route"]
            out.notify()
        return len(text)

    def write_stdout(text: str) -> int:
        """Write ``text`` to the current task's log, or to the original stream outside tasks."""
        task = get_task()
        if task is None:
            return outside(text)
        if type(text) is not str and not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        out = task.pending_output
        out.chunks.append(text)
        if out.waiting and out.open:
            return len(text)
        return settle(out, text)

    def write_stderr(text: str) -> int:
        """Write ``text`` to the current task's log, or to the original stream outside tasks."""
        task = get_task()
        if task is None:
            return outside(text)
        if type(text) is not str and not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        out = task.pending_output
        out.chunks.append((text,))
        if out.waiting and out.open:
            return len(text)
        return settle(out, text)

    return write_stdout if plain else write_stderr


def echo(stream: str, lines: Lines) -> None:
    """Write a task's ``lines`` to the stream they were captured from, as they would have gone."""
    router = _routers.get(stream)
    target = router.target if router is not None else None
    if target is not None:
        target.write(joined(lines) + "\n")


def install() -> None:
    """Put a `StreamRouter` in front of ``sys.stdout`` and ``sys.stderr`` unless one is there."""
    with _install_lock:
        for name in STREAMS:
            current = getattr(sys, name)
            if isinstance(current, StreamRouter):
                continue
            router = _router(name, current)
            setattr(sys, name, router)
            _routers[name] = router
            if current is not None:
                _repoint_handlers(current, router)


def _repoint_handlers(old: Any, new: StreamRouter) -> None:
    """Point logging handlers that hold the replaced stream object at its router."""
    loggers = [logging.getLogger()]
    loggers += [lg for lg in list(logging.Logger.manager.loggerDict.values()) if isinstance(lg, logging.Logger)]
    for logger in loggers:
        for handler in list(logger.handlers):
            if isinstance(handler, logging.StreamHandler) and handler.stream is old:
                handler.setStream(new)  # type: ignore[arg-type]
