"""Dask inside tasks: progress, workers' output and cancel of the work a task sends to Dask.

Turned on by itself: when a task starts in a process that has imported dask (or when
dask is imported later), `install_local` and `install_distributed` hook in once. Outside
tasks nothing changes. `track` does the same by hand (and prepares a client at once).

distributed (``Client``)
    Every graph a task's code sends (``submit``, ``map``, ``compute``, ``persist``,
    ``client.get`` behind ``dask.compute``) passes through one adapter around
    ``Client._graph_to_futures``; it annotates the graph with the task id
    (``dask.annotate(taskstream=...)``) and counts the futures it returns, grouped by key
    prefix the way ``distributed.progress`` groups them (`KeyGroups`). The task's main bar
    shows finished/total keys and its message the per-prefix counts; a failed key adds a
    log line naming it and its exception. The first time a client is used in a task, it
    registers the `~.dask_worker.OutputForwarder` worker plugin and subscribes to its
    topic: what task code prints or logs on a worker reaches the task's log as
    ``[worker-address] line``. Cancelling the task cancels its pending futures
    (``Client.cancel``); code waiting on them gets ``CancelledError`` and the task ends
    ``cancelled``.

local schedulers (threads, processes, sync)
    A global `dask.callbacks.Callback` counts the keys of ``dask.compute`` calls made in a
    task the same way, and stops the computation at the next key once the task is
    cancelled. ``dask.diagnostics.ProgressBar`` in a task stops writing bar text (the task
    shows that progress already).
"""

from __future__ import annotations

import contextvars
import functools
import threading
import weakref
from typing import Any, Callable, Iterable

from ..errors import TaskCancelled
from ..kernel.context import current_task
from ..kernel.task import Task

__all__ = ["KeyGroups", "install_distributed", "install_local", "track", "tracker_of"]

#: What a task's log says when its Dask workers cannot forward their output.
NO_OUTPUT = (
    "dask: the workers' output is not forwarded to this task ({reason}); "
    "progress still shows. Install jupyter_taskstream[dask] where the workers run to see it."
)


class KeyGroups:
    """Finished, failed and total keys per key prefix, like the groups of Dask's ``progress()``.

    The one structure both schedulers feed: counts of single futures (`add`, `finish`) plus
    whole-graph counts that the scheduler reports per computation (`set_source`). `rows` is
    what a view (the message today, child bars later) draws from.
    """

    def __init__(self) -> None:
        #: prefix -> [done, erred, total], of keys counted one by one
        self._groups: dict[str, list[int]] = {}
        #: computation -> {prefix: (done, total)}, as the scheduler last reported it
        self._sources: dict[Any, dict[str, tuple[int, int]]] = {}
        self._lock = threading.Lock()

    def add(self, prefix: str, n: int = 1) -> None:
        """``n`` more keys of ``prefix`` to run."""
        with self._lock:
            group = self._groups.get(prefix)
            if group is None:
                group = self._groups[prefix] = [0, 0, 0]
            group[2] += n

    def finish(self, prefix: str, erred: bool = False) -> None:
        """One key of ``prefix`` finished (or failed)."""
        with self._lock:
            group = self._groups.get(prefix)
            if group is not None:
                group[1 if erred else 0] += 1

    def set_source(self, source: Any, counts: dict[str, tuple[int, int]]) -> None:
        """The latest ``{prefix: (done, total)}`` of one whole computation (replaces its last)."""
        with self._lock:
            self._sources[source] = dict(counts)

    def complete_source(self, source: Any) -> None:
        """A computation finished: all its keys are done, whatever the last report said."""
        with self._lock:
            counts = self._sources.get(source)
            if counts is not None:
                self._sources[source] = {p: (t, t) for p, (_, t) in counts.items()}

    def rows(self) -> list[tuple[str, int, int, int]]:
        """``(prefix, done, erred, total)`` per prefix, in the order prefixes first appeared."""
        with self._lock:
            merged = {prefix: list(group) for prefix, group in self._groups.items()}
            for counts in self._sources.values():
                for prefix, (done, total) in counts.items():
                    group = merged.setdefault(prefix, [0, 0, 0])
                    group[0] += done
                    group[2] += total
        return [(prefix, d, e, t) for prefix, (d, e, t) in merged.items()]

    @property
    def done(self) -> int:
        """Keys finished, over all prefixes."""
        return sum(r[1] for r in self.rows())

    @property
    def total(self) -> int:
        """Keys expected, over all prefixes."""
        return sum(r[3] for r in self.rows())

    def describe(self) -> str:
        """One line for the task's message: ``inc 3/10 · add 1/5 (1 failed)``."""
        parts = []
        for prefix, done, erred, total in self.rows():
            part = f"{prefix} {done}/{total}"
            if erred:
                part += f" ({erred} failed)"
            parts.append(part)
        return " · ".join(parts)


class TaskTracker:
    """What one task sent to Dask: its key groups, its pending futures, its clients."""

    def __init__(self, task: Task):
        self._task = weakref.ref(task)
        self.task_id = task.id
        self.groups = KeyGroups()
        self._lock = threading.Lock()
        self._pending: dict[int, Any] = {}
        #: Held while one future's end is counted and logged, so `_settle` waits for it.
        self._counting = threading.RLock()
        self._told: set[str] = set()
        self._on_change: list[Callable[[KeyGroups], Any]] = []
        self._feeds: list[_GraphFeed] = []
        task.on_cancel(self._cancelled)
        task.on_ending(self._settle)

    @property
    def task(self) -> Task | None:
        return self._task()

    def watch(self, callback: Callable[[KeyGroups], Any]) -> None:
        """Call ``callback(groups)`` after every change of the counts (for child bars)."""
        self._on_change.append(callback)

    # ---- distributed futures -----------------------------------------------------------

    def add_futures(self, futures: Iterable[Any], count: bool = True) -> None:
        """Watch ``futures`` finish (for failures and cancel); count them in unless ``count`` is False."""
        from dask.utils import key_split

        futures = list(futures)
        with self._lock:
            for future in futures:
                self._pending[id(future)] = (future, count)
        if count:
            for future in futures:
                self.groups.add(key_split(future.key))
            self._report()
        for future in futures:
            future.add_done_callback(self._future_done)

    def _future_done(self, future: Any) -> None:
        with self._counting:
            self._count_done(future)

    def _count_done(self, future: Any) -> None:
        from dask.utils import key_split

        with self._lock:
            entry = self._pending.pop(id(future), None)
        if entry is None:
            return  # settled already, or handed to Client.cancel
        status = future.status
        if status == "cancelled":
            return
        erred = status == "error"
        if entry[1]:
            self.groups.finish(key_split(future.key), erred)
        if erred:
            self.log(f"dask: key {future.key!r} failed: {_exception_text(future)}")
        self._report()

    def _settle(self, task: Task) -> None:
        """The task ends: count the futures that are done but whose callback has not run yet.

        The code that waited on them may be faster than Dask's callback thread; this keeps
        the final count and the failure lines on the task.
        """
        with self._counting:
            with self._lock:
                done = [f for f, _ in self._pending.values() if f.done()]
            for future in done:
                self._count_done(future)
        for feed in list(self._feeds):
            feed.settle()

    def _cancelled(self, task: Task) -> None:
        """The task was cancelled: cancel its pending futures, without blocking the caller."""
        with self._lock:
            futures, self._pending = [f for f, _ in self._pending.values()], {}
        for feed in list(self._feeds):
            feed.stop()
        by_client: dict[int, tuple[Any, list]] = {}
        for future in futures:
            by_client.setdefault(id(future.client), (future.client, []))[1].append(future)
        for client, group in by_client.values():
            thread = threading.Thread(
                target=_cancel_futures, args=(client, group, task.name), name="taskstream-dask-cancel", daemon=True
            )
            thread.start()

    def follow_graph(self, client: Any, futures: list) -> None:
        """Count every key of the graph behind ``futures`` by prefix, as the scheduler reports them."""
        feed = _GraphFeed(self, client, futures)
        self._feeds.append(feed)
        feed.start()

    def feed_ended(self, feed: _GraphFeed) -> None:
        if feed in self._feeds:
            self._feeds.remove(feed)

    # ---- local schedulers ----------------------------------------------------------------

    def add_keys(self, prefixes: Iterable[str]) -> None:
        """Count in keys a local scheduler is about to run, by prefix."""
        for prefix in prefixes:
            self.groups.add(prefix)
        self._report()

    def key_done(self, prefix: str) -> None:
        self.groups.finish(prefix)
        self._report()

    # ---- reporting -----------------------------------------------------------------------

    def log(self, text: str) -> None:
        """Add ``text`` to the task's log while it runs."""
        task = self.task
        if task is not None and not task.done:
            task.log(text)

    def tell_once(self, what: str, text: str) -> None:
        """Log ``text`` the first time ``what`` happens for this task."""
        with self._lock:
            if what in self._told:
                return
            self._told.add(what)
        self.log(text)

    def _report(self) -> None:
        task = self.task
        if task is None or task.done:
            return
        groups = self.groups
        rows = groups.rows()
        try:
            task.set(current=sum(r[1] for r in rows), total=sum(r[3] for r in rows), message=groups.describe())
        except TaskCancelled:
            pass  # the task's own code gets the cancel; a Dask callback thread must not
        for callback in self._on_change:
            try:
                callback(groups)
            except Exception:
                pass


class _GraphFeed:
    """Every key of one computation by prefix, as the scheduler counts them for Dask's ``progress()``.

    Runs Dask's own `MultiProgressBar` machinery (the scheduler's ``MultiProgress`` plugin
    over a ``feed`` comm, ``complete=True``), so nothing of this package runs on the
    scheduler. Until the first report, the computation's output futures stand in for it.
    """

    def __init__(self, tracker: TaskTracker, client: Any, futures: list):
        from dask.utils import key_split

        self.tracker = tracker
        self.client = client
        self.futures = futures
        self.bar: Any = None
        self.reported = False
        seed: dict[str, tuple[int, int]] = {}
        for future in futures:
            prefix = key_split(future.key)
            seed[prefix] = (0, seed.get(prefix, (0, 0))[1] + 1)
        tracker.groups.set_source(self, seed)

    def start(self) -> None:
        from distributed.diagnostics.progressbar import MultiProgressBar

        feed = self

        class Feed(MultiProgressBar):
            def _draw_bar(self, remaining: dict, all: dict, status: str = "", **kwargs: Any) -> None:
                feed.report(remaining, all)

            def _draw_stop(self, **kwargs: Any) -> None:
                # Keys finished before the scheduler's plugin started watching can stay
                # "remaining" in its last report: a finished computation is complete.
                if kwargs.get("status") == "finished":
                    feed.complete()

            async def listen(self) -> None:
                try:
                    await super().listen()
                except Exception:
                    pass  # the comm closed under it: the task ended, or the client closed
                finally:
                    feed.tracker.feed_ended(feed)

        self.bar = Feed(self.futures, scheduler=self.client.scheduler.address, complete=True, interval="100ms")
        self.client.loop.add_callback(self.bar.listen)
        self.tracker._report()

    def report(self, remaining: dict, all: dict) -> None:
        self.reported = True
        self.tracker.groups.set_source(self, {p: (n - remaining.get(p, 0), n) for p, n in all.items()})
        self.tracker._report()

    def complete(self) -> None:
        self.tracker.groups.complete_source(self)
        self.tracker._report()

    def settle(self) -> None:
        """The task ends: a computation whose outputs all exist is complete; stop listening."""
        if self.futures and all(f.status == "finished" for f in self.futures):
            self.complete()
        self.stop()

    def stop(self) -> None:
        comm = getattr(self.bar, "comm", None)
        if comm is not None and not comm.closed():
            self.client.loop.add_callback(comm.close)


_trackers: weakref.WeakValueDictionary[str, TaskTracker] = weakref.WeakValueDictionary()
_trackers_lock = threading.Lock()
#: Holds each tracker as long as its task lives (the task holds the tracker's cancel hook too).
_by_task: weakref.WeakKeyDictionary[Task, TaskTracker] = weakref.WeakKeyDictionary()


def tracker_of(task: Task) -> TaskTracker:
    """The `TaskTracker` of ``task`` (made on first use)."""
    with _trackers_lock:
        tracker = _by_task.get(task)
        if tracker is None:
            tracker = _by_task[task] = _trackers[task.id] = TaskTracker(task)
        return tracker


def _cancel_futures(client: Any, futures: list, name: str) -> None:
    try:
        client.cancel(futures, reason=f"taskstream task {name!r} was cancelled")
    except Exception:
        pass  # a closed client has nothing left to cancel


def _exception_text(future: Any) -> str:
    try:
        exc = future.exception(timeout=5)
    except Exception as e:  # the client went away meanwhile
        return f"(exception not available: {type(e).__name__})"
    return f"{type(exc).__name__}: {exc}"


# ---- distributed ---------------------------------------------------------------------------

_install_lock = threading.Lock()
_installed: set[str] = set()


class _ClientState:
    """Per client: whether its workers forward output, and why not."""

    __slots__ = ("ready", "reason", "lock")

    def __init__(self) -> None:
        self.ready = False
        self.reason: str | None = None
        self.lock = threading.Lock()


_clients: weakref.WeakKeyDictionary[Any, _ClientState] = weakref.WeakKeyDictionary()
_clients_lock = threading.Lock()


#: True while a task's code is in Client.compute/persist/get: count the whole graph, not the outputs.
_whole_graph: contextvars.ContextVar[bool] = contextvars.ContextVar("taskstream_dask_whole_graph", default=False)


def install_distributed() -> None:
    """Hook the adapter into ``distributed.Client`` (idempotent; imports distributed)."""
    with _install_lock:
        if "distributed" in _installed:
            return
        _installed.add("distributed")
    from distributed import Client

    patch_graph_to_futures(Client)
    for name in ("compute", "persist", "get"):
        setattr(Client, name, _counting_whole_graph(getattr(Client, name)))
    from distributed.diagnostics.progressbar import TextProgressBar

    quiet_text_progress_bar(TextProgressBar)


def quiet_text_progress_bar(bar_class: type) -> None:
    """Inside a task, ``distributed.progress()``'s text bar writes nothing: the task has those counts.

    Relies on the bar writing only in ``_draw_bar``/``_draw_stop``, which run on the client's
    loop in a copy of the caller's context (so the task is current there).
    """
    draw, stop = bar_class._draw_bar, bar_class._draw_stop
    if getattr(draw, "__taskstream__", False):
        return

    @functools.wraps(draw)
    def _draw_bar(self: Any, *args: Any, **kwargs: Any) -> None:
        if current_task.get() is None:
            draw(self, *args, **kwargs)

    @functools.wraps(stop)
    def _draw_stop(self: Any, *args: Any, **kwargs: Any) -> None:
        if current_task.get() is None:
            stop(self, *args, **kwargs)

    _draw_bar.__taskstream__ = True  # type: ignore[attr-defined]
    bar_class._draw_bar, bar_class._draw_stop = _draw_bar, _draw_stop


def _counting_whole_graph(method: Callable) -> Callable:
    """Wrap a public Client method that sends a collection's graph: its keys count, not just its outputs."""
    if getattr(method, "__taskstream__", False):
        return method

    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        if current_task.get() is None:
            return method(self, *args, **kwargs)
        token = _whole_graph.set(True)
        try:
            return method(self, *args, **kwargs)
        finally:
            _whole_graph.reset(token)

    call.__taskstream__ = True  # type: ignore[attr-defined]
    return call


def patch_graph_to_futures(client_class: type) -> None:
    """The adapter around ``Client._graph_to_futures``, the one path every submission takes.

    Relies on: ``_graph_to_futures(self, expr, keys, ...)`` returning ``{key: Future}``,
    and merging ``dask.get_annotations()`` into the graph's annotations
    (tests/integrations/test_dask_adapter.py checks both).
    """
    original = client_class._graph_to_futures
    if getattr(original, "__taskstream__", False):
        return
    import dask

    @functools.wraps(original)
    def _graph_to_futures(self: Any, *args: Any, **kwargs: Any) -> Any:
        task = current_task.get()
        if task is None:
            return original(self, *args, **kwargs)
        tracker = tracker_of(task)
        prepare_client(self, tracker)
        with dask.annotate(taskstream=task.id):
            futures = original(self, *args, **kwargs)
        if _whole_graph.get():
            tracker.add_futures(futures.values(), count=False)
            tracker.follow_graph(self, list(futures.values()))
        else:
            tracker.add_futures(futures.values())
        return futures

    _graph_to_futures.__taskstream__ = True  # type: ignore[attr-defined]
    client_class._graph_to_futures = _graph_to_futures


def prepare_client(client: Any, tracker: TaskTracker | None = None) -> None:
    """Once per client: register the worker plugin and subscribe to its output topic."""
    with _clients_lock:
        state = _clients.get(client)
        if state is None:
            state = _clients[client] = _ClientState()
    with state.lock:
        if not state.ready:
            state.ready = True
            state.reason = _set_up_forwarding(client)
    if state.reason is not None and tracker is not None:
        tracker.tell_once(f"no-output-{id(client)}", NO_OUTPUT.format(reason=state.reason))


def _set_up_forwarding(client: Any) -> str | None:
    """Register the plugin and subscribe; the reason it cannot forward, or None."""
    from .dask_worker import TOPIC, OutputForwarder

    if client.asynchronous:
        return "an asynchronous Client is not prepared by itself: call jupyter_taskstream.integrations.dask.track(client) outside the event loop"
    client.subscribe_topic(TOPIC, _on_worker_output)
    try:
        client.register_plugin(OutputForwarder())  # idempotent: a class attribute
    except ModuleNotFoundError as e:
        return f"the workers cannot import {e.name or 'jupyter_taskstream'}"
    except Exception as e:
        return f"the worker plugin failed: {type(e).__name__}: {e}"
    return None


def _on_worker_output(event: tuple[float, Any]) -> None:
    """Handler of the plugin's topic (runs on the client's event loop): lines to their task."""
    _, msg = event
    if not isinstance(msg, dict):
        return
    tracker = _trackers.get(msg.get("task", ""))
    if tracker is None:
        return  # another kernel's task, or one this process forgot
    worker = msg.get("worker", "?")
    lines = [f"[{worker}] {text}" for _stream, text in msg.get("lines", ())]
    if lines:
        tracker.log("\n".join(lines))


def track(client: Any = None) -> None:
    """Turn the Dask integration on now and prepare ``client`` (the default client if None).

    Not needed in the usual case: a task turns the integration on by itself once dask is
    imported, and prepares each client the first time the task uses it. Call it outside
    the event loop for an asynchronous client, or to pay the plugin's registration before
    the first task.
    """
    install_local()
    install_distributed()
    if client is None:
        from distributed import default_client

        client = default_client()
    prepare_client(client)


# ---- local schedulers ------------------------------------------------------------------------


def install_local() -> None:
    """Register the local schedulers' callback and quiet ProgressBar inside tasks (idempotent)."""
    with _install_lock:
        if "local" in _installed:
            return
        _installed.add("local")
    from dask.callbacks import Callback
    from dask.diagnostics.progress import ProgressBar

    class LocalProgress(Callback):
        """Counts the keys of local-scheduler runs made inside a task into that task."""

        def __init__(self) -> None:
            super().__init__()
            self._runs: dict[int, TaskTracker] = {}

        def _start_state(self, dsk: Any, state: dict) -> None:
            task = current_task.get()
            if task is None:
                return
            from dask.utils import key_split

            tracker = tracker_of(task)
            self._runs[id(state)] = tracker
            keys = [*state["ready"], *state["waiting"], *state["running"]]
            tracker.add_keys(key_split(k) for k in keys)

        def _pretask(self, key: Any, dsk: Any, state: dict) -> None:
            tracker = self._runs.get(id(state))
            if tracker is not None:
                task = tracker.task
                if task is not None and task.cancel_requested:
                    raise TaskCancelled(f"task {task.name!r} ({task.id}) was cancelled")

        def _posttask(self, key: Any, result: Any, dsk: Any, state: dict, worker_id: Any) -> None:
            tracker = self._runs.get(id(state))
            if tracker is not None:
                from dask.utils import key_split

                tracker.key_done(key_split(key))

        def _finish(self, dsk: Any, state: dict, errored: bool) -> None:
            self._runs.pop(id(state), None)

    LocalProgress().register()
    quiet_progress_bar(ProgressBar)


def quiet_progress_bar(bar_class: type) -> None:
    """Inside a task, ``ProgressBar`` writes nothing: the task counts the keys already.

    Relies on ProgressBar writing only through ``self._file`` (None writes nothing), and
    on ``_start``/``_finish`` running in the computing thread.
    """
    start, finish = bar_class._start, bar_class._finish
    if getattr(start, "__taskstream__", False):
        return

    @functools.wraps(start)
    def _start(self: Any, dsk: Any) -> None:
        if current_task.get() is not None and self._file is not None:
            self._taskstream_file, self._file = self._file, None
        start(self, dsk)

    @functools.wraps(finish)
    def _finish(self: Any, dsk: Any, state: Any, errored: bool) -> None:
        try:
            finish(self, dsk, state, errored)
        finally:
            held = self.__dict__.pop("_taskstream_file", None)
            if held is not None:
                self._file = held

    _start.__taskstream__ = True  # type: ignore[attr-defined]
    bar_class._start, bar_class._finish = _start, _finish
