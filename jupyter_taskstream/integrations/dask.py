"""Dask inside tasks: progress, workers' output and cancel of the work a task sends to Dask.

Turned on by itself: when a task starts in a process that has imported dask (or when
dask is imported later), `install_local` and `install_distributed` hook in once. Outside
tasks nothing changes. `track` does the same by hand (and prepares a client at once).
This module holds the hooks; `.dask_progress` the counting, `.dask_worker` the worker side.

distributed (``Client``)
    Every graph a task's code sends (``submit``, ``map``, ``compute``, ``persist``,
    ``client.get`` behind ``dask.compute``) passes through one adapter around
    ``Client._graph_to_futures``; it annotates the graph with the task id
    (``dask.annotate(taskstream=...)``) and counts the futures it returns, grouped by key
    prefix the way ``distributed.progress`` groups them (`KeyGroups`), as the client's
    stream of key reports tells (`.dask_keys.KeyStream`, no callback per future). The task's main bar
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
import sys
import threading
import weakref
from typing import Any, Callable

from ..errors import TaskCancelled
from ..kernel.context import current_task
from .dask_keys import KeyStream
from .dask_groups import KeyGroups
from .dask_progress import TaskTracker, _trackers, tracker_of

__all__ = ["KeyGroups", "TaskTracker", "install_distributed", "install_local", "track", "tracker_of"]

#: What a task's log says when its Dask workers cannot forward their output.
NO_OUTPUT = (
    "dask: the workers' output is not forwarded to this task ({reason}); "
    "progress still shows. Install jupyter_taskstream[dask] where the workers run to see it."
)


# ---- distributed ---------------------------------------------------------------------------

_install_lock = threading.Lock()
_installed: set[str] = set()


class _ClientState:
    """Per client: its key reports, whether its workers forward output, and why not."""

    __slots__ = ("ready", "reason", "lock", "keys")

    def __init__(self, client: Any) -> None:
        self.ready = False
        self.reason: str | None = None
        self.lock = threading.Lock()
        self.keys = KeyStream(client)


_clients: weakref.WeakKeyDictionary[Any, _ClientState] = weakref.WeakKeyDictionary()
_clients_lock = threading.Lock()


#: True while a task's code is in Client.compute/persist/get: count the whole graph, not the outputs.
_whole_graph: contextvars.ContextVar[bool] = contextvars.ContextVar("taskstream_dask_whole_graph", default=False)


def install() -> None:
    """Hook whichever of dask and distributed the process has imported (see integrations.BRIDGES)."""
    if "dask" in sys.modules:
        install_local()
    # ``import distributed`` imports dask first: dask's hook then finds distributed still
    # half-initialized (no ``Client`` yet); distributed's own hook installs it once loaded.
    if hasattr(sys.modules.get("distributed"), "Client"):
        install_distributed()


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
        keys = prepare_client(self, tracker).keys
        with dask.annotate(taskstream=task.id):
            futures = original(self, *args, **kwargs)
        if _whole_graph.get():
            tracker.add_futures(keys, futures.values(), count=False)
            tracker.follow_graph(self, list(futures.values()))
        else:
            tracker.add_futures(keys, futures.values())
        return futures

    _graph_to_futures.__taskstream__ = True  # type: ignore[attr-defined]
    client_class._graph_to_futures = _graph_to_futures


def prepare_client(client: Any, tracker: TaskTracker | None = None) -> _ClientState:
    """Once per client: follow its key reports, register the worker plugin, subscribe to its topic."""
    with _clients_lock:
        state = _clients.get(client)
        if state is None:
            state = _clients[client] = _ClientState(client)
    with state.lock:
        if not state.ready:
            state.ready = True
            state.reason = _set_up_forwarding(client)
    if state.reason is not None and tracker is not None:
        tracker.tell_once(f"no-output-{id(client)}", NO_OUTPUT.format(reason=state.reason))
    return state


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
    worker = str(msg.get("worker", "?"))
    lines = [f"[{worker}] {text}" for _stream, text in msg.get("lines", ())]
    if lines:
        tracker.log("\n".join(lines))
    bars = msg.get("bars")
    if isinstance(bars, (list, tuple)) and bars:  # msgpack hands lists over as tuples
        tracker.worker_bars(worker, bars)


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
