"""What a task sent to Dask, counted: key groups per prefix, pending futures, graph feeds.

`TaskTracker` (one per task, `tracker_of`) is fed by the adapters of `.dask`: futures one
by one (from the client's key reports, `.dask_keys`; failures logged), whole computations
through `_GraphFeed` (Dask's own ``MultiProgress`` on the scheduler), local-scheduler keys,
and the bars of its code on workers (`.dask_bars`). It writes the counts to the task's bar,
message and per-prefix child bars (`.dask_groups.KeyGroups`), at most every
`REPORT_INTERVAL`; settles what finished as the task ends (`Task.on_ending`) and cancels
the pending futures when the task is cancelled (`Task.on_cancel`).
"""

from __future__ import annotations

import contextvars
import threading
import time
import weakref
from typing import Any, Callable, Iterable

from ..errors import TaskCancelled
from ..kernel.task import Task
from .dask_bars import RemoteBars
from .dask_groups import KeyGroups
from .dask_keys import KeyStream

__all__ = ["KeyGroups", "TaskTracker", "tracker_of"]

#: Seconds between two updates of the task from the counts: 10,000 futures finishing must not
#: mean 10,000 messages built; the views sample at most 10 times a second anyway.
REPORT_INTERVAL = 0.05


class TaskTracker:
    """What one task sent to Dask: its key groups, its pending futures, its clients."""

    def __init__(self, task: Task):
        self._task = weakref.ref(task)
        self.task_id = task.id
        self.groups = KeyGroups()
        self._lock = threading.Lock()
        #: key -> (prefix, the client's KeyStream, [(future, counted)]) of keys not finished yet.
        self._pending: dict[Any, tuple[str, KeyStream, list]] = {}
        #: Held while one key's end is counted and logged.
        self._counting = threading.RLock()
        self._told: set[str] = set()
        self._on_change: list[Callable[[KeyGroups], Any]] = []
        #: One child bar of the task per key prefix, as Dask's own progress() groups keys.
        self._bars: dict[str, Any] = {}
        self._feeds: list[_GraphFeed] = []
        self._remote: RemoteBars | None = None
        self._reported_at = float("-inf")
        self._report_due = False
        task.on_cancel(self._cancelled)
        task.on_ending(self._settle)

    @property
    def task(self) -> Task | None:
        return self._task()

    def watch(self, callback: Callable[[KeyGroups], Any]) -> None:
        """Call ``callback(groups)`` after every change of the counts (for child bars)."""
        self._on_change.append(callback)

    # ---- distributed futures -----------------------------------------------------------

    def add_futures(self, stream: KeyStream, futures: Iterable[Any], count: bool = True) -> None:
        """Watch ``futures`` finish on ``stream`` (failures, cancel); count them in unless ``count`` is False."""
        from dask.utils import key_split

        futures = list(futures)
        with self._lock:
            for future in futures:
                entry = self._pending.get(future.key)
                if entry is None:
                    entry = self._pending[future.key] = (key_split(future.key), stream, [])
                entry[2].append((future, count))
                if count:
                    self.groups.add(entry[0])
        if count:
            self._report()
        stream.watch(futures, self)

    def key_finished(self, key: Any, status: str, error: str | None = None) -> None:
        """``key`` finished, failed or was cancelled (one report, however many futures hold it)."""
        with self._counting:
            with self._lock:
                entry = self._pending.pop(key, None)
            if entry is None or status == "cancelled":
                return  # settled already, or handed to Client.cancel
            prefix, _stream, held = entry
            erred = status == "error"
            for _future, count in held:
                if count:
                    self.groups.finish(prefix, erred)
            if erred:
                self.log(f"dask: key {key!r} failed: {error or _exception_text(held[0][0])}")
            self._report()

    def _settle(self, task: Task) -> None:
        """The task ends: count the futures that are done but whose report was not handled yet.

        The code that waited on them may be faster than the client's handling of a failure
        (logged after the future's waiters wake); this keeps the final count and the
        failure lines on the task.
        """
        with self._lock:
            done = [(key, entry[2][0][0]) for key, entry in self._pending.items() if entry[2][0][0].done()]
        for key, future in done:
            self.key_finished(key, future.status)
        deadline = time.monotonic() + SETTLE_WAIT  # one budget for all the task's computations
        for feed in list(self._feeds):
            feed.settle(deadline)
        self._report(force=True)

    def _cancelled(self, task: Task) -> None:
        """The task was cancelled: cancel its pending futures, without blocking the caller."""
        with self._lock:
            pending, self._pending = self._pending, {}
        for feed in list(self._feeds):
            feed.stop()
        by_client: dict[int, tuple[Any, list]] = {}
        for key, (_prefix, stream, held) in pending.items():
            stream.forget([key], self)
            for future, _count in held:
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
        feed.start(futures)

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

    def worker_bars(self, worker: str, states: list) -> None:
        """Bars of the task's code on ``worker`` changed: show them as child bars."""
        task = self.task
        if task is None or task.done:
            return
        with self._lock:
            if self._remote is None:
                self._remote = RemoteBars()
        self._remote.apply(task, worker, states)

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

    def _report(self, force: bool = False) -> None:
        """Write the counts to the task: at once, or within `REPORT_INTERVAL` (`_due_reports` makes sure)."""
        now = time.monotonic()
        with self._lock:
            if not force and now - self._reported_at < REPORT_INTERVAL:
                if not self._report_due:
                    self._report_due = True
                    _due_reports.add(self)
                return
            self._reported_at = now
            self._report_due = False
        task = self.task
        if task is None or task.done:
            return
        groups = self.groups
        rows = groups.rows()
        try:
            task.set(current=sum(r[1] for r in rows), total=sum(r[3] for r in rows), message=groups.describe())
        except TaskCancelled:
            pass  # the task's own code gets the cancel; a Dask callback thread must not
        for prefix, done, _failed, total in rows:
            bar = self._bars.get(prefix)
            if bar is None:
                bar = self._bars[prefix] = task.bars.open(prefix, total, "key", leave=True)
            bar.current, bar.total = done, total
        for callback in self._on_change:
            try:
                callback(groups)
            except Exception:
                pass


class _DueReports:
    """One thread that makes every tracker's delayed report, `REPORT_INTERVAL` after it was due.

    Not a ``threading.Timer`` per delayed report: reports are mostly made on the client's
    event loop, and starting a thread there every 50 ms (``Thread.start`` waits until the
    thread runs) was most of the integration's cost on 10,000 tiny keys (benchmark case 12).
    """

    def __init__(self) -> None:
        self._due: set[TaskTracker] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, tracker: TaskTracker) -> None:
        with self._lock:
            self._due.add(tracker)
            self._wake.set()  # under the lock: `_run` clears it only with the set it takes
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="taskstream-dask-reports", daemon=True)
                # Started from an empty context: this thread serves every task, it belongs to none.
                contextvars.Context().run(self._thread.start)

    def _run(self) -> None:
        while True:
            self._wake.wait()
            time.sleep(REPORT_INTERVAL)
            with self._lock:
                due, self._due = self._due, set()
                self._wake.clear()
            for tracker in due:
                try:
                    tracker._report(force=True)
                except Exception:
                    pass  # one task's view failing must not stop the others' reports


_due_reports = _DueReports()


#: Seconds a task's end waits for a computation's first report from the scheduler, at most.
SETTLE_WAIT = 2.0


class _GraphFeed:
    """Every key of one computation by prefix, as the scheduler counts them for Dask's ``progress()``.

    Runs Dask's own `MultiProgressBar` machinery (the scheduler's ``MultiProgress`` plugin
    over a ``feed`` comm, ``complete=True``), so nothing of this package runs on the
    scheduler. Until the first report, the computation's output futures stand in for it.
    Holds the outputs weakly: a computation's results stay on the cluster only as long as
    the user's code keeps them.
    """

    def __init__(self, tracker: TaskTracker, client: Any, futures: list):
        from dask.utils import key_split

        self.tracker = tracker
        self.client = client
        self._outputs = [weakref.ref(f) for f in futures]
        self._keys = [f.key for f in futures]
        self.bar: Any = None
        self.completed = False
        #: Set by the scheduler's first report: until then only the outputs are counted.
        self._reported = threading.Event()
        seed: dict[str, tuple[int, int]] = {}
        for key in self._keys:
            prefix = key_split(key)
            seed[prefix] = (0, seed.get(prefix, (0, 0))[1] + 1)
        tracker.groups.set_source(self, seed)

    def start(self, futures: list) -> None:
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
                    pass  # the comm closed under it (task ended, client closed): settled at the end
                finally:
                    if feed.completed:
                        feed.tracker.feed_ended(feed)

        self.bar = Feed(futures, scheduler=self.client.scheduler.address, complete=True, interval="100ms")
        self.client.loop.add_callback(self.bar.listen)
        self.tracker._report()

    def report(self, remaining: dict, all: dict) -> None:
        self._reported.set()
        if not self.completed:
            self.tracker.groups.set_source(self, {p: (n - remaining.get(p, 0), n) for p, n in all.items()})
            self.tracker._report()

    def complete(self) -> None:
        self.completed = True
        self.tracker.groups.complete_source(self)
        self.tracker._report()

    def settle(self, deadline: float) -> None:
        """The task ends: a computation whose outputs all finished (or were let go) is complete."""
        # A quick computation can finish before the scheduler's first report, which alone knows
        # its intermediate keys: wait for it a little (only then, and until ``deadline``).
        self._reported.wait(max(deadline - time.monotonic(), 0))
        outputs = [ref() for ref in self._outputs]
        if not self.completed and all(f is None or f.status == "finished" for f in outputs):
            self.complete()
        self.stop()
        self.tracker.feed_ended(self)

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
